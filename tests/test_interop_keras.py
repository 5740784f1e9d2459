"""Keras 3 ⇄ numpy-lstm (numpy_lstm.io.keras), verified against Keras itself (torch
backend): return_sequences / return_state outputs, Bidirectional, stacks with Dropout and a
Dense head, masking semantics, unit_forget_bias, files, and clear refusals."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch"  # the backend our extras install; no download
import keras

import numpy_lstm
from conftest import GATE_OFFSETS, GATE_SCALES
from numpy_lstm.io.keras import GoBackwards, from_keras, load_keras, save_keras, to_keras
from numpy_lstm.nn.models import SequenceModel, SequenceToOne

# Keras-side noise: numpy 2's copy-keyword notice, and a misleading "Sequential does not support
# masking" — it does pass the mask on (test_to_keras_computes_what_we_compute checks it matters).
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Layer 'sequential.*does not support masking:UserWarning"),
]
B, T, I, H = 3, 7, 4, 5
ATOL = 1e-5
LENGTHS = np.array([T, 4, 1])
MASK = np.arange(T) < LENGTHS[:, None]  # (B, T), post-padded
HOLES = MASK & ~np.eye(B, T, k=1, dtype=bool)  # a hole inside two sequences


def numpy_of(a: object) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(a))


def distinct_gates(layer: keras.layers.Layer, rng: np.random.Generator) -> None:
    """Give every Keras LSTM inside `layer` weights whose four gate blocks (i, f, c, o) differ
    in scale and bias sign, so a gate mix-up cannot cancel out."""
    cells = (
        [layer]
        if isinstance(layer, keras.layers.LSTM)
        else [layer.forward_layer, layer.backward_layer]
    )
    for cell in cells:
        weights = []
        for w in cell.get_weights():
            scale = np.repeat(GATE_SCALES, H)
            if w.ndim == 2:
                weights.append(rng.uniform(-1, 1, w.shape) * scale / np.sqrt(w.shape[0]))
            else:
                weights.append(np.repeat(GATE_OFFSETS, H) + 0.1 * rng.standard_normal(w.shape))
        cell.set_weights([w.astype(np.float32) for w in weights])


@pytest.fixture
def x(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((B, T, I)).astype(np.float32)


@pytest.mark.parametrize("masked", [False, True])
def test_lstm_return_sequences_and_state(
    rng: np.random.Generator, x: np.ndarray, masked: bool
) -> None:
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    layer.build((None, None, I))
    distinct_gates(layer, rng)
    mask = MASK if masked else None
    y, h, c = (numpy_of(a) for a in layer(x, mask=mask))
    ours = from_keras(layer)
    assert ours.batch_first and ours.mask_output == "carry"
    out, (h_n, c_n) = ours(x, mask=mask)
    # Keras carries the previous output through masked steps: so does mask_output="carry".
    np.testing.assert_allclose(out, y, atol=ATOL)
    np.testing.assert_allclose(h_n[0], h, atol=ATOL)
    np.testing.assert_allclose(c_n[0], c, atol=ATOL)


def test_bidirectional_with_state_and_masks(rng: np.random.Generator, x: np.ndarray) -> None:
    layer = keras.layers.Bidirectional(
        keras.layers.LSTM(H, return_sequences=True, return_state=True)
    )
    layer.build((None, None, I))
    distinct_gates(layer, rng)
    y, h_f, c_f, h_b, c_b = (numpy_of(a) for a in layer(x, mask=MASK))
    ours = from_keras(layer)
    # Bidirectional sets zero_output_for_mask: zeros at masked steps, as mask_output="zero".
    assert ours.bidirectional and ours.mask_output == "zero"
    out, (h_n, c_n) = ours(x, mask=MASK)
    np.testing.assert_allclose(out, y, atol=ATOL)
    np.testing.assert_allclose(h_n, np.stack([h_f, h_b]), atol=ATOL)
    np.testing.assert_allclose(c_n, np.stack([c_f, c_b]), atol=ATOL)


def test_stack_with_dropout_and_dense_head(rng: np.random.Generator, x: np.ndarray) -> None:
    inputs = keras.Input((None, I))
    a = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))(inputs)
    a = keras.layers.Dropout(0.25)(a)
    a = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))(a)
    model = keras.Model(inputs, keras.layers.Dense(3)(a))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            distinct_gates(layer, rng)
    ours = from_keras(model)
    assert isinstance(ours, SequenceModel)
    assert ours.lstm.num_layers == 2 and ours.lstm.dropout == 0.25
    np.testing.assert_allclose(ours.eval()(x)[0], numpy_of(model(x)), atol=ATOL)


def test_last_step_only_is_the_last_step_of_ours(rng: np.random.Generator, x: np.ndarray) -> None:
    model = keras.Sequential(
        [
            keras.Input((None, I)),
            keras.layers.LSTM(H, return_sequences=True),
            keras.layers.LSTM(H),
            keras.layers.Dense(2),
        ]
    )
    ours = from_keras(model)
    for mask in (None, MASK):
        np.testing.assert_allclose(
            ours(x, mask=mask)[0][:, -1], numpy_of(model(x, mask=mask)), atol=ATOL
        )


def test_unit_forget_bias_is_carried(x: np.ndarray) -> None:
    layer = keras.layers.LSTM(H, return_sequences=True, unit_forget_bias=True)
    layer.build((None, None, I))
    ours = from_keras(layer)
    np.testing.assert_array_equal(ours.bias_ih_l0, np.repeat([0.0, 1.0, 0.0, 0.0], H))
    np.testing.assert_allclose(ours(x)[0], numpy_of(layer(x)), atol=ATOL)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"bidirectional": True},
        {"num_layers": 2, "dropout": 0.3, "bias": False},
        {"mask_output": "carry", "activations": ("sigmoid", "softsign", "softsign")},
    ],
    ids=["plain", "bidirectional", "stack", "carry+softsign"],
)
def test_to_keras_computes_what_we_compute(
    rng: np.random.Generator, x: np.ndarray, config: dict
) -> None:
    lstm = numpy_lstm.LSTM(I, H, batch_first=True, rng=rng, **config)
    model = SequenceModel(lstm, numpy_lstm.Linear(lstm.num_directions * H, 2, rng=rng)).eval()
    theirs = to_keras(model)
    outputs = [numpy_of(theirs(x, mask=mask)) for mask in (None, MASK)]
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3  # the mask reached Keras's LSTMs
    for mask, y in zip((None, MASK), outputs, strict=True):
        np.testing.assert_allclose(y, model(x, mask=mask)[0], atol=ATOL)
    back = from_keras(theirs)
    assert back.config() == model.config() | {"lstm": model.lstm.config() | {"batch_first": True}}
    # Keras keeps one bias: b_ih + b_hh is folded once (≤ 1 ulp), the rest is exact.
    for name, value in model.state_dict().items():
        if "bias_ih" in name:
            value = value + model.state_dict()[name.replace("_ih", "_hh")]
        elif "bias_hh" in name:
            value = np.zeros_like(value)
        np.testing.assert_array_equal(back.state_dict()[name], value)


@pytest.mark.parametrize("name", ["model.keras", "model.weights.h5"])
def test_files_round_trip(rng: np.random.Generator, x: np.ndarray, tmp_path, name: str) -> None:
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True, rng=rng)
    model = SequenceModel(lstm, numpy_lstm.Linear(2 * H, 3, rng=rng))
    save_keras(model, tmp_path / name)
    if name.endswith(".keras"):
        reloaded = keras.saving.load_model(tmp_path / name)  # Keras reads our file
        np.testing.assert_allclose(numpy_of(reloaded(x)), model(x)[0], atol=ATOL)
    back = load_keras(tmp_path / name, like=model)
    np.testing.assert_allclose(back(x)[0], model(x)[0], atol=ATOL)


def test_weights_file_needs_an_architecture(rng: np.random.Generator, tmp_path) -> None:
    save_keras(numpy_lstm.LSTM(I, H, rng=rng), tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match=r"holds no architecture; pass like="):
        load_keras(tmp_path / "m.weights.h5")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: keras.Sequential([keras.Input((None, I)),
                                   keras.layers.LSTM(H, return_sequences=True),
                                   keras.layers.LSTM(H, go_backwards=True)]),
         r"go_backwards: unsupported value True.*False above the first layer"),
        (lambda: keras.layers.LSTM(H, recurrent_activation="hard_sigmoid"),
         r"gate activation: unsupported value 'hard_sigmoid'"),
        (lambda: keras.layers.LSTM(H, dropout=0.2), r"dropout: unsupported value 0.2"),
        (lambda: keras.layers.GRU(H), r"unsupported Keras layer GRU"),
        (lambda: keras.layers.Bidirectional(keras.layers.LSTM(H), merge_mode="sum"),
         r"merge_mode: unsupported value 'sum'"),
        (lambda: keras.Sequential([keras.Input((None, I)), keras.layers.Masking(),
                                   keras.layers.LSTM(H)]),
         r"Masking layer cannot be part of a numpy-lstm model.*drop_masking=True"),
        (lambda: keras.Sequential([keras.Input((None, I)), keras.layers.LSTM(H),
                                   keras.layers.Dense(2, activation="relu")]),
         r"Dense activation: unsupported value 'relu'"),
    ],
)  # fmt: skip
def test_unsupported_keras_models_are_refused(make, message: str) -> None:
    layer = make()
    if not isinstance(layer, keras.Model):
        layer.build((None, None, I))
    with pytest.raises(ValueError, match=message):
        from_keras(layer)


def test_masking_layer_can_be_dropped_explicitly(x: np.ndarray) -> None:
    model = keras.Sequential(
        [
            keras.Input((None, I)),
            keras.layers.Masking(0.0),
            keras.layers.LSTM(H, return_sequences=True),
        ]
    )
    padded = np.where(MASK[..., None], x, 0).astype(np.float32)
    ours = from_keras(model, drop_masking=True)
    np.testing.assert_allclose(ours(padded, mask=MASK)[0], numpy_of(model(padded)), atol=ATOL)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"proj_size": 2}, r"Keras cannot represent this LSTM: it has no proj_size=2"),
        ({"peephole": True}, r"it has no peephole=True"),
        ({"zoneout": 0.1}, r"it has no zoneout"),
        ({"activations": ("hard_sigmoid", "tanh", "tanh")}, r"activations: unsupported value"),
        ({"activations": ("sigmoid", "tanh", "relu")}, r"activations: unsupported value"),
    ],
)
def test_options_keras_lacks_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_keras(numpy_lstm.LSTM(I, H, **options))


def test_dropout_model_is_imported_in_inference_mode(
    rng: np.random.Generator, x: np.ndarray
) -> None:
    model = keras.Sequential(
        [
            keras.Input((None, I)),
            keras.layers.LSTM(H, return_sequences=True),
            keras.layers.Dropout(0.5),
            keras.layers.LSTM(H, return_sequences=True),
            keras.layers.Dense(2),
        ]
    )
    ours = from_keras(model)
    assert not ours.training and not any(m.training for m in ours.modules())
    predicted = model.predict(x, verbose=0)
    np.testing.assert_allclose(numpy_of(model(x, training=False)), predicted, atol=ATOL)
    for _ in range(2):  # no dropout mask drawn: the same answer each call
        np.testing.assert_allclose(ours(x)[0], predicted, atol=ATOL)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_go_backwards_lstm_matches_keras(
    rng: np.random.Generator, x: np.ndarray, return_sequences: bool, zero_output_for_mask: bool
) -> None:
    layer = keras.layers.LSTM(
        H,
        go_backwards=True,
        return_sequences=return_sequences,
        return_state=True,
        zero_output_for_mask=zero_output_for_mask,
    )
    layer.build((None, None, I))
    distinct_gates(layer, rng)
    ours = from_keras(layer)
    assert isinstance(ours, GoBackwards) and not ours.training
    for mask in (None, MASK, HOLES):
        y, h, c = (numpy_of(a) for a in layer(x, mask=mask))
        out, (h_n, c_n) = ours(x, mask=mask)
        # Keras leaves the outputs in reading order: y[:, 0] is after reading step T−1 only.
        np.testing.assert_allclose(out if return_sequences else out[:, -1], y, atol=ATOL)
        np.testing.assert_allclose(h_n[0], h, atol=ATOL)
        np.testing.assert_allclose(c_n[0], c, atol=ATOL)
    np.testing.assert_array_equal(ours(x, lengths=LENGTHS)[0], ours(x, mask=MASK)[0])
    # unbatched (T, I): the same numbers up to the last bits, which the SIMD kernels' order of
    # summation for a lone row (split into partial sums) may change
    np.testing.assert_allclose(ours(x[0])[0], ours(x)[0][0], rtol=1e-6, atol=1e-7)


def test_go_backwards_stack_with_head_and_gradients(
    rng: np.random.Generator, x: np.ndarray
) -> None:
    import torch

    model = keras.Sequential(
        [
            keras.Input((None, I)),
            keras.layers.LSTM(H, go_backwards=True, return_sequences=True),
            keras.layers.LSTM(H, return_sequences=True),
            keras.layers.Dense(3),
        ]
    )
    for layer in model.layers[:2]:
        distinct_gates(layer, rng)
    ours = from_keras(model)
    assert isinstance(ours, GoBackwards) and isinstance(ours.inner, SequenceModel)
    np.testing.assert_allclose(ours(x)[0], numpy_of(model(x)), atol=ATOL)
    # Keras passes the second LSTM the mask unreversed over reversed steps: not representable.
    with pytest.raises(ValueError, match=r"mask, lengths: unsupported with a go_backwards"):
        ours(x, mask=MASK)
    # Gradients through the reversal, against torch's autograd through Keras's own layers.
    x_t = torch.tensor(x, requires_grad=True)
    dy = rng.standard_normal((B, T, 3)).astype(np.float32)
    (model(x_t) * torch.tensor(dy)).sum().backward()
    ours(x)
    dx, _ = ours.backward(dy)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), atol=ATOL)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_bidirectional_last_step_only_matches_keras(
    rng: np.random.Generator, x: np.ndarray, dense: bool, layers: int
) -> None:
    stack: list = [keras.Input((None, I))]
    for k in range(layers):
        last = k == layers - 1
        stack.append(keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=not last)))
    stack += [keras.layers.Dense(3)] if dense else []
    model = keras.Sequential(stack)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            distinct_gates(layer, rng)
    ours = from_keras(model)
    assert isinstance(ours, SequenceToOne) and not ours.training
    for mask in (None, MASK, HOLES):
        theirs = numpy_of(model(x, mask=mask))
        assert theirs.shape == (B, 3 if dense else 2 * H)
        np.testing.assert_allclose(ours(x, mask=mask), theirs, atol=ATOL)


def test_zero_output_for_mask_zeroes_a_masked_last_step(x: np.ndarray) -> None:
    layer = keras.layers.LSTM(H, zero_output_for_mask=True)  # return_sequences=False
    layer.build((None, None, I))
    y = numpy_of(layer(x, mask=MASK))
    assert not y[1:].any()  # Keras: the last step is masked in sequences 1 and 2
    np.testing.assert_allclose(from_keras(layer)(x, mask=MASK)[0][:, -1], y, atol=ATOL)


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [keras.layers.LSTM(H, go_backwards=True, return_sequences=True),
                 keras.layers.Dense(2)],
        lambda: [keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True)),
                 keras.layers.Dropout(0.3),
                 keras.layers.Bidirectional(keras.layers.LSTM(H)), keras.layers.Dense(2)],
        lambda: [keras.layers.LSTM(H, use_bias=False, return_sequences=True),
                 keras.layers.Dense(2, use_bias=False)],
    ],
    ids=["go_backwards", "bidirectional-last-step", "no-bias"],
)  # fmt: skip
def test_keras_written_files_load_exactly(
    rng: np.random.Generator, x: np.ndarray, tmp_path, layers
) -> None:
    inputs = keras.Input((None, I))
    outputs = inputs
    for layer in layers():
        outputs = layer(outputs)
    model = keras.Model(inputs, outputs)  # functional: Keras records each layer's inputs
    for layer in model.layers:
        if isinstance(layer, (keras.layers.LSTM, keras.layers.Bidirectional)):
            distinct_gates(layer, rng)
    model.save(tmp_path / "m.keras")
    ours = load_keras(tmp_path / "m.keras")
    y = ours(x)
    np.testing.assert_allclose(
        y[0] if isinstance(y, tuple) else y, model.predict(x, verbose=0), atol=ATOL
    )
