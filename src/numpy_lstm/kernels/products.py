"""The library's own matrix products (a Linear head, its gradients) under one thread model.

While the fast kernels are on, numpy-lstm never lets multi-threaded BLAS run beside its own
threads: OpenBLAS keeps its threads spinning ~0.1 s after every threaded call, each taking a
core from the kernels that run next (measured: a two-thread forward right after a threaded
product ran no faster than one thread). So a product here holds BLAS to one thread and, when
it is large, splits its rows over the kernels' own pool, each thread calling single-threaded
BLAS. The user's BLAS setting is restored when the call returns. With the fast path off
(``use_fast(False)``), products are plain NumPy under the user's BLAS setting, as before.

A Linear layer's own products — its forward and its input gradient — run on the SIMD kernel
with the weights packed (:mod:`numpy_lstm.kernels.packed_linear`) where this CPU has one.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from .select import fast_enabled
from .threads import blas_threads, get_num_threads, run_parallel

# Below this many multiply-adds a product runs on one thread: splitting costs more (~20 µs).
PARALLEL_MIN_MACS = 2_000_000
# Up to this many OpenBLAS itself runs a product on one thread (65536 × its default
# GEMM_MULTITHREAD_THRESHOLD of 4), so it is left alone: holding BLAS would cost ~20 µs a call,
# ten times the product itself when sampling one character at a time.
BLAS_SINGLE_THREADED_MACS = 65536 * 4


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """a (…, K) @ b (K, N) [+ bias (N,)] → (…, N), as ``a @ b + bias`` computes it (b may be a
    transposed view; the same float additions, so the same bits).

    With the fast kernels on: BLAS held to one thread, rows of the output split over the
    kernels' threads when the product is large, and each thread adds the bias to its rows
    while they are still in cache (a separate ``+ bias`` is one more pass over the output, and
    a fresh array: ~2 ms for a 3,200 × 1,000 head's logits)."""
    rows = a.reshape(-1, a.shape[-1])
    M, K = rows.shape
    N = b.shape[1]
    dtype = np.result_type(a, b)
    # A bias of another dtype would be cast into the product's in place, not promote it: the
    # plain expression then, which promotes as NumPy does.
    plain = bias is not None and bias.dtype != dtype
    if not fast_enabled() or plain or M * K * N <= BLAS_SINGLE_THREADED_MACS:
        return a @ b if bias is None else a @ b + bias
    out = np.empty((M, N), dtype)
    threads = _threads(M * K * N, M)

    def part(r0: int, r1: int) -> None:
        np.matmul(rows[r0:r1], b, out=out[r0:r1])
        if bias is not None:
            out[r0:r1] += bias

    with blas_threads(1):
        run_parallel(part, list(pairwise(k * M // threads for k in range(threads + 1))))
    return out.reshape(*a.shape[:-1], N)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (…, in) · weightᵀ (out, in) [+ bias (out,)] → (…, out): a Linear layer's forward.
    weight and bias are parameters (every change bumps the weights' version), so where the SIMD
    kernel runs them their packed copy is made once per version."""
    return _packed(x, weight, bias, transposed=False)


def linear_input_grad(dy: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """dy (…, out) · weight (out, in) → (…, in): the gradient a Linear layer passes back to its
    input; weight a parameter, as for :func:`linear`."""
    return _packed(dy, weight, None, transposed=True)


def _packed(
    a: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, transposed: bool
) -> np.ndarray:
    """a·weightᵀ + bias (a·weight if `transposed`) on the SIMD kernel where one runs this
    (the fast path on, float32 throughout, a product worth splitting, weights that cannot change
    unseen), else :func:`matmul`."""
    K = a.shape[-1]
    M, N = a.size // max(K, 1), weight.shape[1 if transposed else 0]
    float32 = a.dtype == weight.dtype == np.float32 and (bias is None or bias.dtype == a.dtype)
    # A writable array could change unseen: packing it on every call would cost more than BLAS
    # (parameters are read-only; writable only inside an editing block).
    fixed = not weight.flags.writeable and (bias is None or not bias.flags.writeable)
    if float32 and fixed and M * K * N > BLAS_SINGLE_THREADED_MACS and fast_enabled():
        from . import packed_linear  # imports numba: only once the fast path is known to work

        rows = np.ascontiguousarray(a.reshape(M, K))
        out = packed_linear.product(rows, weight, bias, transposed, _threads(M * K * N, M))
        if out is not None:
            return out.reshape(*a.shape[:-1], N)
    return matmul(a, weight if transposed else weight.T, bias)


def _threads(macs: int, rows: int) -> int:
    """The threads a product of this many multiply-adds over this many rows is split over."""
    return min(get_num_threads(), max(1, macs // PARALLEL_MIN_MACS), rows)
