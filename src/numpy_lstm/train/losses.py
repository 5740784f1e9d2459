"""Loss functions as pure functions: each returns the loss and its gradient w.r.t. the prediction.

Returning the gradient together with the value keeps the training loop explicit (no autograd):
`loss, dpred = mse_loss(pred, target)`, then `dpred` is fed to the head's `backward`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..core.cell import sigmoid
from ..core.validation import FLOAT_DTYPES, as_float_array
from ..kernels.products import linear, linear_input_grad, matmul
from ..kernels.select import fast_enabled
from ..kernels.training import softmax_cross_entropy
from ..nn.layers import Linear


def mse_loss(pred: npt.ArrayLike, target: npt.ArrayLike) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements and its gradient.

    pred, target: any shape (…), the same for both, float32 or float64 (the same dtype).
    Returns (loss, dpred): loss = mean((pred − target)²) as a Python float, exactly
    `torch.nn.functional.mse_loss(pred, target, reduction="mean")`, and dpred (…) =
    2·(pred − target)/N in pred's dtype, with N the number of elements.
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"mse_loss: pred has shape {pred.shape} but target has shape {target.shape}; "
            "they must be equal (no broadcasting, to catch a (B,) vs (B, 1) mix-up)"
        )
    if pred.size == 0:
        raise ValueError(f"mse_loss: pred and target are empty (shape {pred.shape})")
    if pred.dtype not in FLOAT_DTYPES:
        raise TypeError(f"mse_loss: pred must be float32 or float64, got dtype {pred.dtype}")
    target = as_float_array("target", target, pred.dtype)  # no silent float32/64 mix
    diff = pred - target
    # 2/N is formed in float64 and rounded once into pred's dtype (torch's `norm` does the same).
    scale = pred.dtype.type(2.0 / diff.size)
    return float(np.mean(diff * diff)), scale * diff


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, stable: the max is subtracted before exponentiating."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    ignore_index: int = -100,
    mask: npt.ArrayLike | None = None,
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy over logits and its gradient, like `torch.nn.functional.cross_entropy`
    (reduction="mean" over the counted targets).

    logits (…, C) float32/float64; targets (…) integer class indices in [0, C). Targets equal to
    `ignore_index`, or where `mask` (…) is False, do not count. Returns (loss, dlogits (…, C)).
    Loss in nats; divide by ln 2 for bits.

    With the fast path on, one compiled pass per row (:mod:`numpy_lstm.kernels.training`) gives
    the same results to rounding; the whole-array NumPy below (used with the fast path off) is
    the readable definition that tests hold the kernel to.
    """
    logits, targets, counted = _checked_targets(
        "cross_entropy", logits, targets, ignore_index, mask
    )
    if not fast_enabled():
        return _cross_entropy_reference(logits, targets, counted)
    classes = logits.shape[-1]
    dlogits = np.empty(logits.shape, logits.dtype)
    loss, _ = softmax_cross_entropy(
        np.ascontiguousarray(logits).reshape(-1, classes),
        targets.reshape(-1),
        counted.reshape(-1),
        out=dlogits.reshape(-1, classes),
    )
    return loss, dlogits


def _checked_targets(
    caller: str,
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    ignore_index: int,
    mask: npt.ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate cross_entropy's arguments → (logits (…, C), targets (…), counted (…) bool)."""
    logits = np.asarray(logits)
    if logits.dtype not in FLOAT_DTYPES or logits.ndim < 1:
        raise TypeError(
            f"{caller}: logits must be a float32/float64 array (…, C), got dtype "
            f"{logits.dtype} and shape {logits.shape}"
        )
    return logits, *_checked_classes(caller, logits.shape, targets, ignore_index, mask)


def _checked_classes(
    caller: str,
    logits_shape: tuple[int, ...],
    targets: npt.ArrayLike,
    ignore_index: int,
    mask: npt.ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray]:
    """targets (…) and mask (…) for logits of shape (…, C) → (targets, counted (…) bool), or
    TypeError/ValueError naming what is wrong."""
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{caller}: targets must be integers, got dtype {targets.dtype}")
    if targets.shape != logits_shape[:-1]:
        raise ValueError(
            f"{caller}: targets have shape {targets.shape}, expected {logits_shape[:-1]} "
            f"for logits of shape {logits_shape}"
        )
    counted = targets != ignore_index
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != targets.shape:
            raise ValueError(
                f"{caller}: mask must be boolean of shape {targets.shape}, got {mask.dtype} "
                f"{mask.shape}"
            )
        counted &= mask
    classes = logits_shape[-1]
    chosen = targets[counted]
    if chosen.size and (chosen.min() < 0 or chosen.max() >= classes):
        raise ValueError(
            f"{caller}: targets must be in [0, {classes}), got {chosen.min()}..{chosen.max()}"
        )
    if not counted.any():
        raise ValueError(f"{caller}: no target counts (all ignored or masked)")
    return targets, counted


def _cross_entropy_reference(
    logits: np.ndarray, targets: np.ndarray, counted: np.ndarray
) -> tuple[float, np.ndarray]:
    """cross_entropy on checked arguments, in whole-array NumPy (the definition)."""
    n = int(counted.sum())
    log_p = log_softmax(logits)
    safe = np.where(counted, targets, 0)
    picked = np.take_along_axis(log_p, safe[..., None], axis=-1)[..., 0]
    loss = -float(picked[counted].sum(dtype=np.float64)) / n
    # ∂/∂logits of −log p_target is softmax − onehot; uncounted rows pass no gradient.
    dlogits = np.exp(log_p)
    np.put_along_axis(
        dlogits, safe[..., None], np.take_along_axis(dlogits, safe[..., None], -1) - 1, -1
    )
    dlogits *= (counted / logits.dtype.type(n))[..., None].astype(logits.dtype)
    return loss, dlogits


def linear_cross_entropy(
    head: Linear,
    x: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    ignore_index: int = -100,
    mask: npt.ArrayLike | None = None,
) -> tuple[float, np.ndarray]:
    """A Linear head and the softmax cross-entropy of its output, forward and backward in one:
    what `loss, dlogits = cross_entropy(head(x), targets, …)` then `dx = head.backward(dlogits)`
    give (to rounding), without their extra passes over the logits.

    x (…, in) in the head's dtype, targets (…), mask (…) as for :func:`cross_entropy`. Returns
    (loss, dx (…, in)); head's weight and bias gradients accumulate, as head.backward's do.

    With the fast path on: logits = x·Wᵀ, then one compiled pass per row adds the bias, takes
    the loss, and overwrites the logits with their gradient while summing the bias gradient;
    then dW += dlogitsᵀ·x and dx = dlogits·W. Off, it is literally the three calls above.
    """
    if not fast_enabled():
        loss, dlogits = cross_entropy(head(x), targets, ignore_index=ignore_index, mask=mask)
        return loss, head.backward(dlogits)
    x, flat, logits, targets, counted = _head_logits(head, x, targets, ignore_index, mask)
    bias = getattr(head, "bias", None)  # a Linear(bias=False) has none
    loss, dbias = softmax_cross_entropy(logits, targets, counted, bias=bias, out=logits)
    grads = head.grads  # the live buffers
    grads["weight"] += matmul(logits.T, flat)
    if bias is not None and dbias is not None:
        grads["bias"] += dbias.astype(head.dtype)
    return loss, linear_input_grad(logits, head.weight).reshape(x.shape)


def linear_cross_entropy_loss(
    head: Linear,
    x: npt.ArrayLike,
    targets: npt.ArrayLike,
    *,
    ignore_index: int = -100,
    mask: npt.ArrayLike | None = None,
) -> float:
    """The loss of :func:`linear_cross_entropy` only (no gradient is formed or accumulated):
    `cross_entropy(head(x), targets, …)[0]`, to rounding."""
    if not fast_enabled():
        return cross_entropy(head(x), targets, ignore_index=ignore_index, mask=mask)[0]
    _, _, logits, targets, counted = _head_logits(head, x, targets, ignore_index, mask)
    return softmax_cross_entropy(logits, targets, counted, bias=getattr(head, "bias", None))[0]


def _head_logits(
    head: Linear,
    x: npt.ArrayLike,
    targets: npt.ArrayLike,
    ignore_index: int,
    mask: npt.ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fused head's start: x checked as head.forward checks it, targets and mask as
    cross_entropy checks them → (x (…, in), x flat (N, in), logits x·Wᵀ (N, C) without the bias
    — a fresh array the kernel may overwrite —, targets (N,), counted (N,) bool)."""
    x = head.checked_input(x)
    flat = x.reshape(-1, head.in_features)
    targets, counted = _checked_classes(
        "cross_entropy", (*x.shape[:-1], head.out_features), targets, ignore_index, mask
    )
    logits = linear(flat, head.weight)
    return x, flat, logits, targets.reshape(-1), counted.reshape(-1)


def bce_with_logits(logits: npt.ArrayLike, targets: npt.ArrayLike) -> tuple[float, np.ndarray]:
    """Binary cross-entropy on logits, like `torch.nn.functional.binary_cross_entropy_with_logits`
    (mean), computed as max(z, 0) − z·y + log(1 + e^{−|z|}) so no exp can overflow.

    logits, targets: the same shape and float dtype; targets in [0, 1]. Returns (loss, dlogits)."""
    logits = np.asarray(logits)
    if logits.dtype not in FLOAT_DTYPES:
        raise TypeError(f"bce_with_logits: logits must be float32/float64, got {logits.dtype}")
    targets = as_float_array("targets", targets, logits.dtype)
    if targets.shape != logits.shape:
        raise ValueError(
            f"bce_with_logits: targets have shape {targets.shape}, logits {logits.shape}"
        )
    if logits.size == 0:
        raise ValueError("bce_with_logits: logits are empty")
    losses = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    scale = logits.dtype.type(1.0 / logits.size)
    return float(losses.mean(dtype=np.float64)), (sigmoid(logits) - targets) * scale
