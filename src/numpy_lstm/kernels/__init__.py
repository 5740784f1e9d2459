"""Which implementation runs a sequence: the pure-NumPy reference of :mod:`numpy_lstm.core` or the
compiled fast path (numba, the `fast` extra), chosen per call.

    select         the switch: sequence_forward / sequence_backward, use_fast, fast_enabled
    cache          Cache: what the layers may read from either kernel's forward cache
    threads        how many threads the compiled kernels may use
    fast           finds and loads the compiled path (numba imported only on first use)
    numba_driver   the fast path's driver: weight layout, threading, caches
    numba_kernels  the compiled loops
"""

from .select import counts, fast_enabled, sequence_backward, sequence_forward, use_fast
from .threads import get_num_threads, set_num_threads

__all__ = [
    "counts",
    "fast_enabled",
    "get_num_threads",
    "sequence_backward",
    "sequence_forward",
    "set_num_threads",
    "use_fast",
]
