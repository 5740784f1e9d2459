"""Loss functions as pure functions: each returns the loss and its gradient w.r.t. the prediction.

Returning the gradient together with the value keeps the training loop explicit (no autograd):
`loss, dpred = mse_loss(pred, target)`, then `dpred` is fed to the head's `backward`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..core.cell import sigmoid
from ..core.validation import FLOAT_DTYPES, as_float_array


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
    """
    logits = np.asarray(logits)
    if logits.dtype not in FLOAT_DTYPES or logits.ndim < 1:
        raise TypeError(
            f"cross_entropy: logits must be a float32/float64 array (…, C), got dtype "
            f"{logits.dtype} and shape {logits.shape}"
        )
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"cross_entropy: targets have shape {targets.shape}, expected {logits.shape[:-1]} "
            f"for logits of shape {logits.shape}"
        )
    counted = targets != ignore_index
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != targets.shape:
            raise ValueError(
                f"cross_entropy: mask must be boolean of shape {targets.shape}, got {mask.dtype} "
                f"{mask.shape}"
            )
        counted &= mask
    classes = logits.shape[-1]
    chosen = targets[counted]
    if chosen.size and (chosen.min() < 0 or chosen.max() >= classes):
        raise ValueError(
            f"cross_entropy: targets must be in [0, {classes}), got {chosen.min()}..{chosen.max()}"
        )
    n = int(counted.sum())
    if n == 0:
        raise ValueError("cross_entropy: no target counts (all ignored or masked)")
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
