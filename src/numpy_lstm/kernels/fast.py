"""Optional compiled kernels for the sequence forward and backward (install the `fast` extra:
`pip install numpy-lstm[fast]`, i.e. numba).

Nothing here imports numba until a kernel first runs, so `import numpy_lstm` stays as fast as
before; :mod:`numpy_lstm.kernels` decides per call whether to use these kernels. They compute
what :mod:`numpy_lstm.core.sequence` computes (the oracle: tests hold them to it, fp32 within 1e-5,
fp64 within 1e-10) and are compiled once per dtype, then cached on disk by numba.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Protocol

import numpy as np

from ..core.cell import LSTMWeights
from ..core.options import SequenceOptions
from ..core.sequence import SequenceGrads
from .cache import BackwardCall, Cache, ForwardCall, ForwardResult


class FastKernels(Protocol):
    """What the fast path offers (the functions of :mod:`numpy_lstm.kernels.numba_driver`)."""

    def supports(self, x: np.ndarray, w: LSTMWeights, options: SequenceOptions) -> bool: ...

    def forward(
        self,
        x: np.ndarray,
        h0: np.ndarray,
        c0: np.ndarray,
        w: LSTMWeights,
        options: SequenceOptions,
    ) -> ForwardResult: ...

    def backward(
        self,
        d_out: np.ndarray | None,
        dh_n: np.ndarray | None,
        dc_n: np.ndarray | None,
        cache: Cache,
    ) -> SequenceGrads: ...

    def forward_side_by_side(self, calls: list[ForwardCall]) -> list[ForwardResult]: ...

    def backward_side_by_side(self, calls: list[BackwardCall]) -> list[SequenceGrads]: ...


_module: FastKernels | None = None
_failed = False


def installed() -> bool:
    """Whether numba can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a broken or blocked numba
        return False


def load() -> FastKernels | None:
    """The driver module :mod:`numpy_lstm.kernels.numba_driver` (importing numba, compiling nothing
    yet), or None when numba is missing or fails to import — then the reference path runs."""
    global _module, _failed
    if _module is None and not _failed:
        if not installed():
            _failed = True
            return None
        try:
            from . import numba_driver
        except Exception as err:  # e.g. a numba built for another NumPy: fall back, say why
            _failed = True
            warnings.warn(
                f"numpy_lstm: the fast kernels are unavailable ({err!r}); "
                "using the pure-NumPy path",
                stacklevel=3,
            )
            return None
        _module = numba_driver
    return _module
