"""numpy_lstm.LSTM / LSTMCell compute what torch.nn.LSTM / LSTMCell compute, to the last digits.

Same weights (every gate distinct), same inputs, same upstream gradients: forward outputs, final
states and the gradients of x, h0, c0 and every parameter must agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_lstm
from conftest import TOLERANCE, TORCH_DTYPE, distinct_gate_state, to_torch

DTYPES = [np.float32, np.float64]


def assert_close(ours: np.ndarray, theirs: torch.Tensor, dtype: type, what: str) -> None:
    assert ours.dtype == dtype, f"{what}: dtype {ours.dtype}, expected {dtype}"
    np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOLERANCE[dtype], err_msg=what)


shapes = st.fixed_dictionaries(
    {
        "T": st.integers(1, 8),
        "B": st.integers(1, 5),
        "I": st.integers(1, 7),
        "H": st.integers(1, 9),
        "bias": st.booleans(),
        "batch_first": st.booleans(),
        "unbatched": st.booleans(),
        "given_state": st.booleans(),
        "grad_on": st.sampled_from(["out", "state", "both"]),
        "seed": st.integers(0, 2**32 - 1),
    }
)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60, deadline=None)
@given(case=shapes)
def test_lstm_matches_torch_forward_and_all_gradients(dtype: type, case: dict) -> None:
    T, B, I, H = case["T"], case["B"], case["I"], case["H"]
    rng = np.random.default_rng(case["seed"])
    state = distinct_gate_state(rng, I, H, dtype, bias=case["bias"])
    ours = numpy_lstm.LSTM(I, H, bias=case["bias"], batch_first=case["batch_first"], dtype=dtype)
    ours.load_state_dict(state)
    theirs = torch.nn.LSTM(
        I, H, bias=case["bias"], batch_first=case["batch_first"], dtype=TORCH_DTYPE[dtype]
    )
    theirs.load_state_dict({k: to_torch(v) for k, v in state.items()})

    if case["unbatched"]:
        x_shape, state_shape = (T, I), (1, H)
    else:
        x_shape = (B, T, I) if case["batch_first"] else (T, B, I)
        state_shape = (1, B, H)
    x = rng.standard_normal(x_shape).astype(dtype)
    h0 = rng.standard_normal(state_shape).astype(dtype)
    c0 = rng.standard_normal(state_shape).astype(dtype)

    x_t, h0_t, c0_t = (to_torch(a, requires_grad=True) for a in (x, h0, c0))
    if case["given_state"]:
        out, (h_n, c_n) = ours(x, (h0, c0))
        out_t, (h_n_t, c_n_t) = theirs(x_t, (h0_t, c0_t))
    else:
        out, (h_n, c_n) = ours(x)
        out_t, (h_n_t, c_n_t) = theirs(x_t)
    for name, a, b in (("out", out, out_t), ("h_n", h_n, h_n_t), ("c_n", c_n, c_n_t)):
        assert a.shape == tuple(b.shape), name
        assert_close(a, b, dtype, name)

    d_out = rng.standard_normal(out.shape).astype(dtype) if case["grad_on"] != "state" else None
    d_state = (None, None)
    if case["grad_on"] != "out":
        d_state = tuple(rng.standard_normal(state_shape).astype(dtype) for _ in range(2))
    dx, (dh0, dc0) = ours.backward(d_out, d_state)

    loss = sum(
        (tensor * to_torch(grad)).sum()
        for tensor, grad in ((out_t, d_out), (h_n_t, d_state[0]), (c_n_t, d_state[1]))
        if grad is not None
    )
    loss.backward()
    assert_close(dx, x_t.grad, dtype, "dx")
    if case["given_state"]:
        assert_close(dh0, h0_t.grad, dtype, "dh0")
        assert_close(dc0, c0_t.grad, dtype, "dc0")
    assert set(ours.grads) == {name for name, _ in theirs.named_parameters()}
    for name, param in theirs.named_parameters():
        assert_close(ours.grads[name], param.grad, dtype, f"grad of {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(
    B=st.integers(1, 6),
    I=st.integers(1, 7),
    H=st.integers(1, 9),
    bias=st.booleans(),
    unbatched=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_lstm_cell_matches_torch(
    dtype: type, B: int, I: int, H: int, bias: bool, unbatched: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    state = distinct_gate_state(rng, I, H, dtype, bias=bias, suffix="")
    ours = numpy_lstm.LSTMCell(I, H, bias=bias, dtype=dtype)
    ours.load_state_dict(state)
    theirs = torch.nn.LSTMCell(I, H, bias=bias, dtype=TORCH_DTYPE[dtype])
    theirs.load_state_dict({k: to_torch(v) for k, v in state.items()})

    batch = () if unbatched else (B,)
    x = rng.standard_normal((*batch, I)).astype(dtype)
    h0, c0, dh1, dc1 = (rng.standard_normal((*batch, H)).astype(dtype) for _ in range(4))
    x_t, h0_t, c0_t = (to_torch(a, requires_grad=True) for a in (x, h0, c0))

    h1, c1 = ours(x, (h0, c0))
    h1_t, c1_t = theirs(x_t, (h0_t, c0_t))
    assert_close(h1, h1_t, dtype, "h1")
    assert_close(c1, c1_t, dtype, "c1")

    dx, (dh0, dc0) = ours.backward((dh1, dc1))
    ((h1_t * to_torch(dh1)).sum() + (c1_t * to_torch(dc1)).sum()).backward()
    assert_close(dx, x_t.grad, dtype, "dx")
    assert_close(dh0, h0_t.grad, dtype, "dh0")
    assert_close(dc0, c0_t.grad, dtype, "dc0")
    for name, param in theirs.named_parameters():
        assert_close(ours.grads[name], param.grad, dtype, f"grad of {name}")


def test_a_swapped_gate_is_caught(rng: np.random.Generator) -> None:
    """The parity tests can fail: swapping two gate blocks moves the output far beyond tolerance."""
    I, H = 3, 4
    state = distinct_gate_state(rng, I, H, np.float64)
    x = rng.standard_normal((6, 2, I))
    ours = numpy_lstm.LSTM(I, H, dtype=np.float64)
    ours.load_state_dict(state)
    reference, _ = ours(x)
    for a, b in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
        order = [0, 1, 2, 3]
        order[a], order[b] = b, a
        swapped = {
            k: v.reshape(4, H, *v.shape[1:])[order].reshape(v.shape) for k, v in state.items()
        }
        ours.load_state_dict(swapped)
        out, _ = ours(x)
        assert np.abs(out - reference).max() > 1e-3, f"swapping gates {a} and {b} went unnoticed"


def test_default_initialisation_follows_torch(rng: np.random.Generator) -> None:
    """Every parameter ~ U(−1/√H, 1/√H): the range is respected and filled, and gates differ."""
    H = 64
    lstm = numpy_lstm.LSTM(10, H, rng=rng)
    bound = 1 / np.sqrt(H)
    for name, value in lstm.state_dict().items():
        assert value.dtype == np.float32, name
        assert np.abs(value).max() <= bound, name
        assert np.abs(value).max() > 0.95 * bound, name
        assert abs(value.mean()) < 0.1 * bound, name
    blocks = lstm.weight_hh_l0.reshape(4, H, H)
    assert all(not np.allclose(blocks[0], blocks[k]) for k in (1, 2, 3))
    # Same seed → same weights; a different seed → different weights.
    same = numpy_lstm.LSTM(10, H, rng=7).state_dict()
    again = numpy_lstm.LSTM(10, H, rng=7).state_dict()
    other = numpy_lstm.LSTM(10, H, rng=8).state_dict()
    assert all(np.array_equal(same[k], again[k]) for k in same)
    assert not np.array_equal(same["weight_ih_l0"], other["weight_ih_l0"])
