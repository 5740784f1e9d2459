"""Backpropagation through time agrees with central finite differences, in float64.

The loss couples every output: L = Σ d_out·out + Σ dh_n·h_n + Σ dc_n·c_n with fixed random
upstream gradients, so each analytic gradient (x, h0, c0 and every parameter) is checked with
upstream gradients flowing in through the outputs *and* through the final state.
"""

from __future__ import annotations

import numpy as np
import pytest

import numpy_lstm
from conftest import (
    assert_lstm_gradients_match,
    distinct_gate_state,
    numerical_gradient,
    relative_error,
)

MAX_RELATIVE_ERROR = 1e-6


@pytest.mark.parametrize(
    "bias, batch_first, unbatched",
    [(True, False, False), (False, False, False), (True, True, False), (True, False, True)],
)
def test_lstm_gradients_match_finite_differences(
    rng: np.random.Generator, bias: bool, batch_first: bool, unbatched: bool
) -> None:
    T, B, I, H = 5, 3, 3, 4
    lstm = numpy_lstm.LSTM(I, H, bias=bias, batch_first=batch_first, dtype=np.float64)
    lstm.load_state_dict(distinct_gate_state(rng, I, H, np.float64, bias=bias))
    if unbatched:
        x_shape, state_shape = (T, I), (1, H)
    else:
        x_shape, state_shape = ((B, T, I) if batch_first else (T, B, I)), (1, B, H)
    x = rng.standard_normal(x_shape)
    h0, c0 = rng.standard_normal(state_shape), rng.standard_normal(state_shape)
    out, _ = lstm(x, (h0, c0))
    d_out = rng.standard_normal(out.shape)
    upstream = (d_out, rng.standard_normal(state_shape), rng.standard_normal(state_shape))
    assert_lstm_gradients_match(
        lstm, lambda: lstm(x, (h0, c0)), {"x": x, "h0": h0, "c0": c0}, upstream, MAX_RELATIVE_ERROR
    )


@pytest.mark.parametrize("upstream", ["out only", "h_n only", "c_n only"])
def test_each_upstream_path_alone(rng: np.random.Generator, upstream: str) -> None:
    """Gradients entering only through the outputs, only through h_n or only through c_n."""
    T, B, I, H = 4, 2, 2, 3
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64)
    lstm.load_state_dict(distinct_gate_state(rng, I, H, np.float64))
    x = rng.standard_normal((T, B, I))
    out, (h_n, _) = lstm(x)
    d_out = rng.standard_normal(out.shape) if upstream == "out only" else None
    dh_n = rng.standard_normal(h_n.shape) if upstream == "h_n only" else None
    dc_n = rng.standard_normal(h_n.shape) if upstream == "c_n only" else None

    def loss() -> float:
        out, (h_n, c_n) = lstm(x)
        terms = [(d_out, out), (dh_n, h_n), (dc_n, c_n)]
        return float(sum(np.sum(g * v) for g, v in terms if g is not None))

    lstm.zero_grad()
    dx, _ = lstm.backward(d_out, (dh_n, dc_n))
    weight_grad = lstm.grads["weight_hh_l0"].copy()
    assert relative_error(dx, numerical_gradient(loss, x)) < MAX_RELATIVE_ERROR
    with lstm.editing():  # perturbed in place
        numeric = numerical_gradient(loss, lstm.weight_hh_l0)
    assert relative_error(weight_grad, numeric) < MAX_RELATIVE_ERROR


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("unbatched", [False, True])
def test_lstm_cell_gradients_match_finite_differences(
    rng: np.random.Generator, bias: bool, unbatched: bool
) -> None:
    I, H = 3, 5
    batch = () if unbatched else (4,)
    cell = numpy_lstm.LSTMCell(I, H, bias=bias, dtype=np.float64)
    cell.load_state_dict(distinct_gate_state(rng, I, H, np.float64, bias=bias, suffix=""))
    x = rng.standard_normal((*batch, I))
    h0, c0, dh1, dc1 = (rng.standard_normal((*batch, H)) for _ in range(4))

    def loss() -> float:
        h1, c1 = cell(x, (h0, c0))
        return float(np.sum(dh1 * h1) + np.sum(dc1 * c1))

    loss()
    dx, (dh0, dc0) = cell.backward((dh1, dc1))
    analytic = {"x": dx, "h0": dh0, "c0": dc0, **{k: v.copy() for k, v in cell.grads.items()}}
    inputs = {"x": x, "h0": h0, "c0": c0, **dict(cell.named_parameters())}
    with cell.editing():  # the parameters are perturbed in place
        for name, array in inputs.items():
            error = relative_error(analytic[name], numerical_gradient(loss, array))
            assert error < MAX_RELATIVE_ERROR, f"d{name}: relative error {error:.2e}"


def test_saturated_gates_still_have_exact_gradients(rng: np.random.Generator) -> None:
    """Large weights push gates into saturation, where σ' and tanh' are tiny: still exact."""
    T, B, I, H = 6, 2, 3, 3
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64)
    lstm.load_state_dict({k: 6 * v for k, v in distinct_gate_state(rng, I, H, np.float64).items()})
    x = rng.standard_normal((T, B, I))
    out, _ = lstm(x)
    d_out = rng.standard_normal(out.shape)

    def loss() -> float:
        return float(np.sum(d_out * lstm(x)[0]))

    lstm.zero_grad()
    lstm.backward(d_out)
    with lstm.editing():  # the parameters are perturbed in place
        for name, array in lstm.named_parameters():
            error = relative_error(lstm.grads[name].copy(), numerical_gradient(loss, array))
            assert error < MAX_RELATIVE_ERROR, f"d{name}: relative error {error:.2e}"


def test_gradients_accumulate_until_zero_grad(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(2, 3, dtype=np.float64, rng=rng)
    x = rng.standard_normal((4, 2, 2))
    out, _ = lstm(x)
    d_out = rng.standard_normal(out.shape)
    lstm.backward(d_out)
    once = {k: v.copy() for k, v in lstm.grads.items()}
    lstm.backward(d_out)
    for name, grad in lstm.grads.items():
        np.testing.assert_allclose(grad, 2 * once[name], rtol=1e-14, err_msg=name)
    lstm.zero_grad()
    assert all(not grad.any() for grad in lstm.grads.values())
