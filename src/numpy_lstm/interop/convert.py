"""Moved to :mod:`numpy_lstm.io.convert`; this name keeps old imports working."""

from ..io.convert import *  # noqa: F403
from ..io.convert import __all__ as __all__
