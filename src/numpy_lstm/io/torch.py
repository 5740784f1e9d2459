"""PyTorch ⇄ numpy-lstm: `nn.LSTM`, `nn.LSTMCell`, `nn.Linear`, and plain state dicts.

numpy-lstm uses torch's parameter names, shapes and gate order (i, f, g, o), so a conversion is
an exact copy of every tensor; what needs care is the architecture around them. A state dict
alone does not say `batch_first` or `dropout` (they are not parameters): pass them as options.

    model = from_torch(torch_module)          # nn.LSTM → LSTM, nn.LSTMCell → LSTMCell, …
    model = from_torch(state_dict, batch_first=True)
    torch_module = to_torch(model)            # same weights, same train/eval mode
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar, overload

import numpy as np
import torch
from torch import nn

from ..nn.layers import Linear, LSTMCell, parameter_shapes
from ..nn.lstm import LSTM
from ..nn.models import SequenceModel
from ..nn.module import Module
from .representable import Lacks

__all__ = [
    "TorchSequenceModel",
    "from_torch",
    "model_from_state_dict",
    "numpy_to_state_dict",
    "state_dict_to_numpy",
    "to_torch",
]

M = TypeVar("M", bound=Module)
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
# What torch.nn.LSTM lacks. mask_output is not here: torch has no masks (packed sequences pad
# with zeros, like mask_output="zero"), so the weights and every unmasked output are the same.
TORCH_LACKS = Lacks(
    "torch.nn.LSTM",
    (
        "peephole",
        "coupled_input_forget",
        "clip",
        "activations",
        "layer_norm",
        "recurrent_dropout",
        "zoneout",
    ),
)


class TorchSequenceModel(nn.Module):
    """The torch twin of :class:`numpy_lstm.nn.models.SequenceModel`: an `nn.LSTM` named `lstm`
    and an optional `nn.Linear` named `head` on every step; state-dict keys are the same."""

    def __init__(self, lstm: nn.LSTM, head: nn.Linear | None = None) -> None:
        super().__init__()
        self.lstm = lstm
        self.head = head

    def forward(
        self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, state = self.lstm(x, hx)
        return (out if self.head is None else self.head(out)), state


# -- tensors ----------------------------------------------------------------------------------
def state_dict_to_numpy(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """name → tensor (float32/float64, any device) → name → a NumPy copy. Other dtypes raise."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state: expected a state dict (name → tensor), got {type(state).__name__}")
    arrays = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise TypeError(
                f"state: expected str → torch.Tensor entries, got {name!r} → {type(value).__name__}"
            )
        if value.dtype not in TORCH_DTYPES.values():
            raise TypeError(f"{name}: expected dtype float32 or float64, got {value.dtype}")
        arrays[name] = value.detach().cpu().numpy().copy()
    return arrays


def numpy_to_state_dict(state: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """name → array → name → a tensor that owns a copy."""
    return {name: torch.from_numpy(np.array(value, copy=True)) for name, value in state.items()}


# -- architecture from a state dict -----------------------------------------------------------
def model_from_state_dict(state: Mapping[str, Any], **options: Any) -> Module:
    """The numpy-lstm model whose parameters are `state` (arrays or tensors), architecture
    inferred from the names and shapes: `weight_ih_l{k}…` → LSTM, `weight_ih` → LSTMCell,
    `weight` → Linear, `lstm.*` (+ `head.*`) → SequenceModel. `options` are the LSTM's
    non-parameter arguments (batch_first, dropout, mask_output, …). The load is strict: an
    unknown, missing or misshapen tensor raises."""
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        state = state_dict_to_numpy(state)
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"state: expected a non-empty state dict, got {state!r}")
    model = _architecture(state, options)
    model.load_state_dict(state)
    return model


def _architecture(state: Mapping[str, np.ndarray], options: dict[str, Any]) -> Module:
    # Every shape is checked against the tensors present BEFORE a module is built: a module
    # allocates what its sizes say (a (4H, 1) weight_ih alone would otherwise make a (4H, H)
    # weight_hh), and those sizes must be paid for by the state dict itself.
    if "lstm.weight_ih_l0" in state:
        lstm = _expect(LSTM, "lstm", _architecture(_sub(state, "lstm."), options))
        head = _sub(state, "head.")
        return SequenceModel(
            lstm, _expect(Linear, "head", _architecture(head, {})) if head else None
        )
    if "weight_ih_l0" in state:
        rows, input_size = _matrix(state, "weight_ih_l0")
        layers = {int(m[1]) for k in state if (m := re.fullmatch(r"weight_ih_l(\d+)", k))}
        proj = state.get("weight_hr_l0")
        arguments = {
            "num_layers": len(layers),
            "bias": "bias_ih_l0" in state,
            "bidirectional": "weight_ih_l0_reverse" in state,
            "proj_size": 0 if proj is None else _matrix(state, "weight_hr_l0")[0],
            **options,
        }
        _check_lstm_shapes(state, input_size, rows // 4, arguments)
        return LSTM(
            input_size, rows // 4, dtype=np.asarray(state["weight_ih_l0"]).dtype, **arguments
        )
    if options:
        raise ValueError(f"options: only an LSTM takes options, got {sorted(options)}")
    if "weight_ih" in state:
        rows, input_size = _matrix(state, "weight_ih")
        expected = parameter_shapes(input_size, rows // 4, bias="bias_ih" in state)
        _check_shapes(state, expected)
        w = np.asarray(state["weight_ih"])
        return LSTMCell(input_size, rows // 4, bias="bias_ih" in state, dtype=w.dtype)
    if "weight" in state:
        rows, columns = _matrix(state, "weight")
        w = np.asarray(state["weight"])
        return Linear(columns, rows, bias="bias" in state, dtype=w.dtype)
    raise ValueError(
        f"state: not the state dict of an nn.LSTM, nn.LSTMCell, nn.Linear or a model with "
        f"`lstm` and `head` attributes; its keys are {sorted(state)[:8]}"
    )


def _matrix(state: Mapping[str, np.ndarray], name: str) -> tuple[int, int]:
    shape = np.shape(state[name])
    if len(shape) != 2:
        raise ValueError(f"{name}: expected a matrix, got shape {shape}")
    return int(shape[0]), int(shape[1])


def _check_lstm_shapes(
    state: Mapping[str, np.ndarray], input_size: int, hidden_size: int, arguments: dict[str, Any]
) -> None:
    """Every layer-direction's parameters (names and shapes) must be in `state` as the LSTM
    that `arguments` describe would allocate them; nothing else may be."""
    if not isinstance(arguments.get("num_layers"), int) or hidden_size < 1:
        return  # LSTM's own checks name the problem; nothing is allocated before them
    proj = arguments.get("proj_size") or 0
    directions = ("", "_reverse")[: 2 if arguments.get("bidirectional") else 1]
    expected: dict[str, tuple[int, ...]] = {}
    for k in range(arguments["num_layers"]):
        layer_input = input_size if k == 0 else len(directions) * (proj or hidden_size)
        shapes = parameter_shapes(
            layer_input,
            hidden_size,
            bias=bool(arguments.get("bias", True)),
            proj_size=proj,
            peephole=bool(arguments.get("peephole", False)),
            layer_norm=bool(arguments.get("layer_norm", False)),
        )
        for suffix in directions:
            expected |= {f"{name}_l{k}{suffix}": shape for name, shape in shapes.items()}
    _check_shapes(state, expected)


def _check_shapes(state: Mapping[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    """Names and shapes, as load_state_dict would check them, but before anything exists."""
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    for name, shape in expected.items():
        if name in state and (got := tuple(np.shape(state[name]))) != shape:
            problems.append(f"{name}: expected shape {shape}, got {got}")
    if problems:
        raise ValueError(f"state: {'; '.join(problems)}")


def _expect(kind: type[M], name: str, model: object) -> M:
    """`model`, which must be a `kind` to be the part `name` of a SequenceModel."""
    if not isinstance(model, kind):
        raise TypeError(
            f"{name}: expected a numpy_lstm.{kind.__name__}, got {type(model).__name__}"
        )
    return model


def _sub(state: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


# -- modules ----------------------------------------------------------------------------------
def from_torch(module: nn.Module | Mapping[str, Any], **options: Any) -> Module:
    """A numpy-lstm copy of a torch `nn.LSTM`, `nn.LSTMCell`, `nn.Linear`,
    :class:`TorchSequenceModel`, or of a plain state dict (see :func:`model_from_state_dict`,
    which takes the non-parameter `options`). Train/eval mode is kept."""
    if isinstance(module, Mapping):
        return model_from_state_dict(module, **options)
    if isinstance(module, TorchSequenceModel):
        lstm = _expect(LSTM, "lstm", from_torch(module.lstm, **options))
        head = None if module.head is None else _expect(Linear, "head", from_torch(module.head))
        return SequenceModel(lstm, head).train(module.training)
    if isinstance(module, nn.LSTM):
        options = {"batch_first": module.batch_first, "dropout": module.dropout, **options}
    elif not isinstance(module, (nn.LSTMCell, nn.Linear)):
        raise TypeError(
            f"module: expected nn.LSTM, nn.LSTMCell, nn.Linear, TorchSequenceModel or a state "
            f"dict, got {type(module).__name__}"
        )
    model = model_from_state_dict(module.state_dict(), **options)
    return model.train(module.training)


@overload
def to_torch(model: LSTM) -> nn.LSTM: ...
@overload
def to_torch(model: LSTMCell) -> nn.LSTMCell: ...
@overload
def to_torch(model: Linear) -> nn.Linear: ...
@overload
def to_torch(model: SequenceModel) -> TorchSequenceModel: ...
@overload
def to_torch(model: Module) -> nn.Module: ...
def to_torch(model: Module) -> nn.Module:
    """The torch module computing what `model` computes: LSTM → nn.LSTM, LSTMCell →
    nn.LSTMCell, Linear → nn.Linear, SequenceModel → TorchSequenceModel; exact weights, same
    dtype and train/eval mode. Options torch lacks (peepholes, clip, …) raise ValueError."""
    if isinstance(model, SequenceModel):
        head = None if model.head is None else to_torch(model.head)
        return TorchSequenceModel(to_torch(model.lstm), head).train(model.training)
    if isinstance(model, LSTM):
        TORCH_LACKS.check(model)
        theirs: nn.Module = nn.LSTM(
            model.input_size,
            model.hidden_size,
            num_layers=model.num_layers,
            bias=model.bias,
            batch_first=model.batch_first,
            dropout=model.dropout,
            bidirectional=model.bidirectional,
            proj_size=model.proj_size,
            dtype=TORCH_DTYPES[model.dtype],
        )
    elif isinstance(model, LSTMCell):
        theirs = nn.LSTMCell(
            model.input_size, model.hidden_size, model.bias, dtype=TORCH_DTYPES[model.dtype]
        )
    elif isinstance(model, Linear):
        theirs = nn.Linear(
            model.in_features,
            model.out_features,
            "bias" in model.state_dict(),
            dtype=TORCH_DTYPES[model.dtype],
        )
    else:
        raise TypeError(
            f"model: expected LSTM, LSTMCell, Linear or SequenceModel, got {type(model).__name__}"
        )
    theirs.load_state_dict(numpy_to_state_dict(model.state_dict()))
    return theirs.train(model.training)
