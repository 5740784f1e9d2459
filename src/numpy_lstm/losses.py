"""Loss functions as pure functions: each returns the loss and its gradient w.r.t. the prediction.

Returning the gradient together with the value keeps the training loop explicit (no autograd):
`loss, dpred = mse_loss(pred, target)`, then `dpred` is fed to the head's `backward`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import FLOAT_DTYPES, as_float_array


def mse_loss(pred: Any, target: Any) -> tuple[float, np.ndarray]:
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
