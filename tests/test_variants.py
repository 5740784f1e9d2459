"""The LSTM variants: every one and their combinations pass the float64 finite-difference check,
and those ONNX defines (peepholes, coupled input-forget, clip, activations) compute exactly what
onnxruntime and the ONNX reference evaluator compute."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import numpy_lstm
from conftest import assert_lstm_gradients_match
from numpy_lstm.core.variants import layer_norm, layer_norm_backward

MAX_RELATIVE_ERROR = 1e-6
T, B, I, H = 5, 3, 3, 4


def gradcheck(
    rng: np.random.Generator, lengths: np.ndarray | None = None, seed: int = 11, **options: object
) -> None:
    """Central differences vs backward for x, h0, c0 and every parameter, with upstream
    gradients on the outputs and the final state. Random masks (dropouts, zoneout) are redrawn
    identically for every evaluation by reseeding the layer's generator."""
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng, **options)
    lstm.load_state_dict(
        {k: v * 1.5 + 0.1 * rng.standard_normal(v.shape) for k, v in lstm.state_dict().items()}
    )
    D = 2 if options.get("bidirectional") else 1
    L = int(options.get("num_layers", 1))
    H_out = int(options.get("proj_size", 0)) or H
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((D * L, B, H_out)), rng.standard_normal((D * L, B, H))

    def run() -> tuple:
        lstm.rng = np.random.default_rng(seed)
        return lstm(x, (h0, c0), lengths=lengths)

    out, (h_n, c_n) = run()
    upstream = tuple(rng.standard_normal(a.shape) for a in (out, h_n, c_n))
    inputs = {"x": x, "h0": h0, "c0": c0}
    assert_lstm_gradients_match(lstm, run, inputs, upstream, MAX_RELATIVE_ERROR)  # type: ignore[arg-type]


SINGLE_VARIANTS = {
    "peephole": {"peephole": True},
    "cifg": {"coupled_input_forget": True},
    "clip": {"clip": 0.8},
    "layer norm": {"layer_norm": True},
    "recurrent dropout": {"recurrent_dropout": 0.3},
    "zoneout": {"zoneout": (0.3, 0.5)},
    "zoneout eval": {"zoneout": 0.25},
    "softsign/relu activations": {"activations": ("softsign", "tanh", "softsign")},
}


@pytest.mark.parametrize("name", SINGLE_VARIANTS)
def test_each_variant_passes_the_gradient_check(rng: np.random.Generator, name: str) -> None:
    gradcheck(rng, **SINGLE_VARIANTS[name])


def test_zoneout_in_eval_mode_uses_the_expectation(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng, zoneout=0.25).eval()
    x = rng.standard_normal((T, B, I))
    out, _ = lstm(x)
    # Written out: h_t = p·h_{t−1} + (1 − p)·h̃_t with h̃_t from a plain step.
    plain = numpy_lstm.LSTMCell(I, H, dtype=np.float64)
    plain.load_state_dict({k.removesuffix("_l0"): v for k, v in lstm.state_dict().items()})
    h, c = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T):
        h_new, c_new = plain(x[t], (h, c))
        h, c = 0.25 * h + 0.75 * h_new, 0.25 * c + 0.75 * c_new
        np.testing.assert_allclose(out[t], h, atol=1e-13)


COMBINATIONS = [
    {"bidirectional": True, "proj_size": 2, "peephole": True, "layer_norm": True},
    {"num_layers": 2, "peephole": True, "coupled_input_forget": True, "clip": 1.0},
    {"bidirectional": True, "layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.2},
    {"num_layers": 2, "dropout": 0.3, "proj_size": 3, "zoneout": (0.1, 0.3), "clip": 1.5},
]


@pytest.mark.parametrize("options", COMBINATIONS, ids=lambda o: "+".join(o))
def test_combinations_pass_the_gradient_check_with_masks(
    rng: np.random.Generator, options: dict
) -> None:
    gradcheck(rng, lengths=np.array([5, 2, 4]), **options)


def test_layer_norm_matches_torch(rng: np.random.Generator) -> None:
    a = rng.standard_normal((6, 8))
    weight, bias, dy = rng.standard_normal(8), rng.standard_normal(8), rng.standard_normal((6, 8))
    y, normalised, inv_std = layer_norm(a, weight, bias, 1e-5)
    da, dweight, dbias = layer_norm_backward(dy, normalised, inv_std, weight)
    a_t, w_t, b_t = (torch.tensor(v, requires_grad=True) for v in (a, weight, bias))
    y_t = torch.nn.functional.layer_norm(a_t, (8,), w_t, b_t, eps=1e-5)
    (y_t * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, y_t.detach().numpy(), atol=1e-12)
    for ours, theirs in ((da, a_t), (dweight, w_t), (dbias, b_t)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=1e-12)


# -- ONNX parity ------------------------------------------------------------------------------
ONNX_ACTIVATION = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "hard_sigmoid": "HardSigmoid",
    "relu": "Relu",
    "softsign": "Softsign",
}
TORCH_TO_ONNX_GATES = [0, 3, 1, 2]  # torch i, f, g, o → ONNX i, o, f, c
PEEPHOLE_TO_ONNX = [0, 2, 1]  # ours i, f, o → ONNX i, o, f


def onnx_model(lstm: numpy_lstm.LSTM, steps: int, batch: int) -> onnx.ModelProto:
    """A one-node ONNX graph with `lstm`'s weights, built here from the ONNX spec's layouts."""
    H, D = lstm.hidden_size, lstm.num_directions

    def gates(a: np.ndarray) -> np.ndarray:
        return a.reshape(4, H, *a.shape[1:])[TORCH_TO_ONNX_GATES].reshape(a.shape)

    weights = [lstm.layer_weights(0, reverse=bool(d)) for d in range(D)]
    W = np.stack([gates(w.weight_ih) for w in weights])
    R = np.stack([gates(w.weight_hh) for w in weights])
    Bias = np.stack([np.concatenate([gates(w.bias_ih), gates(w.bias_hh)]) for w in weights])
    inputs, initializers = ["X", "W", "R", "B", "", "", ""], [W, R, Bias]
    if lstm.peephole:
        inputs.append("P")
        initializers.append(
            np.stack([w.weight_peephole[PEEPHOLE_TO_ONNX].reshape(-1) for w in weights])
        )
    attributes = {
        "hidden_size": H,
        "direction": "bidirectional" if D == 2 else "forward",
        "input_forget": int(lstm.variant.coupled_input_forget),
        "activations": [ONNX_ACTIVATION[a] for a in lstm.variant.activations] * D,
    }
    if lstm.variant.clip is not None:
        attributes["clip"] = lstm.variant.clip
    node = helper.make_node("LSTM", inputs, ["Y", "Y_h", "Y_c"], **attributes)
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, batch, lstm.input_size])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
            for name in ("Y", "Y_h", "Y_c")
        ],
        [
            numpy_helper.from_array(a.astype(np.float32), name)
            for a, name in zip(initializers, ["W", "R", "B", "P"], strict=False)
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


ONNX_CASES = [
    {"peephole": True},
    {"peephole": True, "bidirectional": True},
    {"coupled_input_forget": True},
    {"clip": 0.7},
    {"clip": 1.2, "peephole": True, "coupled_input_forget": True, "bidirectional": True},
    {"activations": ("hard_sigmoid", "tanh", "tanh")},
    {"activations": ("sigmoid", "relu", "softsign")},
]


@pytest.mark.parametrize("options", ONNX_CASES, ids=lambda o: "+".join(f"{k}" for k in o))
def test_matches_onnxruntime(rng: np.random.Generator, options: dict) -> None:
    steps, batch = 30, 3
    lstm = numpy_lstm.LSTM(I, H, rng=rng, **options)
    # Larger weights and a positive forget bias push the memory and the gates into the
    # ranges where the clip and the activations' kinks matter.
    lstm.load_state_dict(
        {k: (2.5 * v + 0.3).astype(np.float32) for k, v in lstm.state_dict().items()}
    )
    x = (2 * rng.standard_normal((steps, batch, I))).astype(np.float32)
    session = onnxruntime.InferenceSession(
        onnx_model(lstm, steps, batch).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    Y, Y_h, Y_c = session.run(None, {"X": x})
    out, (h_n, c_n) = lstm(x)
    D = lstm.num_directions
    expected = Y.transpose(0, 2, 1, 3).reshape(steps, batch, D * H)  # (T, D, B, H) → (T, B, D·H)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(h_n, Y_h, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(c_n, Y_c, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_peepholes_match_the_onnx_reference_evaluator(
    rng: np.random.Generator, bidirectional: bool
) -> None:
    lstm = numpy_lstm.LSTM(I, H, rng=rng, peephole=True, bidirectional=bidirectional)
    lstm.load_state_dict({k: (2 * v).astype(np.float32) for k, v in lstm.state_dict().items()})
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    Y, Y_h, Y_c = ReferenceEvaluator(onnx_model(lstm, T, B)).run(None, {"X": x})
    out, (h_n, c_n) = lstm(x)
    D = lstm.num_directions
    np.testing.assert_allclose(out, Y.transpose(0, 2, 1, 3).reshape(T, B, D * H), atol=1e-5)
    np.testing.assert_allclose(h_n, Y_h, atol=1e-5)
    np.testing.assert_allclose(c_n, Y_c, atol=1e-5)


def test_the_onnx_oracle_can_fail(rng: np.random.Generator) -> None:
    """Feeding ONNX the peepholes in our (i, f, o) order instead of its (i, o, f) is caught."""
    lstm = numpy_lstm.LSTM(I, H, rng=rng, peephole=True)
    lstm.load_state_dict({k: (2 * v).astype(np.float32) for k, v in lstm.state_dict().items()})
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    out, _ = lstm(x)
    swapped = lstm.layer_weights().weight_peephole[[0, 2, 1]].copy()
    lstm.weight_peephole_l0 = swapped
    Y, _, _ = ReferenceEvaluator(onnx_model(lstm, T, B)).run(None, {"X": x})
    assert np.abs(out - Y[:, 0]).max() > 1e-3


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"clip": -1.0}, ValueError, r"clip: expected a positive number"),
        ({"activations": ("sigmoid", "tanh")}, ValueError, r"activations: expected three of"),
        ({"activations": ("gelu", "tanh", "tanh")}, ValueError, r"activations: expected three"),
        ({"recurrent_dropout": 1.0}, ValueError, r"recurrent_dropout: expected a probability"),
        ({"zoneout": (0.1, 1.5)}, ValueError, r"zoneout: expected a probability"),
        ({"zoneout": (0.1, 0.2, 0.3)}, ValueError, r"zoneout: expected p or \(p_h, p_c\)"),
    ],
)
def test_bad_variant_options(options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        numpy_lstm.LSTM(I, H, **options)


def test_variant_parameters_are_named_and_initialised(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(I, H, 2, bidirectional=True, peephole=True, layer_norm=True, rng=rng)
    names = list(lstm.state_dict())
    for k, suffix in itertools.product(range(2), ("", "_reverse")):
        assert f"weight_peephole_l{k}{suffix}" in names
        for part in ("ih", "hh", "c"):
            np.testing.assert_array_equal(lstm.state_dict()[f"ln_weight_{part}_l{k}{suffix}"], 1)
            np.testing.assert_array_equal(lstm.state_dict()[f"ln_bias_{part}_l{k}{suffix}"], 0)
    assert lstm.state_dict()["weight_peephole_l0"].shape == (3, H)


def test_forget_bias_with_a_coupled_gate_is_an_unsupported_combination() -> None:
    with pytest.raises(ValueError, match=r"forget_bias, coupled_input_forget: unsupported"):
        numpy_lstm.LSTM(I, H, coupled_input_forget=True, forget_bias=1.0)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_layers": 2, "bidirectional": True, "proj_size": 2, "batch_first": True},
        {
            "peephole": True,
            "layer_norm": True,
            "clip": 2.0,
            "zoneout": (0.1, 0.2),
            "activations": ("hard_sigmoid", "tanh", "tanh"),
            "dtype": "float64",
        },
    ],
)
def test_config_rebuilds_the_same_architecture(options: dict) -> None:
    lstm = numpy_lstm.LSTM(I, H, **options)
    rebuilt = numpy_lstm.LSTM(**lstm.config())
    assert rebuilt.config() == lstm.config()
    assert {k: (v.shape, v.dtype) for k, v in rebuilt.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in lstm.state_dict().items()
    }
    rebuilt.load_state_dict(lstm.state_dict())
    x = np.ones((2, 4, I), dtype=lstm.dtype)
    np.testing.assert_array_equal(rebuilt.eval()(x)[0], lstm.eval()(x)[0])
