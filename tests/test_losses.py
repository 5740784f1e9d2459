"""mse_loss against torch.nn.functional.mse_loss: the value, the gradient from torch's autograd,
the dtype, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TORCH_DTYPE, to_torch
from numpy_lstm.train.losses import mse_loss

TOL = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (4, 1), (3, 5), (2, 3, 4)])
def test_value_and_gradient_match_torch(
    rng: np.random.Generator, dtype: type, shape: tuple[int, ...]
) -> None:
    pred = rng.normal(size=shape).astype(dtype)
    target = rng.normal(size=shape).astype(dtype)
    pred_before, target_before = pred.copy(), target.copy()

    loss, dpred = mse_loss(pred, target)

    pred_t = to_torch(pred, requires_grad=True)
    loss_t = torch.nn.functional.mse_loss(pred_t, to_torch(target), reduction="mean")
    loss_t.backward()
    assert loss_t.dtype == TORCH_DTYPE[dtype]
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, loss_t.item(), **TOL[dtype])
    assert dpred.dtype == dtype
    assert dpred.shape == shape
    np.testing.assert_allclose(dpred, pred_t.grad.numpy(), **TOL[dtype])
    # pure: the inputs are untouched
    np.testing.assert_array_equal(pred, pred_before)
    np.testing.assert_array_equal(target, target_before)


def test_perfect_prediction_has_zero_loss_and_gradient() -> None:
    y = np.array([[0.5], [1.5]], dtype=np.float32)
    loss, dpred = mse_loss(y, y.copy())
    assert loss == 0.0
    assert not dpred.any()


def test_known_value() -> None:
    # diffs (1, -2, 3): mean of squares 14/3; gradient 2·diff/3
    loss, dpred = mse_loss(np.array([1.0, 0.0, 3.0]), np.array([0.0, 2.0, 0.0]))
    assert loss == pytest.approx(14 / 3, rel=1e-15)
    np.testing.assert_allclose(dpred, [2 / 3, -4 / 3, 2.0], rtol=1e-15)


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"pred has shape \(4, 1\).*target has shape \(4,\)"):
        mse_loss(np.zeros((4, 1)), np.zeros(4))


def test_dtype_mix_is_refused_not_upcast() -> None:
    with pytest.raises(TypeError, match="target"):
        mse_loss(np.zeros(3, dtype=np.float32), np.zeros(3, dtype=np.float64))


def test_integer_prediction_is_refused() -> None:
    with pytest.raises(TypeError, match="pred must be float32 or float64"):
        mse_loss(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64))


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        mse_loss(np.zeros((0, 2)), np.zeros((0, 2)))
