"""The full numpy_lstm.LSTM (stacked, bidirectional, projected) computes what torch.nn.LSTM does.

Every combination of bias × batch_first × bidirectional × proj_size × num_layers × dtype: the
same weights (every gate, layer and direction distinct), inputs, initial state and upstream
gradients give the same outputs, final states and gradients of x, h0, c0 and every parameter.
Parameter names, shapes and state_dict order are torch's, so state dicts move both ways.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import (
    TORCH_DTYPE,
    assert_matches,
    distinct_gate_lstm_state,
    load_into_torch,
    to_torch,
    torch_lstm,
)

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

T, B, I, H, P = 4, 3, 3, 4, 2
DTYPES = [np.float32, np.float64]


def twins(
    rng: np.random.Generator, dtype: type, **config: object
) -> tuple[numpy_lstm.LSTM, torch.nn.LSTM]:
    """Our layer and torch's, holding the same distinct-gate weights."""
    theirs = torch_lstm(I, H, dtype, **config)
    state = distinct_gate_lstm_state(rng, theirs, dtype)
    load_into_torch(theirs, state)
    ours = numpy_lstm.LSTM(I, H, **config, dtype=dtype)
    ours.load_state_dict(state)
    return ours, theirs


def state_shapes(
    num_layers: int, bidirectional: bool, proj_size: int, batch: tuple[int, ...] = (B,)
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """torch's (h, c) shapes: (D·num_layers, B, H_out) and (D·num_layers, B, H)."""
    layers = (2 if bidirectional else 1) * num_layers
    return (layers, *batch, proj_size or H), (layers, *batch, H)


def compare_with_torch(
    rng: np.random.Generator,
    ours: numpy_lstm.LSTM,
    theirs: torch.nn.LSTM,
    x: np.ndarray,
    hx: tuple[np.ndarray, np.ndarray] | None,
    upstream: str = "out and state",
) -> None:
    """Forward both, backward both with the same upstream gradients, compare everything."""
    dtype = x.dtype.type
    x_t = to_torch(x, requires_grad=True)
    if hx is None:
        out, (h_n, c_n) = ours(x)
        out_t, (h_n_t, c_n_t) = theirs(x_t)
    else:
        h0_t, c0_t = (to_torch(a, requires_grad=True) for a in hx)
        out, (h_n, c_n) = ours(x, hx)
        out_t, (h_n_t, c_n_t) = theirs(x_t, (h0_t, c0_t))
    assert_matches(out, out_t, dtype, "out")
    assert_matches(h_n, h_n_t, dtype, "h_n")
    assert_matches(c_n, c_n_t, dtype, "c_n")

    def upstream_for(name: str, like: np.ndarray) -> np.ndarray | None:
        wanted = upstream == "out and state" or upstream == name
        wanted = wanted or (upstream == "state" and name in ("h_n", "c_n"))
        return rng.standard_normal(like.shape).astype(dtype) if wanted else None

    d_out, dh_n, dc_n = upstream_for("out", out), upstream_for("h_n", h_n), upstream_for("c_n", c_n)
    ours.zero_grad()
    dx, (dh0, dc0) = ours.backward(d_out, (dh_n, dc_n))
    terms = [(out_t, d_out), (h_n_t, dh_n), (c_n_t, dc_n)]
    sum((t * to_torch(g)).sum() for t, g in terms if g is not None).backward()

    assert_matches(dx, x_t.grad, dtype, "dx")
    if hx is not None:
        assert_matches(dh0, h0_t.grad, dtype, "dh0")
        assert_matches(dc0, c0_t.grad, dtype, "dc0")
    assert list(ours.grads) == list(ours.state_dict()), "grads are keyed like the state_dict"
    for name, param in theirs.named_parameters():
        assert_matches(ours.grads[name], param.grad, dtype, f"grad of {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=["1layer", "2layers", "3layers"])
@pytest.mark.parametrize("proj_size", [0, P], ids=["noproj", "proj"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_every_option_combination_matches_torch(
    rng: np.random.Generator,
    bias: bool,
    batch_first: bool,
    bidirectional: bool,
    proj_size: int,
    num_layers: int,
    dtype: type,
) -> None:
    config = dict(
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        proj_size=proj_size,
    )
    ours, theirs = twins(rng, dtype, **config)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    h_shape, c_shape = state_shapes(num_layers, bidirectional, proj_size)
    hx = (rng.standard_normal(h_shape).astype(dtype), rng.standard_normal(c_shape).astype(dtype))
    compare_with_torch(rng, ours, theirs, x, hx)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("upstream", ["out", "h_n", "c_n", "state"])
def test_each_upstream_path_alone_matches_torch(
    rng: np.random.Generator, dtype: type, upstream: str
) -> None:
    """Gradient entering only through the outputs, or only through h_n and/or c_n."""
    config = dict(num_layers=2, bidirectional=True, proj_size=P)
    ours, theirs = twins(rng, dtype, **config)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h_shape, c_shape = state_shapes(2, True, P)
    hx = (rng.standard_normal(h_shape).astype(dtype), rng.standard_normal(c_shape).astype(dtype))
    compare_with_torch(rng, ours, theirs, x, hx, upstream=upstream)


@pytest.mark.parametrize("batch_first", [False, True])
def test_no_initial_state_means_zeros(rng: np.random.Generator, batch_first: bool) -> None:
    config = dict(num_layers=3, bidirectional=True, proj_size=P, batch_first=batch_first)
    ours, theirs = twins(rng, np.float64, **config)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    compare_with_torch(rng, ours, theirs, x, hx=None)
    out, (h_n, c_n) = ours(x)
    h_shape, c_shape = state_shapes(3, True, P)
    out_zeros, (h_n_zeros, c_n_zeros) = ours(x, (np.zeros(h_shape), np.zeros(c_shape)))
    np.testing.assert_array_equal(out, out_zeros)
    np.testing.assert_array_equal(h_n, h_n_zeros)
    np.testing.assert_array_equal(c_n, c_n_zeros)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("given_state", [True, False])
def test_unbatched_bidirectional_stacked_projected(
    rng: np.random.Generator, dtype: type, given_state: bool
) -> None:
    """x (T, I) → out (T, D·P), h_n (D·num_layers, P), c_n (D·num_layers, H): torch's shapes."""
    ours, theirs = twins(rng, dtype, num_layers=2, bidirectional=True, proj_size=P)
    x = rng.standard_normal((T, I)).astype(dtype)
    h_shape, c_shape = state_shapes(2, True, P, batch=())
    assert (h_shape, c_shape) == ((4, P), (4, H))
    hx = None
    if given_state:
        hx = tuple(rng.standard_normal(s).astype(dtype) for s in (h_shape, c_shape))
    out, (h_n, c_n) = ours(x, hx)
    assert (out.shape, h_n.shape, c_n.shape) == ((T, 2 * P), h_shape, c_shape)
    compare_with_torch(rng, ours, theirs, x, hx)


@pytest.mark.parametrize("batch_first", [False, True])
def test_output_and_state_shapes(batch_first: bool) -> None:
    D, L = 2, 3
    lstm = numpy_lstm.LSTM(I, H, L, True, batch_first, 0.0, True, P, rng=0)
    x = np.zeros((B, T, I) if batch_first else (T, B, I), np.float32)
    out, (h_n, c_n) = lstm(x)
    assert out.shape == ((B, T, D * P) if batch_first else (T, B, D * P))
    assert h_n.shape == (D * L, B, P)
    assert c_n.shape == (D * L, B, H)
    dx, (dh0, dc0) = lstm.backward(np.ones_like(out), (np.ones_like(h_n), np.ones_like(c_n)))
    assert (dx.shape, dh0.shape, dc0.shape) == (x.shape, h_n.shape, c_n.shape)
    assert all(g.dtype == np.float32 for g in (out, h_n, c_n, dx, dh0, dc0))


def test_gradients_accumulate_across_layers_until_zero_grad(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, dtype=np.float64)
    x = rng.standard_normal((T, B, I))
    out, _ = lstm(x)
    d_out = rng.standard_normal(out.shape)
    lstm.backward(d_out)
    once = {k: v.copy() for k, v in lstm.grads.items()}
    assert all(np.abs(g).max() > 0 for g in once.values())
    lstm.backward(d_out)
    for name, grad in lstm.grads.items():
        np.testing.assert_allclose(grad, 2 * once[name], rtol=1e-14, err_msg=name)
    lstm.zero_grad()
    assert all(not grad.any() for grad in lstm.grads.values())


STATE_DICT_CONFIGS = [
    dict(),
    dict(num_layers=3),
    dict(bias=False, num_layers=2),
    dict(bidirectional=True),
    dict(proj_size=2),
    dict(num_layers=2, bidirectional=True, proj_size=3),
    dict(num_layers=3, bidirectional=True, bias=False, proj_size=1),
]


@pytest.mark.parametrize("config", STATE_DICT_CONFIGS, ids=str)
def test_state_dict_keys_order_and_shapes_are_torchs(config: dict) -> None:
    ours = numpy_lstm.LSTM(5, 4, **config, rng=0)
    theirs = torch.nn.LSTM(5, 4, **config)
    expected = [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == expected
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in expected]
    assert list(ours.grads) == [k for k, _ in expected]
    for name, shape in expected:  # parameters read like attributes, as in torch
        assert getattr(ours, name).shape == shape, name


@pytest.mark.parametrize("config", STATE_DICT_CONFIGS, ids=str)
def test_a_torch_state_dict_loads_as_is_and_computes_the_same(config: dict) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(5, 4, **config, dtype=TORCH_DTYPE[np.float64])
    ours = numpy_lstm.LSTM(5, 4, **config, dtype=np.float64, rng=1)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert ours.load_state_dict(state) == ([], [])
    x = np.random.default_rng(0).standard_normal((6, 2, 5))
    out, (h_n, c_n) = ours(x)
    out_t, (h_n_t, c_n_t) = theirs(torch.tensor(x))
    assert_matches(out, out_t, np.float64, "out")
    assert_matches(h_n, h_n_t, np.float64, "h_n")
    assert_matches(c_n, c_n_t, np.float64, "c_n")
    # ...and back: our state dict loads into torch, strictly.
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
