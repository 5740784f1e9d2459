"""Moved to :mod:`numpy_lstm.io.torch`; this name keeps old imports working."""

from ..io.torch import *  # noqa: F403
from ..io.torch import __all__ as __all__
