"""numpy_lstm.Linear computes what torch.nn.Linear computes, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import TOLERANCE, TORCH_DTYPE, to_torch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", [(), (4,), (3, 2)])
def test_linear_matches_torch(
    rng: np.random.Generator, dtype: type, bias: bool, lead: tuple[int, ...]
) -> None:
    ours = numpy_lstm.Linear(5, 3, bias=bias, dtype=dtype, rng=rng)
    theirs = torch.nn.Linear(5, 3, bias=bias, dtype=TORCH_DTYPE[dtype])
    theirs.load_state_dict({k: to_torch(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((*lead, 5)).astype(dtype)
    dy = rng.standard_normal((*lead, 3)).astype(dtype)
    x_t = to_torch(x, requires_grad=True)
    y_t = theirs(x_t)
    (y_t * to_torch(dy)).sum().backward()
    y = ours(x)
    dx = ours.backward(dy)
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOLERANCE[dtype])
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **TOLERANCE[dtype])
    for name, param in theirs.named_parameters():
        np.testing.assert_allclose(ours.grads[name], param.grad.numpy(), **TOLERANCE[dtype])


def test_linear_default_init_is_torchs_range(rng: np.random.Generator) -> None:
    layer = numpy_lstm.Linear(100, 50, rng=rng)
    bound = 1 / np.sqrt(100)
    for name, value in layer.state_dict().items():
        assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound, name


def test_linear_rejects_bad_input() -> None:
    layer = numpy_lstm.Linear(5, 3)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 5\), got \(2, 4\)"):
        layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Linear.backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((2, 3), np.float32))
    layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\), got \(2, 4\)"):
        layer.backward(np.zeros((2, 4), np.float32))
