"""Optional compiled kernels for the sequence forward and backward (install the `fast` extra:
`pip install numpy-lstm[fast]`, i.e. numba).

Nothing here imports numba until a kernel first runs, so `import numpy_lstm` stays as fast as
before; :mod:`numpy_lstm.kernels` decides per call whether to use these kernels. They compute
what :mod:`numpy_lstm.sequence` computes (the oracle: tests hold them to it, fp32 within 1e-5,
fp64 within 1e-10) and are compiled once per dtype, then cached on disk by numba.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from types import ModuleType

_module: ModuleType | None = None
_failed = False
_threads: int | None = None


def set_num_threads(n: int | None) -> int | None:
    """Use at most n threads in the fast kernels (None: $NUMPY_LSTM_NUM_THREADS, else all
    cores); returns the previous setting. Each call still picks how many it uses from its
    shape: small ones run on one."""
    global _threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected a positive integer or None, got {n!r}")
    previous, _threads = _threads, n
    return previous


def get_num_threads() -> int:
    """The thread limit in force (see :func:`set_num_threads`)."""
    if _threads is not None:
        return _threads
    if env := os.environ.get("NUMPY_LSTM_NUM_THREADS", "").strip():
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"$NUMPY_LSTM_NUM_THREADS: expected a positive integer, got {env!r}")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def installed() -> bool:
    """Whether numba can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a broken or blocked numba
        return False


def load() -> ModuleType | None:
    """The driver module :mod:`numpy_lstm.fast.sequence` (importing numba, compiling nothing
    yet), or None when numba is missing or fails to import — then the reference path runs."""
    global _module, _failed
    if _module is None and not _failed:
        if not installed():
            _failed = True
            return None
        try:
            from . import sequence
        except Exception as err:  # e.g. a numba built for another NumPy: fall back, say why
            _failed = True
            warnings.warn(
                f"numpy_lstm: the fast kernels are unavailable ({err!r}); "
                "using the pure-NumPy path",
                stacklevel=3,
            )
            return None
        _module = sequence
    return _module
