"""The gradients before an optimizer step: their global L2 norm, the check that every one is
finite, and clipping with torch's semantics (`torch.nn.utils.clip_grad_norm_`).

With the fast path on (:func:`numpy_lstm.kernels.select.fast_enabled`) the norm is one compiled
pass over all gradients (:mod:`numpy_lstm.kernels.optimizers`) that is also the finiteness
check; off, NumPy computes it as it always did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..kernels.select import fast_enabled
from ..nn.module import Module


class NonFiniteError(FloatingPointError):
    """A loss, gradient or update became NaN or infinite; the weights were not updated."""


def clip_grad_norm(module: Module, max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most `max_norm`
    (torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), capped at 1).
    Returns the norm before clipping (see :func:`grad_norm`)."""
    _check_max_norm(max_norm)
    total = grad_norm(module)
    _scale_grads(module.grads.values(), max_norm, total)
    return total


def grad_norm(module: Module) -> float:
    """The global L2 norm of all of `module`'s gradients; NaN or inf when one is not finite
    (inf too when finite float64 gradients have squares beyond float64's range).

    Fast path: each gradient's sum of squares accumulated in float64, one compiled pass. NumPy
    path: the norm of the per-gradient norms, each in the gradient's dtype (as before)."""
    sums = _compiled_square_sums(module)
    if sums is None:
        grads = module.grads.values()
        return float(np.linalg.norm([np.linalg.norm(g.reshape(-1)) for g in grads]))
    return _norm(sums)


def check_and_clip_grads(module: Module, max_norm: float | None, *, step: int) -> None:
    """Before an optimizer step: raise :class:`NonFiniteError` naming the first gradient (in
    the module's order) with a NaN or inf, else, with `max_norm`, clip like
    :func:`clip_grad_norm`. Nothing is changed when it raises.

    Fast path: the one pass of :func:`grad_norm` is also the check — only a non-finite norm
    scans the gradients one by one, to name the culprit. A scan that finds none means finite
    float64 gradients whose squares overflow: the norm is inf and clipping scales them to zero,
    as clip_grad_norm (and torch) always did. NumPy path: the scan, then clip_grad_norm."""
    if max_norm is not None:
        _check_max_norm(max_norm)
    sums = _compiled_square_sums(module)
    if sums is None:
        _raise_if_a_grad_is_not_finite(module, step)
        if max_norm is not None:
            clip_grad_norm(module, max_norm)
        return
    total = _norm(sums)
    if not math.isfinite(total):
        _raise_if_a_grad_is_not_finite(module, step)
    if max_norm is not None:
        _scale_grads(module.grads.values(), max_norm, total)


def _norm(square_sums: np.ndarray) -> float:
    """√(Σ square_sums), with Python's sum: an overflow is inf, not an error."""
    return math.sqrt(sum(square_sums.tolist()))


def _check_max_norm(max_norm: object) -> None:
    if not (isinstance(max_norm, (int, float)) and max_norm > 0):
        raise ValueError(f"max_norm: expected a positive number, got {max_norm!r}")


def _scale_grads(grads: Iterable[np.ndarray], max_norm: float, total: float) -> None:
    """torch's clipping: multiply by max_norm / (total + 1e-6) when that is below 1 (a NaN
    total scales nothing)."""
    coefficient = min(max_norm / (total + 1e-6), 1.0)
    if coefficient < 1.0:
        for grad in grads:
            grad *= grad.dtype.type(coefficient)


def _raise_if_a_grad_is_not_finite(module: Module, step: int) -> None:
    for name, grad in module.grads.items():
        if not np.isfinite(grad).all():
            raise NonFiniteError(
                f"step {step}: the gradient of {name} is not finite; weights left unchanged"
            )


def _compiled_square_sums(module: Module) -> np.ndarray | None:
    """Each gradient's sum of squares (float64, module order) from the compiled pass, or None
    when the fast path is off or cannot take the gradients (then the NumPy path runs)."""
    if not fast_enabled():
        return None
    from ..kernels import optimizers as compiled  # imports numba: only when the fast path works

    return compiled.grad_square_sums(list(module.grads.values()))
