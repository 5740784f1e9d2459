"""Moved to :mod:`numpy_lstm.io.keras`; this name keeps old imports working."""

from ..io.keras import *  # noqa: F403
from ..io.keras import __all__ as __all__
