"""Which implementation runs a sequence: the pure-NumPy reference of :mod:`numpy_lstm.core` or the
compiled fast path (numba, the `fast` extra), chosen per call.

    select         the switch: sequence_forward / sequence_backward, use_fast, fast_enabled
    cache          Cache: what the layers may read from either kernel's forward cache
    threads        how many threads the compiled kernels may use, their pool, BLAS held to one
    products       the library's own matrix products under that one thread model
    versions       the weights' version: when prepared (packed) weights may be reused
    fast           finds and loads the compiled path (numba imported only on first use)
    numba_driver   the fast path's driver: weight layout and reuse, threading, caches
    numba_kernels  the compiled loops
    simd           SIMD micro-kernels (AVX-512 / AVX2) for the float32 per-step products
    disk_cache     the compiled kernels' cache on disk, keyed by all of the package's sources
    training       a training step's loops: softmax cross-entropy with its gradient in place
                   (and the bias gradient in the same pass), the embedding's scatter-add
    optimizers     Adam/AdamW as one compiled loop, the gradients' sums of squares (imported by
                   train.optim only once the fast path works: it imports numba)
"""

from .select import counts, fast_enabled, sequence_backward, sequence_forward, use_fast
from .threads import get_num_threads, set_num_threads


def isa_path() -> str:
    """The instruction set of the fast float32 per-step products: "avx512", "avx2" or "generic"
    (detected once; $NUMPY_LSTM_ISA overrides it, ValueError if unknown or missing on this CPU);
    "none" without numba. Imports numba on first use, as the fast path does."""
    from . import fast

    if fast.load() is None:
        return "none"
    from .simd import isa_path as detected  # only here: numba loads with it

    return detected()


__all__ = [
    "counts",
    "fast_enabled",
    "get_num_threads",
    "isa_path",
    "sequence_backward",
    "sequence_forward",
    "set_num_threads",
    "use_fast",
]
