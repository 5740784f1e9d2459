"""Compiled optimizer loops (numba): one Adam/AdamW update of every parameter per call, and the
gradients' sums of squares — the global norm and the finiteness check in one pass.

Imported only by :mod:`numpy_lstm.train.optim` once :func:`numpy_lstm.kernels.select.fast_enabled`
says numba works (this module imports numba), so `import numpy_lstm` stays numba-free.

The loops take the arrays as tuples of CHUNK 1-D views (the last tuple padded with empty
arrays), so each compiles once per dtype, whatever the number of parameters, and is cached on
disk by numba (a numba typed List would be compiled again in every process: ~0.4 s per dtype).
The optimizer's moments are one flat array each per dtype,
parameter i's entries at [starts[i], starts[i] + size).

Exactness: the Adam loops compile without fastmath and take every coefficient already rounded to
the parameters' dtype, so each element goes through the operations of
:func:`numpy_lstm.train.optim.adam_update` (torch's single-tensor order) with the same roundings:
the results are bit-identical to that NumPy rule, float32 and float64.

Parameters are read-only arrays: :func:`adam_step` makes them writable only for its writing pass
(the views it writes through are made inside that window) and then calls
:func:`~numpy_lstm.kernels.versions.weights_changed`, as ``nn.module.write_in_place`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from .disk_cache import cached_jit
from .versions import weights_changed

# fastmath off: each operation rounds as NumPy's (and torch's) does; error_model numpy: a
# division by zero gives inf (then caught as non-finite) instead of raising.
jit = cached_jit(nogil=True, fastmath=False, error_model="numpy")
# Sums of squares only: their order is free (torch's differs from NumPy's anyway), so `reassoc`
# may vectorise the reduction; no `nnan`/`ninf`, so a NaN or inf still reaches the sum.
sum_jit = cached_jit(nogil=True, fastmath={"reassoc"}, error_model="numpy")

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
CHUNK = 8  # arrays per compiled call: one tuple type, so one compilation per dtype
WHAT = ("update", "exp_avg", "exp_avg_sq")  # what adam_first_non_finite reports, in check order


def supported(arrays: Sequence[np.ndarray]) -> bool:
    """Whether the compiled loops can take these arrays in place: float32/float64, C-contiguous
    (so that a 1-D view is the array itself, not a copy), aligned."""
    return all(
        a.dtype in SUPPORTED_DTYPES and a.flags.c_contiguous and a.flags.aligned for a in arrays
    )


def chunked(arrays: Sequence[np.ndarray], dtype: np.dtype) -> list[tuple]:
    """1-D views of `arrays` (all of `dtype`, :func:`supported`) in tuples of CHUNK, the last
    one padded with empty arrays. The views are writable if all the arrays are, else all
    read-only (a tuple's arrays must share one numba type)."""
    views = [a.reshape(-1) for a in arrays]
    writable = all(view.flags.writeable for view in views)
    if not writable:
        for view in views:
            view.flags.writeable = False  # the view only: its array keeps its flag
    pad = np.empty(0, dtype=dtype)
    pad.flags.writeable = writable
    views += [pad] * (-len(views) % CHUNK)
    return [tuple(views[i : i + CHUNK]) for i in range(0, len(views), CHUNK)]


# -- Adam / AdamW -------------------------------------------------------------------------------
# The coefficients travel as scalars of the parameters' dtype (see adam_coefficients), unpacked
# from their array before the loops: the loops write arrays that LLVM cannot prove distinct from
# that one, and reloading it per element kept the loops from vectorising (measured: 10x slower).
@njit(inline="always", fastmath=False, error_model="numpy")
def _adam_element(
    p: float,
    g: float,
    m: float,
    v: float,
    c: tuple[float, ...],
    decoupled: bool,
    decay_grad: bool,
) -> tuple[float, float, float]:
    """(new param, new exp_avg, new exp_avg_sq) of one entry, in adam_update's order; every
    operand has the parameters' dtype (no literal constants: they would promote to float64)."""
    decay, weight_decay, one_minus_beta1, beta2, one_minus_beta2, bias2_sqrt, eps, neg_step = c
    if decoupled:
        p = p * decay
    elif decay_grad:
        g = g + weight_decay * p
    m = m + one_minus_beta1 * (g - m)
    v = v * beta2 + one_minus_beta2 * g * g
    denom = np.sqrt(v) / bias2_sqrt + eps
    return p + (neg_step * m) / denom, m, v


@njit(inline="always")
def _scalars(coefficients: np.ndarray) -> tuple[float, ...]:
    """The 8 coefficients as scalars (see the comment above _adam_element)."""
    c = coefficients
    return (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])


@jit
def _first_non_finite_entry(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    c: tuple[float, ...],
    decoupled: bool,
    decay_grad: bool,
) -> int:
    """0, 1, 2: the new param, exp_avg or exp_avg_sq has a NaN or inf somewhere; -1: none.
    p, g, m, v: (n,)."""
    bad_p = bad_m = bad_v = False
    for j in range(p.size):
        new_p, new_m, new_v = _adam_element(p[j], g[j], m[j], v[j], c, decoupled, decay_grad)
        bad_p |= not math.isfinite(new_p)
        bad_m |= not math.isfinite(new_m)
        bad_v |= not math.isfinite(new_v)
    return 0 if bad_p else 1 if bad_m else 2 if bad_v else -1


@jit
def _write_entries(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    c: tuple[float, ...],
    decoupled: bool,
    decay_grad: bool,
) -> None:
    """p, m, v ← the new param, exp_avg, exp_avg_sq (each entry read before it is written)."""
    for j in range(p.size):
        p[j], m[j], v[j] = _adam_element(p[j], g[j], m[j], v[j], c, decoupled, decay_grad)


@jit
def adam_first_non_finite(
    params: Any,
    grads: Any,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    starts: np.ndarray,
    coefficients: np.ndarray,
    decoupled: bool,
    decay_grad: bool,
) -> int:
    """Compute the update of CHUNK parameters without writing anything; return 3·i + k for the
    first parameter i whose new value (k = 0), exp_avg (1) or exp_avg_sq (2) has a NaN or inf,
    or -1 when all are finite.

    params, grads: tuples of CHUNK 1-D arrays; exp_avg, exp_avg_sq: flat, parameter i's entries
    at [starts[i], starts[i] + params[i].size); coefficients: (8,), see adam_coefficients."""
    c = _scalars(coefficients)
    for i in range(len(params)):
        start, stop = starts[i], starts[i] + params[i].size
        found = _first_non_finite_entry(
            params[i],
            grads[i],
            exp_avg[start:stop],
            exp_avg_sq[start:stop],
            c,
            decoupled,
            decay_grad,
        )
        if found >= 0:
            return 3 * i + found
    return -1


@jit
def adam_write(
    params: Any,
    grads: Any,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    starts: np.ndarray,
    coefficients: np.ndarray,
    decoupled: bool,
    decay_grad: bool,
) -> None:
    """The computation of :func:`adam_first_non_finite`, written: params (writable views),
    exp_avg and exp_avg_sq in place."""
    c = _scalars(coefficients)
    for i in range(len(params)):
        start, stop = starts[i], starts[i] + params[i].size
        _write_entries(
            params[i],
            grads[i],
            exp_avg[start:stop],
            exp_avg_sq[start:stop],
            c,
            decoupled,
            decay_grad,
        )


class AdamGroup(NamedTuple):
    """The parameters of one dtype, with their gradients and their moments' flat arrays."""

    positions: tuple[int, ...]  # each parameter's index in the module's order
    params: tuple[np.ndarray, ...]  # the parameter arrays themselves (flags set around writes)
    read_only_params: list[tuple]  # chunked read-only views, for the checking pass
    grads: list[tuple]  # chunked views of the gradients
    exp_avg: np.ndarray  # flat, the parameters' dtype
    exp_avg_sq: np.ndarray
    starts: np.ndarray  # (CHUNK · number of chunks,) int64: where each one's entries begin


def adam_group(
    positions: Sequence[int],
    params: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    starts: Sequence[int],
) -> AdamGroup:
    """A group over `params` (one dtype, :func:`supported`) and their gradients (the same
    shapes and dtype, writable); parameter i's moments are exp_avg[starts[i] : + its size]."""
    if not len(starts) == len(params) == len(grads) == len(positions):
        raise ValueError("adam_group: one position, gradient and start per parameter")
    sizes = np.array([p.size for p in params], dtype=np.int64)
    begin = np.zeros(-(-len(params) // CHUNK) * CHUNK, dtype=np.int64)  # padding: 0, size 0
    begin[: len(params)] = starts
    dtype = exp_avg.dtype
    if not (
        exp_avg.ndim == 1
        and exp_avg.shape == exp_avg_sq.shape
        and all(a.dtype == dtype for a in (*params, *grads, exp_avg_sq))
        and supported([*params, *grads, exp_avg, exp_avg_sq])
        and all(
            g.flags.writeable and g.shape == p.shape for p, g in zip(params, grads, strict=True)
        )
        and (begin >= 0).all()
        and (begin[: len(params)] + sizes <= exp_avg.size).all()
    ):  # the loops check no index
        raise ValueError("adam_group: arrays of one dtype, each inside the flat moments")
    read_only = [p.reshape(-1) for p in params]
    for view in read_only:
        view.flags.writeable = False  # even inside an editing block: one type for the tuples
    return AdamGroup(
        tuple(positions),
        tuple(params),
        chunked(read_only, dtype),
        chunked(grads, dtype),
        exp_avg,
        exp_avg_sq,
        begin,
    )


def adam_coefficients(
    dtype: np.dtype,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> np.ndarray:
    """The scalars of one step, computed in Python floats exactly as adam_update computes them,
    then rounded to `dtype` — as NumPy does when a Python float meets an array of that dtype."""
    values = [
        1 - lr * weight_decay,  # AdamW's decay factor
        weight_decay,
        1 - beta1,
        beta2,
        1 - beta2,
        (1 - beta2**step) ** 0.5,
        eps,
        -(lr / (1 - beta1**step)),  # minus the step size
    ]
    with np.errstate(over="ignore"):  # a huge lr: an inf here, then a non-finite update
        return np.array(values, dtype=dtype)


def adam_step(
    groups: Sequence[AdamGroup],
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
) -> tuple[int, str] | None:
    """One Adam (AdamW with `decoupled`) step of every group, all or nothing.

    A first pass computes every new value and checks it; if any is NaN or inf, nothing is
    written and the result is (position, what) of the first such parameter in the module's
    order, `what` one of "update", "exp_avg", "exp_avg_sq". Else a second pass recomputes the
    same values (bit-identical: the same compiled arithmetic) and writes them, the parameters
    writable only meanwhile, and the weights' version moves on; the result is None."""
    decay_grad = (not decoupled) and weight_decay != 0
    scalars = [
        adam_coefficients(
            group.exp_avg.dtype,
            step=step,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
        )
        for group in groups
    ]
    first: tuple[int, str] | None = None
    for group, c in zip(groups, scalars, strict=True):
        chunks = zip(group.read_only_params, group.grads, strict=True)
        for k, (some_params, their_grads) in enumerate(chunks):
            starts = group.starts[k * CHUNK : (k + 1) * CHUNK]
            found = adam_first_non_finite(
                some_params,
                their_grads,
                group.exp_avg,
                group.exp_avg_sq,
                starts,
                c,
                decoupled,
                decay_grad,
            )
            if found >= 0:
                position = group.positions[k * CHUNK + found // 3]
                if first is None or position < first[0]:
                    first = (position, WHAT[found % 3])
                break
    if first is not None:
        return first
    everything = [p for group in groups for p in group.params]
    before = [p.flags.writeable for p in everything]
    try:
        for p in everything:
            p.flags.writeable = True
        for group, c in zip(groups, scalars, strict=True):
            # Views made now, the parameters writable, are typed writable; none outlives this.
            writable = chunked(group.params, group.exp_avg.dtype)
            for k, (some_params, their_grads) in enumerate(zip(writable, group.grads, strict=True)):
                starts = group.starts[k * CHUNK : (k + 1) * CHUNK]
                adam_write(
                    some_params,
                    their_grads,
                    group.exp_avg,
                    group.exp_avg_sq,
                    starts,
                    c,
                    decoupled,
                    decay_grad,
                )
    finally:
        for p, writeable in zip(everything, before, strict=True):
            p.flags.writeable = writeable
        weights_changed()
    return None


# -- the gradients' norm ------------------------------------------------------------------------
@sum_jit
def square_sums(grads: Any, out: np.ndarray) -> None:
    """out[i] = Σ grads[i]², accumulated in float64 (a float32 gradient cannot overflow it); a
    NaN or inf anywhere in grads[i] makes out[i] NaN or inf.

    grads: a tuple of CHUNK 1-D arrays; out: (CHUNK,) float64."""
    for i in range(len(grads)):
        g = grads[i]
        total = 0.0
        for j in range(g.size):
            x = np.float64(g[j])
            total += x * x
        out[i] = total


def grad_square_sums(grads: Sequence[np.ndarray]) -> np.ndarray | None:
    """(len(grads),) float64: each gradient's sum of squares, or None when the loop cannot take
    them in place (see :func:`supported`)."""
    if not supported(grads):
        return None
    sums = np.empty(len(grads), dtype=np.float64)
    part = np.empty(CHUNK, dtype=np.float64)
    for dtype in SUPPORTED_DTYPES:
        positions = [i for i, g in enumerate(grads) if g.dtype == dtype]
        views = chunked([grads[i] for i in positions], dtype)
        for k, chunk in enumerate(views):
            square_sums(chunk, part)
            mine = positions[k * CHUNK : (k + 1) * CHUNK]
            sums[mine] = part[: len(mine)]
    return sums
