"""ONNX → numpy-lstm: the LSTM nodes of an ONNX graph become an `LSTM` (or a `SequenceModel`
when a MatMul (+ Add) head follows), weights read from the initializers.

What is accepted: a chain of ONNX `LSTM` nodes that share their attributes (one numpy-lstm
LSTM has one set of options), fed by the graph input x (or by its Transpose, for batch-major
input), glue ops from :data:`GLUE_OPS`, and at most one MatMul (+ Add) head. Anything else —
another op, a `reverse`-only direction, `layout=1`, an activation or parameter numpy-lstm does not
have, weights that are not constants — is refused with a ValueError naming it.

Because glue between nodes can be arranged in ways a structural check cannot fully rule out,
`verify=True` (the default) runs the graph in ONNX Runtime on a small random input (with
lengths, if the graph takes them) and compares its first output with ours: a model is returned
only if they agree. (Not `onnx.reference`: its LSTM ignores sequence_lens, clip, input_forget
and activations — onnx 1.23 — so it is an oracle only for plain and peephole graphs.)
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ...nn.layers import Linear
from ...nn.lstm import LSTM
from ...nn.models import SequenceModel
from ..representable import unsupported
from .layout import ONNX_ACTIVATIONS, torch_tensors

FROM_ONNX_ACTIVATION = {onnx_name: ours for ours, onnx_name in ONNX_ACTIVATIONS.items()}
LSTM_ATTRIBUTES = {
    "hidden_size", "direction", "activations", "clip", "input_forget", "layout",
    "activation_alpha", "activation_beta",
}  # fmt: skip
GLUE_OPS = {
    "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Identity", "Shape", "Gather",
    "Cast", "Range", "Less", "Where", "ConstantOfShape", "Split", "Slice", "Constant",
}  # fmt: skip
HINTED_OPTIONS = ("mask_output", "dropout", "recurrent_dropout")  # not visible in a graph
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


def import_onnx(source: Any, *, verify: bool = True) -> LSTM | SequenceModel:
    """An ONNX model (path, bytes or ModelProto) → LSTM, or SequenceModel with a head.
    The model returns numpy-lstm's shapes: output (T, B, D·H) where a bare ONNX node's Y is
    (T, D, B, H), h_n and c_n (D·L, B, H)."""
    proto = _load(source)
    graph = proto.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    ops = {node.op_type for node in graph.node} - GLUE_OPS - {"LSTM", "MatMul", "Add"}
    if ops:
        raise unsupported("ONNX graph: ops", sorted(ops), f"LSTM, MatMul, Add, {sorted(GLUE_OPS)}")
    nodes = [node for node in graph.node if node.op_type == "LSTM"]
    if not nodes:
        raise ValueError("ONNX graph: no LSTM node")
    options = [_node_options(node, constants) for node in nodes]
    for k, other in enumerate(options[1:], 1):
        if other != options[0]:
            raise unsupported(
                f"LSTM node {nodes[k].name or k}: attributes",
                other,
                f"those of the first {options[0]}",
            )
    weights = [_node_weights(node, constants) for node in nodes]
    x_name, batch_first, lengths_name = _graph_inputs(graph, nodes[0])
    lstm = LSTM(
        weights[0]["W"].shape[2],
        options[0]["hidden_size"],
        num_layers=len(nodes),
        bias="B" in weights[0],
        batch_first=batch_first,
        bidirectional=options[0]["direction"] == "bidirectional",
        dtype=weights[0]["W"].dtype,
        peephole="P" in weights[0],
        coupled_input_forget=options[0]["input_forget"],
        clip=options[0]["clip"],
        activations=options[0]["activations"],
        **_hints(proto),
    )
    state: dict[str, np.ndarray] = {}
    for k, tensors in enumerate(weights):
        if set(tensors) != set(weights[0]):
            raise unsupported(f"LSTM node {k}: inputs", sorted(tensors), sorted(weights[0]))
        for d, suffix in enumerate(("", "_reverse")[: lstm.num_directions]):
            state |= {f"{n}_l{k}{suffix}": v for n, v in torch_tensors(tensors, d).items()}
    try:
        lstm.load_state_dict(state)
    except (TypeError, ValueError) as err:
        raise ValueError(f"ONNX graph: the LSTM nodes do not form one stack: {err}") from None
    head = _head(graph, constants, lstm)
    model = lstm if head is None else SequenceModel(lstm, head)
    model.eval()
    if verify:
        _verify(proto, model, x_name, lengths_name, nodes[-1].output[0])
    return model


def _load(source: Any) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        proto = source
    elif isinstance(source, bytes):
        proto = onnx.load_from_string(source)
    else:
        proto = onnx.load(os.fspath(source), load_external_data=False)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        raise ValueError(f"ONNX model: fails onnx.checker: {err}") from None
    return proto


def _node_options(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> dict[str, Any]:
    """The node's attributes as numpy-lstm options, refusing what we cannot compute."""
    name = f"LSTM node {node.name!r}"
    attrs = {a.name: helper_value(a) for a in node.attribute}
    extra = sorted(set(attrs) - LSTM_ATTRIBUTES)
    if extra:
        raise unsupported(f"{name}: attributes", extra, sorted(LSTM_ATTRIBUTES))
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "bidirectional"):
        raise unsupported(f"{name}: direction", direction, "'forward', 'bidirectional'")
    if attrs.get("layout", 0) != 0:
        raise unsupported(f"{name}: layout", attrs["layout"], "0 (time-major)")
    D = 2 if direction == "bidirectional" else 1
    names = attrs.get("activations", ["Sigmoid", "Tanh", "Tanh"] * D)
    if len(names) != 3 * D or names[-3:] != names[:3]:
        raise unsupported(f"{name}: activations", names, "the same (f, g, h) for each direction")
    if any(a not in FROM_ONNX_ACTIVATION for a in names):
        raise unsupported(f"{name}: activations", names, sorted(FROM_ONNX_ACTIVATION))
    # Of our activations only HardSigmoid takes alpha/beta; its defaults are the ones we have.
    for key, default in (("activation_alpha", 0.2), ("activation_beta", 0.5)):
        values = attrs.get(key, [])
        if not np.allclose(values, default):
            raise unsupported(f"{name}: {key}", values, f"HardSigmoid's default {default} only")
    clip = attrs.get("clip")
    return {
        "hidden_size": attrs.get("hidden_size") or constants[node.input[2]].shape[1] // 4,
        "direction": direction,
        "activations": tuple(FROM_ONNX_ACTIVATION[a] for a in names[:3]),
        "clip": None if clip is None else float(clip),
        "input_forget": bool(attrs.get("input_forget", 0)),
    }


def helper_value(attribute: onnx.AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def _node_weights(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """W, R and (if given) B and P of a node, which must be constants of one float dtype."""
    tensors = {}
    for key, index in (("W", 1), ("R", 2), ("B", 3), ("P", 7)):
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            continue
        if name not in constants:
            raise unsupported(f"LSTM node {node.name!r}: input {key}", name, "an initializer")
        tensors[key] = constants[name]
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) != 1 or dtypes.pop() not in TOLERANCE:
        raise unsupported(f"LSTM node {node.name!r}: weight dtypes", dtypes, "float32, float64")
    return tensors


def _graph_inputs(graph: onnx.GraphProto, first: onnx.NodeProto) -> tuple[str, bool, str | None]:
    """(name of x, batch_first, name of lengths or None): x feeds the first LSTM node
    directly (time-major) or through Transpose [1, 0, 2] (batch-major); lengths, if any, is
    the graph input that feeds its sequence_lens."""
    inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    lengths = first.input[4] if len(first.input) > 4 and first.input[4] in inputs else None
    if first.input[0] in inputs:
        return first.input[0], False, lengths
    producer = next((n for n in graph.node if first.input[0] in n.output), None)
    if producer is not None and producer.op_type == "Transpose" and producer.input[0] in inputs:
        perm = [helper_value(a) for a in producer.attribute if a.name == "perm"]
        if perm == [[1, 0, 2]]:
            return producer.input[0], True, lengths
    raise unsupported(
        "the first LSTM node's X",
        f"{first.input[0]} (made by {producer.op_type if producer else '?'})",
        "a graph input (T, B, I), or its Transpose [1, 0, 2]; one-step (LSTMCell) graphs are "
        "not imported — convert the cell from its .safetensors or .pt file",
    )


def _hints(proto: onnx.ModelProto) -> dict[str, Any]:
    """Options a graph cannot show, from the metadata our exporter writes (if present)."""
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        config = json.loads(props.get("numpy_lstm.config", "{}"))
    except json.JSONDecodeError:
        return {}
    config = config.get("lstm", config) if isinstance(config, dict) else {}
    return {k: config[k] for k in HINTED_OPTIONS if k in config and config[k] is not None}


def _head(graph: onnx.GraphProto, constants: dict[str, np.ndarray], lstm: LSTM) -> Linear | None:
    matmuls = [n for n in graph.node if n.op_type == "MatMul"]
    if not matmuls:
        return None
    if len(matmuls) > 1 or matmuls[0].input[1] not in constants:
        raise unsupported("MatMul nodes", len(matmuls), "one, with a constant right operand")
    weight = constants[matmuls[0].input[1]].T
    adds = [n for n in graph.node if n.op_type == "Add"]
    bias = [constants.get(n.input[1]) for n in adds if n.input[0] == matmuls[0].output[0]]
    if len(adds) != len(bias) or len(bias) > 1 or (bias and bias[0] is None):
        raise unsupported("Add nodes", len(adds), "one, adding a constant bias to the MatMul")
    head = Linear(weight.shape[1], weight.shape[0], bias=bool(bias), dtype=lstm.dtype)
    state = {"weight": weight.copy()}
    if bias and bias[0] is not None:
        state["bias"] = bias[0]
    head.load_state_dict(state)
    return head


def _verify(
    proto: onnx.ModelProto,
    model: LSTM | SequenceModel,
    x_name: str,
    lengths_name: str | None,
    last_y: str,
) -> None:
    """Run the graph in ONNX Runtime on a random probe (other inputs, such as initial
    states, get zeros); raise unless its first output is ours (compared in ONNX's Y layout
    when that output is the last node's Y itself)."""
    lstm = model.lstm if isinstance(model, SequenceModel) else model
    if lstm.dtype != np.float32:
        raise ValueError(
            f"ONNX graph: cannot verify a {lstm.dtype} graph (onnxruntime's LSTM runs float32 "
            f"only); pass verify=False to import it unchecked"
        )
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(
            "import_onnx(verify=True) runs the graph in onnxruntime: pip install "
            "'numpy-lstm[onnx]', or pass verify=False to skip the check"
        ) from err

    graph = proto.graph
    inputs = {v.name: v for v in graph.input}
    x_dims = [d.dim_value or None for d in inputs[x_name].type.tensor_type.shape.dim]
    batch_axis, time_axis = (0, 1) if lstm.batch_first else (1, 0)
    steps, batch = x_dims[time_axis] or 5, x_dims[batch_axis] or 3
    shape = [0, 0, lstm.input_size]
    shape[time_axis], shape[batch_axis] = steps, batch
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(lstm.dtype)
    lengths = np.maximum(steps - np.arange(batch), 1).astype(np.int32) if lengths_name else None
    feeds = {x_name: x} | ({lengths_name: lengths} if lengths_name else {})
    for name in set(inputs) - set(feeds) - {t.name for t in graph.initializer}:
        dims = [d.dim_value or batch for d in inputs[name].type.tensor_type.shape.dim]
        feeds[name] = np.zeros(dims, dtype=lstm.dtype)
    try:
        session = onnxruntime.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        expected = session.run(None, feeds)[0]
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValueError(
            f"ONNX graph: fails in onnxruntime on a probe input of shape {x.shape} "
            f"(the glue between its LSTM nodes is not a plain stack?): {err}"
        ) from None
    ours, _ = model(x, lengths=lengths)
    if graph.output[0].name == last_y:  # the bare node's Y (T, D, B, H), not our (…, D·H)
        steps_first = ours.transpose(1, 0, 2) if lstm.batch_first else ours
        ours = steps_first.reshape(steps, batch, lstm.num_directions, -1).transpose(0, 2, 1, 3)
    tolerance = TOLERANCE[lstm.dtype]
    if ours.shape != expected.shape or not np.allclose(ours, expected, tolerance, tolerance):
        error = np.abs(ours - expected).max() if ours.shape == expected.shape else "shape"
        raise ValueError(
            f"ONNX graph: the imported {model!r} does not compute what the graph computes "
            f"(onnxruntime on a probe input, output {expected.shape}, max error {error}); "
            f"the glue between its LSTM nodes is not the plain stack this importer understands"
        )
