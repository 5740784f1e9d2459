"""ONNX ⇄ numpy-lstm: export a model as a standard ONNX graph, import LSTM nodes back.

An exported graph runs anywhere ONNX Runtime does (C, C++, C#, Java, JS, a server) with
dynamic batch and sequence axes:

    inputs   x (T, B, I) — (B, T, I) with batch_first; `lengths` (B,) int32 if with_lengths;
             h0, c0 (D·L, B, H) if initial_state
    outputs  output (…, D·H) or (…, out_features) with a head; h_n, c_n (D·L, B, H)
    nodes    one ONNX `LSTM` per layer (W, R, B, P as initializers; sequence_lens = lengths),
             Transpose + Reshape between layers, MatMul + Add for the Linear head

ONNX's LSTM orders the gates i, o, f, c (torch: i, f, g, o), splits the bias into B = [Wb, Rb],
orders peepholes i, o, f, and has `clip`, `input_forget` (CIFG) and `activations`, which are
numpy-lstm's options of the same names. It has no projection, layer norm or zoneout: a model
with them is refused. Dropout is training-only and absent from an inference graph.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...core.cell import LSTMWeights
from ...nn.layers import LSTMCell
from ...nn.lstm import LSTM
from ...nn.models import SequenceModel
from ...nn.module import Module
from ...version import __version__
from .layout import (
    MIN_OPSET,
    ONNX_ACTIVATIONS,
    ONNX_LACKS,
    onnx_tensors,
)


# -- export -----------------------------------------------------------------------------------
class _Graph:
    """Collects nodes and initializers; every op gets fresh, readable output names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: set[str] = set()

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, base: str, value: np.ndarray) -> str:
        """An initializer. Integers become int64 (ONNX's shape and axes type, whatever the
        platform's default int), except explicit int32 (for `lengths` arithmetic)."""
        name = self.fresh(base)
        if value.dtype.kind == "i" and value.dtype != np.int32:
            value = value.astype(np.int64)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        """Add a node with one output, freshly named; returns that name."""
        return self.node(op_type, inputs, 1, **attrs)[0]

    def node(
        self, op_type: str, inputs: list[str], outputs: int | list[str], **attrs: Any
    ) -> list[str]:
        """Add a node; `outputs` is a count (fresh names) or a list of names. Returns the
        names. `attrs` are the node's ONNX attributes (ints, floats, strings, lists, tensors)."""
        if isinstance(outputs, int):
            outputs = [self.fresh(f"{op_type.lower()}") for _ in range(outputs)]
        self.names.update(outputs)
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs


def export_onnx(
    model: Module,
    path: str | os.PathLike | None = None,
    *,
    with_lengths: bool = False,
    initial_state: bool = False,
    opset: int = 17,
) -> onnx.ModelProto:
    """An ONNX model computing `model` (LSTM, SequenceModel or LSTMCell), checked with
    `onnx.checker` and written to `path` if given. See the module docstring for its inputs
    and outputs; an LSTMCell becomes x (B, I), h0, c0 (B, H) → h1, c1."""
    if not isinstance(model, (LSTM, SequenceModel, LSTMCell)):
        raise TypeError(
            f"model: expected LSTM, SequenceModel or LSTMCell, got {type(model).__name__}"
        )
    if model.dtype != np.float32:
        raise TypeError(
            f"model: ONNX Runtime's LSTM runs float32 only, got a {model.dtype} model; export a "
            f"float32 copy (build it with dtype='float32' and load the state dict cast with "
            f".astype(np.float32))"
        )
    if opset < MIN_OPSET:
        raise ValueError(f"opset: expected ≥ {MIN_OPSET}, got {opset}")
    g = _Graph()
    if isinstance(model, LSTMCell):
        inputs, outputs = _cell_graph(g, model)
    else:
        inputs, outputs = _sequence_graph(g, model, with_lengths, initial_state)
    graph = helper.make_graph(g.nodes, "numpy_lstm", inputs, outputs, g.initializers)
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="numpy-lstm",
        producer_version=__version__,
    )
    helper.set_model_props(
        proto,
        {
            "numpy_lstm.architecture": type(model).__name__,
            "numpy_lstm.config": json.dumps(model.config()),
        },
    )
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, os.fspath(path))
    return proto


def _lstm_node(g: _Graph, lstm: LSTM | LSTMCell, layer: int, inputs: dict[str, str]) -> list[str]:
    """One ONNX LSTM node for layer `layer`; `inputs` maps X, sequence_lens, initial_h/c to
    tensor names. Returns the names of Y, Y_h, Y_c."""
    is_cell = isinstance(lstm, LSTMCell)
    D = 1 if is_cell else lstm.num_directions
    if is_cell:  # an LSTMCell's parameter names are LSTMWeights' field names
        directions = [LSTMWeights(**lstm.state_dict())]
    else:
        directions = [lstm.layer_weights(layer, bool(d)) for d in range(D)]
    tensors = onnx_tensors(directions)
    names = {key: g.const(f"{key}_l{layer}", value) for key, value in tensors.items()}
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    names |= inputs
    node_inputs = [names.get(key, "") for key in order]
    while node_inputs[-1] == "":
        node_inputs.pop()
    attrs: dict[str, Any] = {
        "hidden_size": lstm.hidden_size,
        "direction": "bidirectional" if D == 2 else "forward",
    }
    if not is_cell:
        variant = lstm.variant
        attrs["activations"] = [ONNX_ACTIVATIONS[a] for a in variant.activations] * D
        if variant.clip is not None:
            attrs["clip"] = variant.clip
        if variant.coupled_input_forget:
            attrs["input_forget"] = 1
    outputs = [g.fresh(f"{key}_l{layer}") for key in ("Y", "Y_h", "Y_c")]
    return g.node("LSTM", node_inputs, outputs, **attrs)


def _sequence_graph(
    g: _Graph, model: LSTM | SequenceModel, with_lengths: bool, initial_state: bool
) -> tuple[list, list]:
    lstm = model.lstm if isinstance(model, SequenceModel) else model
    head = model.head if isinstance(model, SequenceModel) else None
    ONNX_LACKS.check(lstm)
    D, L, H, I = lstm.num_directions, lstm.num_layers, lstm.hidden_size, lstm.input_size
    element = TensorProto.FLOAT
    seq_axes = ["batch", "sequence"] if lstm.batch_first else ["sequence", "batch"]
    inputs = [helper.make_tensor_value_info("x", element, [*seq_axes, I])]
    g.names.add("x")
    x = g.op("Transpose", ["x"], perm=[1, 0, 2]) if lstm.batch_first else "x"
    lengths = "lengths" if with_lengths else None
    if lengths:
        inputs.append(helper.make_tensor_value_info(lengths, TensorProto.INT32, ["batch"]))
    h0: list[str] = []  # per layer, when the initial state is an input
    c0: list[str] = []
    if initial_state:
        for name in ("h0", "c0"):
            inputs.append(helper.make_tensor_value_info(name, element, [D * L, "batch", H]))
        h0, c0 = (
            [s] if L == 1 else g.node("Split", [s, g.const("split", np.full(L, D))], L, axis=0)
            for s in ("h0", "c0")
        )
    states, time_batch_features = [], g.const("shape_tb_", np.array([0, 0, -1]))
    for k in range(L):
        node_inputs = {"X": x, "sequence_lens": lengths}
        if initial_state:
            node_inputs |= {"initial_h": h0[k], "initial_c": c0[k]}
        y, y_h, y_c = _lstm_node(g, lstm, k, {n: v for n, v in node_inputs.items() if v})
        states.append((y_h, y_c))
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (T, D, B, H) → (T, B, D, H)
        x = g.op("Reshape", [y, time_batch_features])  # → (T, B, D·H), the next layer's X
    if lengths and lstm.mask_output == "carry":
        x = _carry(g, x, lengths, states[-1][0], h0[-1] if initial_state else None, D, lstm.dtype)
    if lstm.batch_first:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    width = D * H
    if head is not None:
        x = g.op("MatMul", [x, g.const("head_weight_t", head.state_dict()["weight"].T)])
        if head.config()["bias"]:
            x = g.op("Add", [x, g.const("head_bias", head.state_dict()["bias"])])
        width = head.out_features
    g.node("Identity", [x], ["output"])
    for name, parts in (("h_n", [h for h, _ in states]), ("c_n", [c for _, c in states])):
        if L > 1:
            g.node("Concat", parts, [name], axis=0)  # layer-major, then direction: torch's order
        else:
            g.node("Identity", parts, [name])
    outputs = [helper.make_tensor_value_info("output", element, [*seq_axes, width])]
    outputs += [
        helper.make_tensor_value_info(n, element, [D * L, "batch", H]) for n in ("h_n", "c_n")
    ]
    return inputs, outputs


def _carry(
    g: _Graph, y: str, lengths: str, y_h: str, h0: str | None, D: int, dtype: np.dtype
) -> str:
    """mask_output="carry" on the last layer's y (T, B, D·H): past each sequence's length,
    ONNX outputs zeros; we output the carried h — the forward direction's last valid h (its
    Y_h) and the reverse direction's initial h (it starts at the last valid step)."""
    steps = g.op(
        "Cast",
        [g.op("Gather", [g.op("Shape", [y]), g.const("zero", np.array(0))])],
        to=TensorProto.INT32,
    )
    time = g.op(
        "Range",
        [g.const("start", np.array(0, np.int32)), steps, g.const("one", np.array(1, np.int32))],
    )
    time_column = g.op("Unsqueeze", [time, g.const("axis1", np.array([1]))])  # (T, 1)
    lengths_row = g.op("Unsqueeze", [lengths, g.const("axis0", np.array([0]))])  # (1, B)
    valid = g.op("Less", [time_column, lengths_row])
    valid = g.op("Unsqueeze", [valid, g.const("axis2", np.array([2]))])  # (T, B, 1)
    carried = y_h  # (D, B, H)
    if D == 2:
        forward = g.op("Slice", [y_h, g.const("s0", np.array([0])), g.const("s1", np.array([1]))])
        if h0 is None:
            zeros = numpy_helper.from_array(np.zeros(1, dtype=dtype))
            reverse = g.op("ConstantOfShape", [g.op("Shape", [forward])], value=zeros)
        else:
            reverse = g.op(
                "Slice", [h0, g.const("s1", np.array([1])), g.const("s2", np.array([2]))]
            )
        carried = g.op("Concat", [forward, reverse], axis=0)
    carried = g.op("Transpose", [carried], perm=[1, 0, 2])  # (B, D, H)
    carried = g.op("Reshape", [carried, g.const("shape_b_", np.array([0, -1]))])
    return g.op("Where", [valid, y, carried])


def _cell_graph(g: _Graph, cell: LSTMCell) -> tuple[list, list]:
    element, I, H = TensorProto.FLOAT, cell.input_size, cell.hidden_size
    axis = g.const("axis0", np.array([0]))
    inputs = [helper.make_tensor_value_info("x", element, ["batch", I])]
    inputs += [helper.make_tensor_value_info(n, element, ["batch", H]) for n in ("h0", "c0")]
    g.names.update(("x", "h0", "c0"))
    x, h0, c0 = (g.op("Unsqueeze", [name, axis]) for name in ("x", "h0", "c0"))
    _, y_h, y_c = _lstm_node(g, cell, 0, {"X": x, "initial_h": h0, "initial_c": c0})
    g.node("Squeeze", [y_h, axis], ["h1"])
    g.node("Squeeze", [y_c, axis], ["c1"])
    outputs = [helper.make_tensor_value_info(n, element, ["batch", H]) for n in ("h1", "c1")]
    return inputs, outputs
