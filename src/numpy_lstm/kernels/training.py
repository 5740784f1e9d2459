"""Compiled kernels of a training step (numba, the `fast` extra), each with a NumPy fallback that
gives the same results when the fast path is off or numba is missing:

    softmax_cross_entropy  softmax cross-entropy over rows in one pass per row: the loss, the
                           gradient (softmax − onehot)/n written in place (or into `out`), and
                           the gradient's column sums (a Linear head's bias gradient)
    scatter_add_rows       target[ids[i]] += rows[i]: an Embedding's weight gradient

Nothing here imports numba until a kernel first runs (like :mod:`numpy_lstm.kernels.fast`); the
kernels are compiled once per dtype and cached on disk by numba.

Why a kernel: NumPy's softmax cross-entropy makes about eight passes over the logits, each
allocating an (N, C) array (max, shift, exp, sum, log, gather, exp again, scale), and
`np.add.at` is NumPy's slowest scatter. One pass per row, with the row in L1, does it all.
"""

from __future__ import annotations

import math
from functools import cache
from itertools import pairwise
from typing import Any

import numpy as np

from .select import fast_enabled
from .threads import get_num_threads, run_parallel

# A thread gets at least this many logits: below it, waking a thread (~20 µs) costs more.
MIN_LOGITS_PER_THREAD = 1 << 16

# exp(d) for d ≤ 0 (a logit minus its row's max), computed as 2^k·exp(r) with d = k·ln 2 + r,
# |r| ≤ ln 2 / 2: ln 2 in two parts (Cody–Waite), the first with trailing zero bits so that
# k·ln2_hi is exact; 2^k built from its bits. Unlike libm's exp this is plain arithmetic that
# LLVM vectorises (numba has no vector exp without Intel's SVML): measured ≈ 3× faster than
# libm's in float64, ≈ 6× in float32, where it runs 8 lanes wide. Below the clamp 2^k would
# not be a normal float; those rare entries go through libm's exp.
#   float64: exp(r) by its Taylor series to r¹² (truncation < 2e-16; the clamp −708).
#   float32: Cephes' expf polynomial (≈ 1 ulp; the clamp −87).
LOG2_E = 1.4426950408889634
LN2_HI, LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
EXP_MIN = -708.0
EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(13))  # 1/0!, …, 1/12!
LN2_HI_F32, LN2_LO_F32 = 0.693359375, -2.12194440e-4
EXP_MIN_F32 = -87.0
# Cephes' expf: exp(r) ≈ 1 + r + r²·P(r), P's coefficients from the highest power down.
EXPF_POLY = (
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
)


def softmax_cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    counted: np.ndarray,
    *,
    bias: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[float, np.ndarray | None]:
    """Mean softmax cross-entropy of rows, like `torch.nn.functional.cross_entropy` over the
    counted rows, and (when `out` is given) its gradient.

    logits (N, C) float32/float64, C-contiguous; bias (C,) of the same dtype, added to every row
    first (a Linear head's bias: the logits are then x·Wᵀ and the head needs no extra pass);
    targets (N,) integer class ids, in [0, C) where counted; counted (N,) bool, at least one
    True. TypeError/ValueError naming the argument otherwise.

    out (N, C) of logits' dtype, C-contiguous, may be `logits` itself (each row is read whole
    before it is written): receives ∂loss/∂logits = (softmax − onehot)/n on counted rows, 0 on
    the others, with n = counted.sum(). Returns (loss, column sums of that gradient (C,) float64
    — the bias gradient), or (loss, None) without `out` (loss only, nothing written).

    The compiled path (fast path on) computes exp with a polynomial: float32 results equal the
    NumPy path's to rounding, float64 ones to a relative 1e-13.
    """
    targets, counted, n = _checked_rows(logits, targets, counted, bias, out)
    kernels = _kernels() if fast_enabled() else None
    if kernels is None:
        return _softmax_cross_entropy_numpy(logits, targets, counted, n, bias, out)
    N, C = logits.shape
    dtype = logits.dtype
    no_bias = np.zeros(0, dtype)
    write = out is not None
    grad = out if out is not None else np.empty((1, C), dtype)  # loss only: never written
    threads = max(1, min(get_num_threads(), N * C // MIN_LOGITS_PER_THREAD, N))
    bounds = list(pairwise(k * N // threads for k in range(threads + 1)))
    losses = np.zeros(threads)
    column_sums = np.zeros((threads, C))  # one row per thread: no two threads add into one
    # Per thread: exp of the row, and the bits of 2^k (read as floats of the logits' dtype).
    exps = np.empty((threads, C), dtype)
    power_bits = np.empty((threads, C), np.int32 if dtype == np.float32 else np.int64)

    def part(k: int, _: int) -> None:
        r0, r1 = bounds[k]
        losses[k] = kernels.softmax_cross_entropy_rows(
            logits,
            no_bias if bias is None else bias,
            targets,
            counted,
            1.0 / n,
            write,
            grad,
            column_sums[k],
            exps[k],
            power_bits[k],
            EXP_MIN_F32 if dtype == np.float32 else EXP_MIN,
            r0,
            r1,
        )

    run_parallel(part, [(k, k + 1) for k in range(threads)])
    return float(losses.sum()) / n, column_sums.sum(axis=0) if write else None


def _checked_rows(
    logits: np.ndarray,
    targets: np.ndarray,
    counted: np.ndarray,
    bias: np.ndarray | None,
    out: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """softmax_cross_entropy's arguments checked (the compiled loop indexes without bounds
    checks) → (targets as int64, counted as bool, how many rows count)."""
    if logits.dtype not in (np.float32, np.float64) or logits.ndim != 2:
        raise TypeError(
            f"logits: expected float32/float64 (N, C), got {logits.dtype} {logits.shape}"
        )
    N, C = logits.shape
    for name, array, shape in (("bias", bias, (C,)), ("out", out, (N, C))):
        if array is not None and (array.shape != shape or array.dtype != logits.dtype):
            raise ValueError(
                f"{name}: expected shape {shape} and dtype {logits.dtype}, "
                f"got {array.shape} {array.dtype}"
            )
    if not logits.flags.c_contiguous or (out is not None and not out.flags.c_contiguous):
        raise ValueError("logits, out: expected C-contiguous arrays")
    if targets.dtype.kind not in "iu" or targets.shape != (N,):
        raise TypeError(
            f"targets: expected (N,) = ({N},) integers, got {targets.dtype} {targets.shape}"
        )
    if counted.dtype != np.bool_ or counted.shape != (N,):
        raise TypeError(
            f"counted: expected (N,) = ({N},) booleans, got {counted.dtype} {counted.shape}"
        )
    chosen = targets[counted]
    if chosen.size == 0:
        raise ValueError("counted: no row counts (all ignored or masked)")
    if chosen.min() < 0 or chosen.max() >= C:
        raise ValueError(f"targets: must be in [0, {C}), got {chosen.min()}..{chosen.max()}")
    return targets.astype(np.int64, copy=False), counted, chosen.size


def _softmax_cross_entropy_numpy(
    logits: np.ndarray,
    targets: np.ndarray,
    counted: np.ndarray,
    n: int,
    bias: np.ndarray | None,
    out: np.ndarray | None,
) -> tuple[float, np.ndarray | None]:
    """The fallback of :func:`softmax_cross_entropy`: the same contract, in whole-array NumPy."""
    z = logits if bias is None else logits + bias
    shifted = z - z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.flatnonzero(counted)
    picked = shifted[rows, targets[rows]] - log_sum[rows, 0]
    loss = -float(picked.sum(dtype=np.float64)) / n
    if out is None:
        return loss, None
    grad = np.exp(shifted - log_sum)
    grad[rows, targets[rows]] -= 1
    grad *= (counted / logits.dtype.type(n))[:, None].astype(logits.dtype)
    out[...] = grad
    return loss, out.sum(axis=0, dtype=np.float64)


def scatter_add_rows(target: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """target[ids[i]] += rows[i] for every i, in order (repeated ids add up): the weight gradient
    of an embedding lookup, added straight into the accumulated gradient.

    target (V, D) float32/float64, C-contiguous, written in place; ids (N,) integers in [0, V);
    rows (N, D) of target's dtype. ValueError if an id is out of range (the compiled loop does
    not check its indices).
    """
    ids = np.asarray(ids).reshape(-1)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids: expected integer indices, got dtype {ids.dtype}")
    if rows.shape != (ids.size, target.shape[1]) or rows.dtype != target.dtype:
        raise ValueError(
            f"rows: expected shape {(ids.size, target.shape[1])} and dtype {target.dtype}, "
            f"got {rows.shape} {rows.dtype}"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= target.shape[0]):
        raise ValueError(f"ids: must be in [0, {target.shape[0]}), got {ids.min()}..{ids.max()}")
    kernels = _kernels() if fast_enabled() else None
    if kernels is None or not target.flags.c_contiguous:
        np.add.at(target, ids, rows)
        return
    kernels.scatter_add_rows(target, ids.astype(np.int64, copy=False), np.ascontiguousarray(rows))


@cache
def _kernels() -> Any:
    """The compiled loops (numba imported, and each compiled, on first use)."""
    from numba import types
    from numba.extending import overload

    from .disk_cache import cached_jit

    # No `nnan`/`ninf`: a NaN or ±inf logit must give what NumPy gives (a NaN loss, a zero
    # probability). `reassoc` lets LLVM vectorise the row's sums.
    fastmath = {"nsz", "arcp", "contract", "afn", "reassoc"}
    jit = cached_jit(nogil=True, fastmath=fastmath, error_model="numpy")

    def exp_shifted(v: np.ndarray, high: Any, e: np.ndarray, power_bits: np.ndarray) -> None:
        """e[j] = exp(v[j] − high) for v[j] − high ≥ the clamp (see EXP_MIN): compiled per
        dtype by the overload below."""

    @overload(exp_shifted, jit_options=dict(fastmath=fastmath))
    def _exp_shifted_overload(v, high, e, power_bits):  # type: ignore[no-untyped-def]
        # numba's protocol: called with the arguments' numba types, returns the implementation
        if v.dtype == types.float32:
            return _exp_shifted_float32
        return _exp_shifted_float64

    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = EXP_TAYLOR
    log2_e, ln2_hi, ln2_lo, exp_min = LOG2_E, LN2_HI, LN2_LO, EXP_MIN

    def _exp_shifted_float64(v, high, e, power_bits):  # type: ignore[no-untyped-def]
        power = power_bits.view(np.float64)
        for j in range(v.shape[0]):
            d = v[j] - high
            d = exp_min if d < exp_min else d  # NaN stays NaN: `<` is False
            k = np.floor(d * log2_e + 0.5)
            x = d - k * ln2_hi - k * ln2_lo
            p = c12
            p = p * x + c11
            p = p * x + c10
            p = p * x + c9
            p = p * x + c8
            p = p * x + c7
            p = p * x + c6
            p = p * x + c5
            p = p * x + c4
            p = p * x + c3
            p = p * x + c2
            p = p * x + c1
            e[j] = p * x + c0
            power_bits[j] = np.int64(np.int32(k) + 1023) << 52
        for j in range(v.shape[0]):
            e[j] *= power[j]

    f32 = np.float32
    log2_e_f, ln2_hi_f, ln2_lo_f, exp_min_f = map(
        f32, (LOG2_E, LN2_HI_F32, LN2_LO_F32, EXP_MIN_F32)
    )
    p0, p1, p2, p3, p4, p5 = map(f32, EXPF_POLY)
    half, one = f32(0.5), f32(1.0)

    def _exp_shifted_float32(v, high, e, power_bits):  # type: ignore[no-untyped-def]
        power = power_bits.view(np.float32)
        for j in range(v.shape[0]):
            d = v[j] - high
            d = exp_min_f if d < exp_min_f else d
            k = np.floor(d * log2_e_f + half)
            x = d - k * ln2_hi_f - k * ln2_lo_f
            p = p0
            p = p * x + p1
            p = p * x + p2
            p = p * x + p3
            p = p * x + p4
            p = p * x + p5
            e[j] = p * x * x + x + one
            power_bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
        for j in range(v.shape[0]):
            e[j] *= power[j]

    @jit
    def softmax_cross_entropy_rows(
        z: np.ndarray,
        bias: np.ndarray,
        targets: np.ndarray,
        counted: np.ndarray,
        scale: float,
        write: bool,
        grad: np.ndarray,
        column_sums: np.ndarray,
        e: np.ndarray,
        power_bits: np.ndarray,
        clamp: float,
        r0: int,
        r1: int,
    ) -> float:
        """Rows [r0, r1): returns Σ −log softmax(z + bias)[target] over the counted ones; with
        `write`, grad[r] = (softmax − onehot)·scale (0 if not counted), column_sums += grad[r].
        e, power_bits (C,): scratch for exp_shifted; clamp: its clamp in this dtype."""
        C = z.shape[1]
        has_bias = bias.shape[0] > 0
        v = np.empty(C, z.dtype)  # the row's logits, bias added
        factor = np.empty(1, z.dtype)  # rounds a float64 to the dtype (numba has no dtype.type)
        total = 0.0
        for r in range(r0, r1):
            g = grad[r if write else 0]
            if not counted[r]:
                if write:
                    for j in range(C):
                        g[j] = 0
                continue
            row = z[r]
            if has_bias:
                for j in range(C):
                    v[j] = row[j] + bias[j]
            else:
                for j in range(C):
                    v[j] = row[j]
            # Comparisons, not max(): a NaN first logit stays the max (and makes the row NaN,
            # as in NumPy); a later NaN never wins, fails `>= clamp` below, and goes to libm.
            high, low = v[0], v[0]
            for j in range(1, C):
                high = v[j] if v[j] > high else high
                low = v[j] if v[j] < low else low
            exp_shifted(v, high, e, power_bits)
            total_exp = 0.0
            for j in range(C):
                total_exp += float(e[j])
            if not low - high >= clamp:  # tiny (or NaN) terms: libm's exp
                for j in range(C):
                    d = float(v[j] - high)
                    if not d >= clamp:
                        tiny = math.exp(d)
                        total_exp += tiny - float(e[j])
                        e[j] = tiny
            t = targets[r]
            total += math.log(total_exp) - float(v[t] - high)
            if write:
                factor[0] = scale / total_exp
                to_probability = factor[0]
                for j in range(C):
                    g[j] = e[j] * to_probability
                g[t] = (float(e[t]) / total_exp - 1.0) * scale
                for j in range(C):
                    column_sums[j] += g[j]
        return total

    @jit
    def scatter_add_rows(target: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
        """target[ids[i]] += rows[i], i in order."""
        D = target.shape[1]
        for i in range(ids.shape[0]):
            out, row = target[ids[i]], rows[i]
            for j in range(D):
                out[j] += row[j]

    return _Kernels(softmax_cross_entropy_rows, scatter_add_rows)


class _Kernels:
    """The compiled loops, by name."""

    def __init__(self, softmax_cross_entropy_rows: Any, scatter_add_rows: Any) -> None:
        self.softmax_cross_entropy_rows = softmax_cross_entropy_rows
        self.scatter_add_rows = scatter_add_rows
