"""Different ways of asking for the same computation give the same answer, in the same dtype."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import distinct_gate_state

DTYPES = [np.float32, np.float64]


def matching_cell(lstm: numpy_lstm.LSTM) -> numpy_lstm.LSTMCell:
    cell = numpy_lstm.LSTMCell(lstm.input_size, lstm.hidden_size, dtype=lstm.dtype)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in lstm.state_dict().items()})
    return cell


@pytest.mark.parametrize("dtype", DTYPES)
def test_stepping_a_cell_equals_running_the_sequence(rng: np.random.Generator, dtype: type) -> None:
    T, B, I, H = 7, 3, 4, 5
    lstm = numpy_lstm.LSTM(I, H, dtype=dtype)
    lstm.load_state_dict(distinct_gate_state(rng, I, H, dtype))
    cell = matching_cell(lstm)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h, c = (rng.standard_normal((B, H)).astype(dtype) for _ in range(2))
    d_out = rng.standard_normal((T, B, H)).astype(dtype)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}

    out, (h_n, c_n) = lstm(x, (h[None], c[None]))
    dx, (dh0, dc0) = lstm.backward(d_out)

    # Forward step by step, keeping each step's input state, then BPTT by hand through the
    # cells; a cell's backward differentiates its last call, so each step is called again first.
    states, cell_grads = [], {k: 0 for k in cell.grads}
    for t in range(T):
        states.append((h, c))
        h, c = cell(x[t], (h, c))
        np.testing.assert_allclose(out[t], h, **tol)
    np.testing.assert_allclose(h_n[0], h, **tol)
    np.testing.assert_allclose(c_n[0], c, **tol)
    dh, dc = np.zeros_like(h), np.zeros_like(c)
    for t in reversed(range(T)):
        cell(x[t], states[t])
        cell.zero_grad()
        dx_t, (dh, dc) = cell.backward((dh + d_out[t], dc))
        cell_grads = {k: cell_grads[k] + v for k, v in cell.grads.items()}
        np.testing.assert_allclose(dx[t], dx_t, **tol)
    np.testing.assert_allclose(dh0[0], dh, **tol)
    np.testing.assert_allclose(dc0[0], dc, **tol)
    for name, grad in cell_grads.items():
        np.testing.assert_allclose(lstm.grads[f"{name}_l0"], grad, **tol, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unbatched_equals_a_batch_of_one(rng: np.random.Generator, dtype: type) -> None:
    lstm = numpy_lstm.LSTM(3, 4, dtype=dtype, rng=rng)
    x = rng.standard_normal((6, 3)).astype(dtype)
    h0, c0 = (rng.standard_normal((1, 4)).astype(dtype) for _ in range(2))
    d_out = rng.standard_normal((6, 4)).astype(dtype)
    out, (h_n, c_n) = lstm(x, (h0, c0))
    assert out.shape == (6, 4) and h_n.shape == c_n.shape == (1, 4)
    dx, (dh0, dc0) = lstm.backward(d_out, (h0, None))
    unbatched_grads = {k: v.copy() for k, v in lstm.grads.items()}
    lstm.zero_grad()

    out_b, (h_b, c_b) = lstm(x[:, None], (h0[:, None], c0[:, None]))
    dx_b, (dh0_b, dc0_b) = lstm.backward(d_out[:, None], (h0[:, None], None))
    for ours, batched in [(out, out_b[:, 0]), (h_n, h_b[:, 0]), (c_n, c_b[:, 0]), (dx, dx_b[:, 0])]:
        np.testing.assert_array_equal(ours, batched)
    np.testing.assert_array_equal(dh0, dh0_b[:, 0])
    np.testing.assert_array_equal(dc0, dc0_b[:, 0])
    for name, grad in lstm.grads.items():
        np.testing.assert_array_equal(unbatched_grads[name], grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_first_equals_time_major(rng: np.random.Generator, dtype: type) -> None:
    time_major = numpy_lstm.LSTM(3, 4, dtype=dtype, rng=rng)
    batch_first = numpy_lstm.LSTM(3, 4, batch_first=True, dtype=dtype)
    batch_first.load_state_dict(time_major.state_dict())
    x = rng.standard_normal((5, 2, 3)).astype(dtype)
    d_out = rng.standard_normal((5, 2, 4)).astype(dtype)
    out_tm, (h_tm, c_tm) = time_major(x)
    out_bf, (h_bf, c_bf) = batch_first(x.transpose(1, 0, 2))
    np.testing.assert_array_equal(out_bf, out_tm.transpose(1, 0, 2))
    np.testing.assert_array_equal(h_bf, h_tm)  # states stay (1, B, H) either way, as in torch
    np.testing.assert_array_equal(c_bf, c_tm)
    dx_tm, _ = time_major.backward(d_out)
    dx_bf, _ = batch_first.backward(d_out.transpose(1, 0, 2))
    np.testing.assert_array_equal(dx_bf, dx_tm.transpose(1, 0, 2))
    for name, grad in time_major.grads.items():
        np.testing.assert_array_equal(batch_first.grads[name], grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_kept_end_to_end(rng: np.random.Generator, dtype: type) -> None:
    lstm = numpy_lstm.LSTM(3, 4, dtype=dtype, rng=rng)
    out, (h_n, c_n) = lstm(rng.standard_normal((5, 2, 3)).astype(dtype))
    dx, (dh0, dc0) = lstm.backward(np.ones_like(out), (np.ones_like(h_n), np.ones_like(c_n)))
    arrays = [out, h_n, c_n, dx, dh0, dc0, *lstm.state_dict().values(), *lstm.grads.values()]
    assert all(a.dtype == dtype for a in arrays)
    cell = numpy_lstm.LSTMCell(3, 4, dtype=dtype, rng=rng)
    h, c = cell(rng.standard_normal((2, 3)).astype(dtype))
    dx, (dh, dc) = cell.backward((np.ones_like(h), None))
    assert all(a.dtype == dtype for a in [h, c, dx, dh, dc, *cell.grads.values()])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_stable_and_accurate_everywhere(dtype: type) -> None:
    z = np.concatenate([np.linspace(-1e4, 1e4, 20001), [-1e4, -200.0, -88.8, -50.0, 0.0, 50.0]])
    z = z.astype(dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        ours = numpy_lstm.sigmoid(z)
    assert ours.dtype == dtype
    reference = torch.sigmoid(torch.tensor(z, dtype=torch.float64)).numpy()
    # Relative accuracy down to the tiny values for very negative z (subnormals aside).
    finfo = np.finfo(dtype)
    np.testing.assert_allclose(ours, reference, rtol=4 * finfo.eps, atol=finfo.smallest_normal)
    assert np.all((ours >= 0) & (ours <= 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_preactivations_give_finite_results(rng: np.random.Generator, dtype: type) -> None:
    """Weights ~1e4 drive |z| to ~1e4: no overflow warning, every output and gradient finite."""
    lstm = numpy_lstm.LSTM(3, 4, dtype=dtype, rng=rng)
    lstm.load_state_dict({k: v * 3e4 for k, v in lstm.state_dict().items()})
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
        warnings.simplefilter("error")
        out, (h_n, c_n) = lstm(rng.standard_normal((5, 2, 3)).astype(dtype))
        dx, _ = lstm.backward(np.ones_like(out), (np.ones_like(h_n), np.ones_like(c_n)))
    assert all(np.isfinite(a).all() for a in [out, h_n, c_n, dx, *lstm.grads.values()])


def test_outputs_are_not_views_of_the_backward_cache(rng: np.random.Generator) -> None:
    """A user scribbling over the outputs must not change the gradients."""
    lstm = numpy_lstm.LSTM(2, 3, dtype=np.float64, rng=rng)
    x = rng.standard_normal((4, 2, 2))
    out, (h_n, c_n) = lstm(x)
    d_out = rng.standard_normal(out.shape)
    expected, _ = lstm.backward(d_out)
    out[...] = 7.0
    h_n[...] = 7.0
    c_n[...] = 7.0
    again, _ = lstm.backward(d_out)
    np.testing.assert_array_equal(again, expected)


def test_state_is_optional_and_means_zeros(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(2, 3, dtype=np.float64, rng=rng)
    x = rng.standard_normal((4, 2, 2))
    zeros = np.zeros((1, 2, 3))
    implicit, _ = lstm(x)
    explicit, _ = lstm(x, (zeros, zeros))
    np.testing.assert_array_equal(implicit, explicit)
