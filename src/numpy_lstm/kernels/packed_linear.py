"""A Linear layer's two large products on the SIMD micro-kernel of :mod:`numpy_lstm.kernels.simd`:
the forward a·Wᵀ + b and the input gradient dy·W, with W packed once per weights version.

Why not BLAS: on one Zen 4 core the packed kernel ran (3,200, 256)·(256, 1,000) — an LSTM's
outputs through a 1,000-way head — at 100–110 GFLOP/s, OpenBLAS at 84–92, and dy·W at 103–110
against 77–95. Packing the weights costs about half a millisecond for that head: nothing for
inference (kept while the weights are unchanged), a few per cent of a training step's head.

Every row is summed in the same order whatever the split, so the result does not depend on
the number of threads.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from . import simd
from .prepared import reused
from .threads import run_parallel


def product(
    a: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, transposed: bool, threads: int
) -> np.ndarray | None:
    """a·weightᵀ + bias — or, if `transposed`, a·weight (bias None) — on `threads` threads;
    None where this dtype and CPU have no SIMD kernel (float64, the generic path).

    a: (M, K) float32, C-contiguous; weight: (N, K) (transposed: (K, N)), a parameter, whose
    changes bump the weights' version (so its packed copy is never stale); bias: (N,) or None.
    Returns a fresh (M, N) array."""
    isa = simd.path_for(a.dtype)
    if isa is None:
        return None
    packed = reused(
        ("linear", isa, transposed), (weight, bias), lambda: _pack(isa, weight, bias, transposed)
    )
    M = a.shape[0]
    out = np.empty((M, weight.shape[1 if transposed else 0]), a.dtype)
    blocks = -(-M // packed.rows)  # split whole register blocks of rows
    n = max(1, min(threads, blocks))
    bounds = [min(M, packed.rows * (k * blocks // n)) for k in range(n)] + [M]

    def rows(r0: int, r1: int) -> None:
        simd.product(packed, a, out, r0, r1, np.empty(simd.SCRATCH_SHAPE, a.dtype))

    run_parallel(rows, list(pairwise(bounds)))
    return out


def _pack(
    isa: str, weight: np.ndarray, bias: np.ndarray | None, transposed: bool
) -> simd.PackedAvx512 | simd.PackedAvx2:
    N = weight.shape[1 if transposed else 0]
    zeros = np.zeros(N, np.float32)
    return simd.pack_for(isa, [weight], zeros if bias is None else bias, transposed)
