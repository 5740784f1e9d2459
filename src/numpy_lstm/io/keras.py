"""Keras 3 ⇄ numpy-lstm: `LSTM` and `Bidirectional(LSTM)` stacks with an optional `Dense` head.

Keras stores one layer as kernel (I, 4H), recurrent_kernel (H, 4H) and one bias (4H,), gates
i, f, c, o — torch's i, f, g, o under another name — so a conversion is a transpose; Keras's
single bias becomes `bias_ih` (with `bias_hh` = 0) and, going back, `bias_ih + bias_hh`, which
can move the sum by one float32 ulp. `unit_forget_bias` is only an initializer: the values are
carried as they are (numpy-lstm's `init="keras"` draws like Keras does).

Semantics kept: Keras models are batch-major (→ `batch_first=True`); at masked steps a Keras
LSTM carries its state and outputs the previous output (→ `mask_output="carry"`), except inside
`Bidirectional` or with `zero_output_for_mask`, where it outputs zeros (→ "zero");
`go_backwards` is the reverse direction of a `Bidirectional`, and on a lone first LSTM a
:class:`GoBackwards` (input and mask reversed, outputs left in Keras's reversed order);
`Dropout` layers between LSTMs are torch's inter-layer dropout (off: `from_keras` returns
inference mode, like `model.predict`); `recurrent_dropout` is numpy-lstm's (one mask per
sequence). A last LSTM with `return_sequences=False` returns only its last step: ours returns
every step, and Keras's result is `y[:, -1]`; a last `Bidirectional` with
`return_sequences=False` returns both directions' final h, which is a `SequenceToOne`.

This module imports Keras; if `KERAS_BACKEND` is unset it selects the torch backend (the one the
`numpy-lstm[keras]` extra installs) before the import.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "torch")
import keras

from ..core.validation import valid_steps
from ..nn.layers import GradStateLike, Linear, State, StateLike
from ..nn.lstm import LSTM
from ..nn.models import SequenceModel, SequenceToOne
from ..nn.module import Module
from .archives import describe
from .errors import FileFormatError
from .keras_files import check_keras_file
from .representable import Lacks, unsupported

__all__ = [
    "GoBackwards",
    "from_keras",
    "keras_layout",
    "load_keras",
    "save_keras",
    "to_keras",
    "torch_layout",
]

# Activations whose Keras and numpy-lstm definitions agree (Keras 3's hard_sigmoid is
# relu6(x + 3)/6, slope 1/6; ONNX's and ours has slope 0.2, so it is not among them).
SHARED_ACTIVATIONS = ("sigmoid", "tanh", "relu", "softsign")
KERAS_LACKS = Lacks(
    "Keras", ("proj_size", "peephole", "coupled_input_forget", "clip", "layer_norm", "zoneout")
)


# -- layouts (pure) ---------------------------------------------------------------------------
def torch_layout(
    kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Keras kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,) or None → torch's
    weight_ih (4H, I), weight_hh (4H, H), bias_ih = bias, bias_hh = 0 (same gate order)."""
    weights = {"weight_ih": kernel.T.copy(), "weight_hh": recurrent_kernel.T.copy()}
    if bias is not None:
        weights |= {"bias_ih": bias.copy(), "bias_hh": np.zeros_like(bias)}
    return weights


def keras_layout(
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray | None = None,
    bias_hh: np.ndarray | None = None,
) -> list[np.ndarray]:
    """torch's weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,) → Keras's
    [kernel (I, 4H), recurrent_kernel (H, 4H), bias = bias_ih + bias_hh (4H,)]."""
    weights = [weight_ih.T.copy(), weight_hh.T.copy()]
    return weights if bias_ih is None else [*weights, bias_ih + bias_hh]


# -- Keras → numpy-lstm -----------------------------------------------------------------------
class GoBackwards(Module):
    """A Keras LSTM with `go_backwards=True` as the first layer: `inner` (a unidirectional
    batch-first LSTM or SequenceModel) run on the time-reversed input and mask, its outputs left
    in that reversed order — as Keras returns them: y[:, t] is the output after reading steps
    T−1, …, T−1−t (a last step only, return_sequences=False, is y[:, -1]).

    `y, (h_n, c_n) = model(x, hx=None, lengths=None, mask=None)`: x (B, T, I) or unbatched
    (T, I), y (B, T, out); `lengths` (B,) become a mask (B, T) (valid steps 0 … L−1) that is
    reversed with the input — for one LSTM layer only: above it, Keras passes the mask on
    unreversed over the reversed outputs, which no stack reproduces, so a mask with a
    masked step is refused there. `model.backward(dy, d_state)` reverses dx back.
    The native format cannot hold it (save `model.inner`, and reverse the input yourself).
    """

    def __init__(self, inner: LSTM | SequenceModel) -> None:
        super().__init__()
        lstm = inner if isinstance(inner, LSTM) else inner.lstm
        if not isinstance(lstm, LSTM) or not lstm.batch_first or lstm.bidirectional:
            raise ValueError(
                f"inner: expected a unidirectional batch_first LSTM model, got {inner!r}"
            )
        self.inner = inner

    @property
    def dtype(self) -> np.dtype:
        return self.inner.dtype

    def forward(
        self,
        x: ArrayLike,
        hx: StateLike | None = None,
        *,
        lengths: ArrayLike | None = None,
        mask: ArrayLike | None = None,
    ) -> tuple[np.ndarray, State]:
        x = np.asarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"x: expected shape (B, T, I) or unbatched (T, I), got {x.shape}")
        steps = x.shape[-2]
        valid = valid_steps(lengths, mask, x.shape[0] if x.ndim == 3 else None, steps)
        lstm = self.inner if isinstance(self.inner, LSTM) else self.inner.lstm
        if valid is not None and lstm.num_layers > 1 and not valid.all():
            # Keras hands the layers above a go_backwards LSTM its mask unreversed, over the
            # reversed outputs: not what any LSTM stack computes on a reversed sequence.
            raise ValueError(
                "mask, lengths: unsupported with a go_backwards LSTM below other LSTMs (Keras "
                "passes the unreversed mask up over reversed outputs); give no mask"
            )
        flipped = None if valid is None else np.flip(valid, -1).copy()
        x = np.flip(x, -2).copy()  # the time axis: -2 for (B, T, I) and (T, I) alike
        return self.inner(x, hx, mask=flipped)

    def backward(
        self, dy: ArrayLike | None = None, d_state: GradStateLike | None = None
    ) -> tuple[np.ndarray, State]:
        """The inner model's backward (y is its output as it is), dx reversed back in time."""
        dx, d_state0 = self.inner.backward(dy, d_state)
        return np.flip(dx, -2).copy(), d_state0

    def __repr__(self) -> str:
        return f"GoBackwards({self.inner!r})"


KerasModel = LSTM | SequenceModel | SequenceToOne | GoBackwards


def from_keras(model: Any, *, drop_masking: bool = False) -> KerasModel:
    """A numpy-lstm copy of a Keras `LSTM` or `Bidirectional(LSTM)` layer, or of a model
    (Sequential or functional) made of such layers, `Dropout` between them, an optional final
    `Dense` (linear) head and `InputLayer`s. A `Masking` layer is refused unless
    `drop_masking=True`: numpy-lstm takes the mask as an argument (`mask=(x != 0).any(-1)`).

    Returns, in inference mode (`.training` False, Dropout off — what `model.predict` and
    `model(x, training=False)` compute; call `.train()` to train it): an LSTM, or a
    SequenceModel when there is a head; a SequenceToOne when the last layer is a Bidirectional
    with return_sequences=False (its output joins the forward's last step with the backward's
    first, which no step of a sequence output holds; without a Dense head, the head is the
    identity); and a GoBackwards around that when the first LSTM has go_backwards=True.
    Anything else raises."""
    layers = list(model.layers) if isinstance(model, keras.Model) else [model]
    lstms: list[Any] = []  # keras.layers.LSTM or Bidirectional (Keras has no type information)
    rates: list[float] = []
    dense: Any = None  # keras.layers.Dense
    for layer in layers:
        kind = type(layer).__name__
        if dense is not None:
            raise ValueError(f"{layer.name}: unsupported {kind} after the Dense head")
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Masking) and drop_masking:
            continue
        if isinstance(layer, keras.layers.Dropout) and lstms and layer.noise_shape is None:
            rates.append(layer.rate)
        elif isinstance(layer, (keras.layers.LSTM, keras.layers.Bidirectional)):
            lstms.append(layer)
        elif isinstance(layer, keras.layers.Dense) and lstms:
            dense = layer
        elif isinstance(layer, keras.layers.Masking):
            raise ValueError(
                f"{layer.name}: a Masking layer cannot be part of a numpy-lstm model, which "
                f"takes the mask as an argument: call it with mask=(x != {layer.mask_value})"
                f".any(-1); from_keras(..., drop_masking=True) accepts the model without it"
            )
        else:
            raise ValueError(
                f"{layer.name}: unsupported Keras layer {kind} here (supported: LSTM, "
                f"Bidirectional(LSTM) stacks, Dropout between them, one final Dense)"
            )
    if not lstms:
        raise ValueError(f"model: no LSTM layer in {getattr(model, 'name', model)!r}")
    if len(set(rates)) > 1 or len(rates) not in (0, len(lstms) - 1):
        raise unsupported("Dropout layers", rates, "one rate between every pair of LSTMs")
    for layer in lstms[:-1]:
        if not layer.return_sequences:  # Keras itself cannot stack those; say so plainly
            raise unsupported(f"{layer.name}: return_sequences", False, "True below the last")
    cells = [_cells(layer, first=k == 0) for k, layer in enumerate(lstms)]
    options = _lstm_options(lstms[-1], [c for pair in cells for c in pair])
    lstm = LSTM(
        cells[0][0].weights[0].shape[0],
        options.pop("units"),
        num_layers=len(lstms),
        batch_first=True,
        bidirectional=len(cells[0]) == 2,
        dropout=float(rates[0]) if rates else 0.0,
        **options,
    )
    state: dict[str, np.ndarray] = {}
    for k, pair in enumerate(cells):
        if len(pair) != lstm.num_directions:
            raise unsupported(f"{lstms[k].name}", "a mix of LSTM and Bidirectional", "either")
        for cell, suffix in zip(pair, ("", "_reverse"), strict=False):
            weights = [np.asarray(keras.ops.convert_to_numpy(w)) for w in cell.weights]
            state |= {
                f"{n}_l{k}{suffix}": v for n, v in torch_layout(*_split_weights(weights)).items()
            }
    lstm.load_state_dict(state)
    head = None if dense is None else _head(dense, lstm)
    last_step_only = lstm.bidirectional and not lstms[-1].return_sequences
    ours: LSTM | SequenceModel | SequenceToOne
    if last_step_only:
        width = lstm.num_directions * lstm.output_size
        if head is None:  # the identity: x·1 + Σ 0·x_j is x exactly
            head = Linear(width, width, bias=False, dtype=lstm.dtype)
            head.load_state_dict({"weight": np.eye(width, dtype=lstm.dtype)})
        ours = SequenceToOne(lstm, head)
    else:
        ours = lstm if head is None else SequenceModel(lstm, head)
    # go_backwards is only allowed on a first plain LSTM, so the stack is unidirectional and
    # never a SequenceToOne (that is for a last Bidirectional).
    go_backwards = getattr(lstms[0], "go_backwards", False)
    result: KerasModel = ours
    if go_backwards and not isinstance(ours, SequenceToOne):
        result = GoBackwards(ours)
    result.eval()  # Keras's predict: Dropout layers off (ours would otherwise draw masks)
    return result


def _head(dense: Any, lstm: LSTM) -> Linear:
    """The Linear copy of a Keras `Dense` head (linear activation only)."""
    activation = _activation_name(dense.activation)
    if activation != "linear":
        raise unsupported(f"{dense.name}: Dense activation", activation, "'linear'")
    kernel, *bias = (np.asarray(keras.ops.convert_to_numpy(w)) for w in dense.weights)
    head = Linear(kernel.shape[0], kernel.shape[1], bias=bool(bias), dtype=lstm.dtype)
    head.load_state_dict({"weight": kernel.T.copy(), **({"bias": bias[0]} if bias else {})})
    return head


def _split_weights(weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    return weights[0], weights[1], weights[2] if len(weights) == 3 else None


def _activation_name(function: Any) -> str:
    """'tanh' for Keras's own activations; a repr for custom ones (refused later)."""
    try:
        name = keras.activations.serialize(function)  # a dict for registered custom ones
    except Exception:  # a lambda: Keras tries to serialize its source code
        return repr(function)
    return name if isinstance(name, str) else repr(name)


def _cells(layer: Any, *, first: bool) -> tuple[Any, ...]:
    """The Keras LSTM layer(s) of one numpy-lstm layer: (forward,) or (forward, backward)."""
    if isinstance(layer, keras.layers.LSTM):
        if layer.go_backwards and not first:
            raise unsupported(
                f"{layer.name}: go_backwards",
                True,
                "False above the first layer (a first go_backwards LSTM reverses the whole "
                "stack's input; one higher up reverses only part of it), or inside "
                "Bidirectional",
            )
        return (layer,)
    if layer.merge_mode != "concat":
        raise unsupported(f"{layer.name}: merge_mode", layer.merge_mode, "'concat'")
    forward, backward = layer.forward_layer, layer.backward_layer
    if not isinstance(forward, keras.layers.LSTM) or not isinstance(backward, keras.layers.LSTM):
        raise unsupported(f"{layer.name}: wrapped layer", type(forward).__name__, "LSTM")
    if forward.go_backwards or not backward.go_backwards:
        raise unsupported(f"{layer.name}: go_backwards", "swapped", "backward layer only")
    return forward, backward


def _lstm_options(last: Any, cells: Sequence[Any]) -> dict[str, Any]:
    """The numpy-lstm options the Keras LSTM layers share (they must all agree)."""
    seen: dict[str, set] = {}
    for cell in cells:
        if cell.stateful:
            raise unsupported(f"{cell.name}: stateful", True, "False")
        if cell.dropout:
            raise unsupported(
                f"{cell.name}: dropout",
                cell.dropout,
                "0 (numpy-lstm has no input dropout; Dropout layers between LSTMs are supported)",
            )
        options = {
            "units": cell.units,
            "bias": cell.use_bias,
            "recurrent_dropout": float(cell.recurrent_dropout),
            "dtype": np.dtype(cell.variable_dtype).name,
            "gate": _activation_name(cell.recurrent_activation),
            "cell": _activation_name(cell.activation),
        }
        if cell.compute_dtype != cell.variable_dtype:  # mixed precision computes in float16
            raise unsupported(
                f"{cell.name}: compute dtype",
                cell.compute_dtype,
                "the weights' (no mixed precision)",
            )
        for name, value in options.items():
            seen.setdefault(name, set()).add(value)
    for name, values in seen.items():
        if len(values) > 1:
            raise unsupported(f"{name} of the LSTM layers", sorted(map(str, values)), "one")
    options = {name: values.pop() for name, values in seen.items()}
    for role in ("gate", "cell"):
        if options[role] not in SHARED_ACTIVATIONS:
            raise unsupported(f"{role} activation", options[role], SHARED_ACTIVATIONS)
    gate, act = options.pop("gate"), options.pop("cell")
    lstm_layer = last.forward_layer if isinstance(last, keras.layers.Bidirectional) else last
    # Keras zeroes a masked last step too (return_sequences=False): y[:, -1] is then 0, as
    # with "zero"; Bidirectional forces zero_output_for_mask = return_sequences on its layers.
    zero = lstm_layer.zero_output_for_mask
    return {**options, "activations": (gate, act, act), "mask_output": "zero" if zero else "carry"}


# -- numpy-lstm → Keras -----------------------------------------------------------------------
def to_keras(model: LSTM | SequenceModel) -> keras.Model:
    """A `keras.Sequential` computing what `model` computes on batch-major input (B, T, I):
    LSTM (or Bidirectional) layers with return_sequences=True, Dropout between them, and a
    Dense head. Options Keras lacks (projection, peepholes, clip, …) raise ValueError."""
    head = model.head if isinstance(model, SequenceModel) else None
    lstm = model.lstm if isinstance(model, SequenceModel) else model
    if not isinstance(lstm, LSTM):
        raise TypeError(f"model: expected LSTM or SequenceModel, got {type(model).__name__}")
    KERAS_LACKS.check(lstm)
    gate, cell, hidden = lstm.variant.activations
    if gate not in SHARED_ACTIVATIONS or cell != hidden or cell not in SHARED_ACTIVATIONS:
        raise unsupported(
            "activations",
            lstm.variant.activations,
            f"(gate, act, act) with each in {SHARED_ACTIVATIONS}",
        )
    dtype = lstm.dtype.name
    layers: list[Any] = [keras.Input((None, lstm.input_size), dtype=dtype)]
    for k in range(lstm.num_layers):
        if k and lstm.dropout:
            layers.append(keras.layers.Dropout(lstm.dropout, dtype=dtype))
        layer = keras.layers.LSTM(
            lstm.hidden_size,
            activation=cell,
            recurrent_activation=gate,
            use_bias=lstm.bias,
            recurrent_dropout=lstm.recurrent_dropout,
            return_sequences=True,
            zero_output_for_mask=lstm.mask_output == "zero",
            dtype=dtype,
        )
        layers.append(keras.layers.Bidirectional(layer) if lstm.bidirectional else layer)
    if head is not None:
        layers.append(
            keras.layers.Dense(head.out_features, use_bias=head.config()["bias"], dtype=dtype)
        )
    keras_model = keras.Sequential(layers)
    recurrent = [
        layer for layer in keras_model.layers if not isinstance(layer, keras.layers.Dropout)
    ]
    for k, layer in enumerate(recurrent[: lstm.num_layers]):
        weights = []
        for reverse in (False, True)[: lstm.num_directions]:
            w = lstm.layer_weights(k, reverse)
            weights += keras_layout(w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh)
        layer.set_weights(weights)
    if head is not None:
        state = head.state_dict()
        recurrent[-1].set_weights(
            [state["weight"].T, *([state["bias"]] if "bias" in state else [])]
        )
    return keras_model


# -- files ------------------------------------------------------------------------------------
def load_keras(path: str | os.PathLike, *, like: LSTM | SequenceModel | None = None) -> KerasModel:
    """Read a `.keras` file (architecture and weights; loaded with Keras's safe_mode), or a
    `.weights.h5` file into the architecture of `like` (a numpy-lstm model: weights files hold
    no architecture). A file that is not what it claims, or declares more weights than it
    holds, or holds a model numpy-lstm cannot represent, raises FileFormatError naming it —
    a .keras file is checked (archive, config, declared sizes) before Keras builds anything."""
    path = Path(path)
    if path.name.endswith(".weights.h5"):
        if like is None:
            raise ValueError(
                f"{path}: a .weights.h5 file holds no architecture; pass like=<a numpy-lstm "
                f"model of the same architecture> (CLI: --like FILE)"
            )
        keras_model = to_keras(like)
        try:
            keras_model.load_weights(path)
        except Exception as err:  # h5py's OSError, Keras's ValueError on a mismatch, …
            raise FileFormatError(path, f"Keras cannot read it ({describe(err)})") from None
        return from_keras(keras_model)
    check_keras_file(path)
    try:
        keras_model = keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # whatever Keras raises on a config it cannot rebuild
        raise FileFormatError(path, f"Keras cannot load it ({describe(err)})") from None
    try:
        return from_keras(keras_model)
    except ValueError as err:
        raise FileFormatError(path, str(err)) from None


def save_keras(model: LSTM | SequenceModel, path: str | os.PathLike) -> Path:
    """Write `model` as a `.keras` file, or only its weights as `.weights.h5`."""
    keras_model, path = to_keras(model), Path(path)
    if path.name.endswith(".weights.h5"):
        keras_model.save_weights(path)
    else:
        keras_model.save(path)
    return path
