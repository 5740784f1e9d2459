"""Inter-layer dropout and the initialisers.

Dropout acts on the outputs of every layer but the last, only in training mode (the default),
with inverted scaling 1/(1 − p) and masks drawn from the layer's own generator, so a seed
reproduces them. Initialisers: "torch" (U(±1/√H) everywhere), "keras" (glorot_uniform input
kernel, orthogonal recurrent kernel, unit forget bias), or a callable; `forget_bias` overrides.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import (
    assert_matches,
    distinct_gate_lstm_state,
    load_into_torch,
    numerical_gradient,
    relative_error,
    to_torch,
    torch_lstm,
)

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

T, B, I, H = 5, 3, 3, 4
F64 = np.float64


def distinct_state(rng: np.random.Generator, input_size: int = I, hidden_size: int = H, **config):
    return distinct_gate_lstm_state(rng, torch_lstm(input_size, hidden_size, F64, **config), F64)


# -- modes and dropout --------------------------------------------------------------------------


def test_training_is_the_default_mode_and_eval_switches_it_off() -> None:
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, dropout=0.5, rng=0)
    assert lstm.training is True
    lstm.eval()
    assert lstm.training is False
    lstm.train()
    assert lstm.training is True


def test_the_seed_reproduces_the_dropout_masks(rng: np.random.Generator) -> None:
    config = dict(num_layers=3, bidirectional=True, dropout=0.5, dtype=F64)
    x = rng.standard_normal((T, B, I))
    first, again = (numpy_lstm.LSTM(I, H, **config, rng=7) for _ in range(2))
    out, (h_n, c_n) = first(x)
    out_again, (h_n_again, c_n_again) = again(x)
    np.testing.assert_array_equal(out_again, out)
    np.testing.assert_array_equal(h_n_again, h_n)
    np.testing.assert_array_equal(c_n_again, c_n)
    other = numpy_lstm.LSTM(I, H, **config, rng=8)
    other.load_state_dict(first.state_dict())  # same weights, another generator
    assert not np.allclose(other(x)[0], out), "another seed gives other masks"
    assert not np.allclose(first(x)[0], out), "each training forward draws fresh masks"


def test_eval_mode_is_dropout_free_and_matches_torch(rng: np.random.Generator) -> None:
    config = dict(num_layers=3, bidirectional=True, proj_size=2)
    theirs = torch_lstm(I, H, F64, **config, dropout=0.5)
    state = distinct_gate_lstm_state(rng, theirs, F64)
    load_into_torch(theirs, state).eval()
    ours = numpy_lstm.LSTM(I, H, **config, dropout=0.5, dtype=F64, rng=0)
    ours.load_state_dict(state)
    plain = numpy_lstm.LSTM(I, H, **config, dropout=0.0, dtype=F64, rng=0)
    plain.load_state_dict(state)
    x = rng.standard_normal((T, B, I))
    d_out = rng.standard_normal((T, B, 4))

    train_out, _ = ours(x)
    ours.eval()
    out, (h_n, c_n) = ours(x)
    assert not np.allclose(train_out, out), "in training mode the dropout is active"
    plain_out, (plain_h_n, plain_c_n) = plain(x)
    for name, a, b in (("out", out, plain_out), ("h_n", h_n, plain_h_n), ("c_n", c_n, plain_c_n)):
        np.testing.assert_array_equal(a, b, err_msg=name)

    x_t = to_torch(x, requires_grad=True)
    out_t, (h_n_t, c_n_t) = theirs(x_t)
    assert_matches(out, out_t, F64, "out")
    assert_matches(h_n, h_n_t, F64, "h_n")
    assert_matches(c_n, c_n_t, F64, "c_n")
    ours.zero_grad()
    dx, _ = ours.backward(d_out)
    plain_dx, _ = plain.backward(d_out)
    np.testing.assert_array_equal(dx, plain_dx)
    (out_t * to_torch(d_out)).sum().backward()
    assert_matches(dx, x_t.grad, F64, "dx")
    for name, param in theirs.named_parameters():
        assert_matches(ours.grads[name], param.grad, F64, f"grad of {name}")


def test_a_single_layer_has_nothing_to_drop(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(I, H, num_layers=1, bidirectional=True, dropout=0.9, dtype=F64, rng=0)
    x = rng.standard_normal((T, B, I))
    train_out, (train_h_n, _) = lstm(x)
    lstm.eval()
    out, (h_n, _) = lstm(x)
    np.testing.assert_array_equal(train_out, out)
    np.testing.assert_array_equal(train_h_n, h_n)


def test_final_outputs_and_states_are_never_dropped(rng: np.random.Generator) -> None:
    """Only the connections between layers are dropped: the last layer's outputs are its h,
    and the first layer's final state does not depend on the dropout."""
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, bidirectional=True, dropout=0.5, dtype=F64, rng=1)
    x = rng.standard_normal((T, B, I))
    out, (h_n, c_n) = lstm(x)
    np.testing.assert_array_equal(out[-1, :, :H], h_n[2])  # last layer, forward
    np.testing.assert_array_equal(out[0, :, H:], h_n[3])  # last layer, reverse
    lstm.eval()
    eval_out, (eval_h_n, eval_c_n) = lstm(x)
    assert not np.allclose(eval_out, out)
    np.testing.assert_array_equal(h_n[:2], eval_h_n[:2])  # first layer, both directions
    np.testing.assert_array_equal(c_n[:2], eval_c_n[:2])


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_a_fraction_p_is_dropped_and_the_rest_scaled_by_1_over_1_minus_p(p: float) -> None:
    """Layer 2 is made transparent — i = o = 1, f ≈ 0, g = tanh(its input) — so its output is
    tanh(tanh(input)): exactly 0 where the input was dropped, invertible elsewhere."""
    steps, batch, hidden = 5, 400, 8
    lstm = numpy_lstm.LSTM(I, hidden, num_layers=2, dropout=p, dtype=F64, rng=3)
    w_ih = np.zeros((4 * hidden, hidden))
    w_ih[2 * hidden : 3 * hidden] = np.eye(hidden)
    half_bias = np.repeat([20.0, -20.0, 0.0, 20.0], hidden)  # σ(40) == 1.0 in float64
    lstm.load_state_dict(
        {
            **lstm.state_dict(),
            "weight_ih_l1": w_ih,
            "weight_hh_l1": np.zeros((4 * hidden, hidden)),
            "bias_ih_l1": half_bias,
            "bias_hh_l1": half_bias,
        }
    )
    x = np.random.default_rng(0).standard_normal((steps, batch, I))
    train_out, _ = lstm(x)
    lstm.eval()
    eval_out, _ = lstm(x)
    assert not (np.abs(eval_out) < 1e-12).any(), "without dropout no input of layer 2 is 0"
    dropped = np.abs(train_out) < 1e-12
    assert abs(dropped.mean() - p) < 0.02, f"dropped fraction {dropped.mean():.3f}, p = {p}"
    kept_train = np.arctanh(np.arctanh(train_out[~dropped]))
    kept_eval = np.arctanh(np.arctanh(eval_out[~dropped]))
    np.testing.assert_allclose(kept_train, kept_eval / (1 - p), rtol=1e-9, atol=1e-12)


def test_dropout_gradients_match_finite_differences(rng: np.random.Generator) -> None:
    """Same seed, same construction → same masks: every loss evaluation rebuilds the layer from
    the seed, loads the (perturbed) weights and runs one training forward."""
    small_I, small_H, seed = 2, 3, 11
    config = dict(num_layers=3, bidirectional=True, dropout=0.4, dtype=F64, rng=seed)
    params = distinct_state(rng, small_I, small_H, num_layers=3, bidirectional=True)

    def fresh() -> numpy_lstm.LSTM:
        lstm = numpy_lstm.LSTM(small_I, small_H, **config)
        lstm.load_state_dict(params)
        return lstm

    x = rng.standard_normal((4, 2, small_I))
    h0, c0 = rng.standard_normal((6, 2, small_H)), rng.standard_normal((6, 2, small_H))
    d_out = rng.standard_normal((4, 2, 2 * small_H))
    dh_n, dc_n = rng.standard_normal(h0.shape), rng.standard_normal(c0.shape)

    def loss() -> float:
        out, (h_n, c_n) = fresh()(x, (h0, c0))
        return float(np.sum(d_out * out) + np.sum(dh_n * h_n) + np.sum(dc_n * c_n))

    lstm = fresh()
    out, _ = lstm(x, (h0, c0))
    dx, (dh0, dc0) = lstm.backward(d_out, (dh_n, dc_n))
    no_dropout = fresh()
    no_dropout.eval()
    assert not np.allclose(no_dropout(x, (h0, c0))[0], out), "the dropout must be active"
    analytic = {"x": dx, "h0": dh0, "c0": dc0, **{k: v.copy() for k, v in lstm.grads.items()}}
    inputs = {"x": x, "h0": h0, "c0": c0, **params}
    assert set(analytic) == set(inputs)
    with lstm.editing():  # the parameters are perturbed in place
        for name, array in inputs.items():
            error = relative_error(analytic[name], numerical_gradient(loss, array))
            assert error < 1e-6, f"d{name}: relative error {error:.2e}"


# -- initialisation -----------------------------------------------------------------------------

CONFIG = dict(num_layers=2, bidirectional=True, proj_size=3)


def test_torch_init_fills_plus_minus_one_over_sqrt_h_everywhere() -> None:
    hidden = 16  # bound 1/4, exact in float32
    lstm = numpy_lstm.LSTM(5, hidden, **CONFIG, rng=0)
    assert len(lstm.state_dict()) == 20
    for name, value in lstm.state_dict().items():  # weight_hr included, as in torch
        assert value.dtype == np.float32, name
        assert np.abs(value).max() <= 0.25, name
        assert np.abs(value).max() > 0.8 * 0.25, name
        assert (value > 0).any() and (value < 0).any(), name
    explicit = numpy_lstm.LSTM(5, hidden, **CONFIG, rng=0, init="torch").state_dict()
    for name, value in lstm.state_dict().items():
        np.testing.assert_array_equal(explicit[name], value, err_msg="init='torch' is the default")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("proj_size", [0, 3], ids=["noproj", "proj"])
def test_keras_init(dtype: type, proj_size: int) -> None:
    """glorot_uniform on the (in, 4H) kernel, orthogonal (H_out, 4H) recurrent kernel, biases
    zero but the forget block of bias_ih = 1 (unit_forget_bias); bias_hh = 0."""
    in_size, hidden, out_size = 5, 6, proj_size or 6
    config = dict(num_layers=2, bidirectional=True, proj_size=proj_size, dtype=dtype)
    lstm = numpy_lstm.LSTM(in_size, hidden, **config, init="keras", rng=0)
    other = numpy_lstm.LSTM(in_size, hidden, **config, init="keras", rng=1)
    atol = 1e-6 if dtype == np.float32 else 1e-12
    forget = np.zeros(4 * hidden, dtype)
    forget[hidden : 2 * hidden] = 1
    for k in range(2):
        for suffix in (f"_l{k}", f"_l{k}_reverse"):
            fan_in = in_size if k == 0 else 2 * out_size
            limit = np.sqrt(6 / (fan_in + 4 * hidden))
            w_ih = getattr(lstm, "weight_ih" + suffix)
            assert w_ih.shape == (4 * hidden, fan_in) and w_ih.dtype == dtype
            assert np.abs(w_ih).max() <= limit * (1 + 1e-6), suffix
            assert np.abs(w_ih).max() > 0.8 * limit, suffix
            w_hh = getattr(lstm, "weight_hh" + suffix)  # the transposed recurrent kernel
            assert w_hh.shape == (4 * hidden, out_size) and w_hh.dtype == dtype
            np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(out_size), atol=atol, err_msg=suffix)
            assert not np.allclose(w_hh, getattr(other, "weight_hh" + suffix)), "random"
            np.testing.assert_array_equal(getattr(lstm, "bias_ih" + suffix), forget)
            np.testing.assert_array_equal(getattr(lstm, "bias_hh" + suffix), 0)


@pytest.mark.parametrize("value", [1.0, -0.5])
@pytest.mark.parametrize("init", ["torch", "keras"])
def test_forget_bias_sets_the_total_forget_bias_and_nothing_else(init: str, value: float) -> None:
    kwargs = dict(**CONFIG, init=init, rng=5)
    base = numpy_lstm.LSTM(I, H, **kwargs).state_dict()
    state = numpy_lstm.LSTM(I, H, **kwargs, forget_bias=value).state_dict()
    forget = slice(H, 2 * H)
    for name, array in state.items():
        expected = base[name].copy()
        if name.startswith("bias_ih"):
            expected[forget] = value
        elif name.startswith("bias_hh"):
            expected[forget] = 0
        np.testing.assert_array_equal(array, expected, err_msg=name)
        if name.startswith("bias_ih"):
            total = array + state[name.replace("bias_ih", "bias_hh")]
            np.testing.assert_array_equal(total[forget], np.float32(value), err_msg=name)


def test_a_callable_init_is_called_once_per_parameter_with_torchs_name_and_shape() -> None:
    calls: list[tuple[str, tuple[int, ...]]] = []

    def init(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        assert isinstance(rng, np.random.Generator)
        calls.append((name, tuple(shape)))
        return np.full(shape, len(calls) / 8)  # float64, exact in float32

    lstm = numpy_lstm.LSTM(5, 4, **CONFIG, init=init, rng=0)
    expected = [(k, tuple(v.shape)) for k, v in torch.nn.LSTM(5, 4, **CONFIG).state_dict().items()]
    assert sorted(calls) == sorted(expected)
    state = lstm.state_dict()
    for k, (name, _) in enumerate(calls, start=1):
        assert state[name].dtype == np.float32, name
        np.testing.assert_array_equal(state[name], k / 8, err_msg=name)


def test_a_callable_init_draws_from_the_layers_generator() -> None:
    def init(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(shape)

    first, again, other = (
        numpy_lstm.LSTM(3, 4, **CONFIG, init=init, rng=seed).state_dict() for seed in (2, 2, 3)
    )
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
        assert not np.array_equal(first[name], other[name]), name


@pytest.mark.parametrize("init", ["glorot", "uniform", ""])
def test_an_unknown_init_is_rejected(init: str) -> None:
    with pytest.raises(ValueError, match="init"):
        numpy_lstm.LSTM(3, 4, init=init)
