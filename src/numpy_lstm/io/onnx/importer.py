"""ONNX → numpy-lstm: the LSTM nodes of an ONNX graph become an `LSTM` (or a `SequenceModel`
when a MatMul (+ Add) head follows), weights read from the initializers.

What is accepted: a chain of ONNX `LSTM` nodes that share their attributes (one numpy-lstm
LSTM has one set of options), fed by the graph input x (or by its Transpose, for batch-major
input; `layout=1` nodes take x batch-major themselves), glue ops from :data:`GLUE_OPS`, and at
most one MatMul (+ Add, either operand order) head — what our exporter and torch's (both
`torch.onnx.export(..., dynamo=False)` and the default dynamo exporter, static or dynamic
shapes) write. The glue is
interpreted, not trusted (:mod:`.arrange`): each later node's X must be the Y below as
(T, B, D·H) (Transpose, Reshape, Squeeze, …), each initial state the node's rows of h0/c0 (Slice,
Split), each graph output one of the model's outputs as the model (or a bare ONNX node)
arranges it; an op on those ways that is not interpreted is refused by name. Each node's
sequence_lens is absent or the same graph input (a constant one only if it equals a static
sequence length: it then masks nothing); its initial_h/initial_c are absent, zeros whatever the
input (a zero constant, ConstantOfShape of 0, an Expand of zeros, …), or slices of two graph
inputs that are the model's hx (h0, c0) (D·L, B, H). A constant non-zero initial state or
constant lengths cannot be held by numpy-lstm's LSTM and are refused. Each graph output must be
one of the model's: the last node's Y (or the head on it), the nodes' Y_h (→ h_n) or their Y_c
(→ c_n) — outputs made by other ops (our exporter's mask_output="carry" Where) only with
verify=True, which then decides. `direction="reverse"` nodes (all of them) become a
:class:`~.reverse.ReverseTime` around the forward model. Anything else — another op, an
activation or parameter numpy-lstm does not have, weights that are not constants — is refused
with a FileFormatError naming it (and the file).

As a second, independent check, `verify=True` (the default) runs the graph in ONNX Runtime on a
random probe (with lengths and initial states, if the graph takes them) and compares every graph
output, matched by its role, with ours: a model is returned only if they all agree (see
:mod:`.verify`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ...nn.layers import Linear
from ...nn.lstm import LSTM
from ...nn.models import SequenceModel
from ..errors import FileFormatError
from ..representable import unsupported
from .arrange import Arrangements, Uninterpreted, check_arrangements, state_rows
from .graph import Walk, read_constants
from .layout import ONNX_ACTIVATIONS, torch_tensors
from .reverse import ReverseTime
from .verify import TOLERANCE, Probe, Role, static_dims, verify_graph

FROM_ONNX_ACTIVATION = {onnx_name: ours for ours, onnx_name in ONNX_ACTIVATIONS.items()}
LSTM_ATTRIBUTES = {
    "hidden_size", "direction", "activations", "clip", "input_forget", "layout",
    "activation_alpha", "activation_beta",
}  # fmt: skip
GLUE_OPS = {
    "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Identity", "Shape", "Gather",
    "Cast", "Range", "Less", "Where", "ConstantOfShape", "Split", "Slice", "Constant", "Expand",
    "Mul",  # of shapes only (checked): torch's dynamo exporter computes D·H for a dynamic batch
}  # fmt: skip
HINTED_OPTIONS = ("mask_output", "dropout", "recurrent_dropout")  # not visible in a graph
# Errors a malformed graph can raise deep inside a walk (a missing input, an attribute of the
# wrong type): reported as a FileFormatError naming the file, never as themselves.
MALFORMED = (IndexError, KeyError, TypeError, AttributeError, RecursionError, OverflowError)


def import_onnx(source: Any, *, verify: bool = True) -> LSTM | SequenceModel | ReverseTime:
    """An ONNX model (path, bytes or ModelProto) → LSTM, or SequenceModel with a head (inside a
    ReverseTime for direction="reverse" nodes).
    The model returns numpy-lstm's shapes: output (T, B, D·H) where a bare ONNX node's Y is
    (T, D, B, H), h_n and c_n (D·L, B, H). Raises FileFormatError (a ValueError) naming the
    source for a file that is not an ONNX model or a graph it cannot import exactly."""
    label = _label(source)
    try:
        return _import(_load(source, label), verify)
    except FileFormatError:
        raise
    except ValueError as err:
        raise FileFormatError(label, str(err)) from None
    except MALFORMED as err:
        raise FileFormatError(
            label, f"malformed ONNX graph ({type(err).__name__}: {err})"
        ) from None


def _label(source: Any) -> str:
    if isinstance(source, onnx.ModelProto):
        return "<onnx.ModelProto>"
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return os.fspath(source)


def _load(source: Any, label: str) -> onnx.ModelProto:
    """Parse (without external data: a file never makes us read another) and check."""
    if isinstance(source, onnx.ModelProto):
        proto = source
    else:
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(label).read_bytes()
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except Exception as err:  # protobuf's DecodeError, or its C++ backend's own types
            raise FileFormatError(label, f"not an ONNX model (protobuf: {err})") from None
    try:
        onnx.checker.check_model(proto)
    except Exception as err:  # ValidationError, or the checker's own errors on garbage
        raise FileFormatError(label, f"ONNX model: fails onnx.checker: {err}") from None
    return proto


def _import(proto: onnx.ModelProto, verify: bool) -> LSTM | SequenceModel | ReverseTime:
    graph = proto.graph
    ops = {node.op_type for node in graph.node} - GLUE_OPS - {"LSTM", "MatMul", "Add"}
    if ops:
        raise unsupported("ONNX graph: ops", sorted(ops), f"LSTM, MatMul, Add, {sorted(GLUE_OPS)}")
    nodes = [node for node in graph.node if node.op_type == "LSTM"]
    if not nodes:
        raise ValueError("ONNX graph: no LSTM node")
    constants = read_constants(graph)
    _check_muls(graph, constants, nodes)
    options = [_node_options(node) for node in nodes]
    for k, other in enumerate(options[1:], 1):
        if other != options[0]:
            raise unsupported(
                f"LSTM node {nodes[k].name or k}: attributes",
                other,
                f"those of the first {options[0]}",
            )
    weights = [_node_weights(node, constants, options[0], k) for k, node in enumerate(nodes)]
    # Each layer's weights are its own tensors: nodes sharing one would make the model (one copy
    # per layer) far larger than the file.
    named = [name for node in nodes for name in node.input[1:4] if name]
    if len(set(named)) != len(named):
        raise unsupported("LSTM nodes: weight tensors", "shared between nodes", "one set per node")
    walk = Walk(graph, constants, nodes)
    walk.check_sizes()
    layout = options[0]["layout"]
    x_name, batch_first = _x_input(walk, nodes, layout)
    lengths_name = _lengths(walk, nodes, x_name, batch_first)
    state_names = _initial_states(walk, nodes, layout, weights[0]["W"].shape[0])
    _check_inputs(walk, x_name, lengths_name, state_names)
    I, D = weights[0]["W"].shape[2], weights[0]["W"].shape[0]
    lstm = LSTM(
        I,
        options[0]["hidden_size"],
        num_layers=len(nodes),
        bias="B" in weights[0],
        batch_first=batch_first,
        bidirectional=D == 2,
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
        for d, suffix in enumerate(("", "_reverse")[:D]):
            state |= {f"{n}_l{k}{suffix}": v for n, v in torch_tensors(tensors, d).items()}
    try:
        lstm.load_state_dict(state)
    except (TypeError, ValueError) as err:
        raise ValueError(f"ONNX graph: the LSTM nodes do not form one stack: {err}") from None
    head = _head(walk, lstm)
    roles = _output_roles(walk, head is not None)
    sizes = {"D": D, "H": lstm.hidden_size, "1": 1}
    # Where the graph declares x's T or B static it runs at that size only, so constant shapes
    # that hold it (torch's dynamo exporter writes Reshape [T, B, D·H]) are exact.
    dims = static_dims(graph, x_name)
    steps, batch = (dims[1], dims[0]) if batch_first else (dims[0], dims[1])
    sizes |= {k: v for k, v in (("T", steps), ("B", batch)) if v}
    if head is not None:
        sizes["O"] = head.out_features
    arrangements = Arrangements(walk, sizes, layout, _head_names(walk))
    check_arrangements(walk, arrangements, batch_first, layout, outputs=False)
    try:
        check_arrangements(walk, arrangements, batch_first, layout, outputs=True)
    except Uninterpreted as err:
        # Outputs made through other ops (our exporter's mask_output="carry" Where) can only be
        # checked by running the graph.
        if not verify:
            raise ValueError(f"{err} (with verify=True, checked in onnxruntime instead)") from None
    inner = lstm if head is None else SequenceModel(lstm, head)
    model = ReverseTime(inner) if options[0]["direction"] == "reverse" else inner
    model.eval()
    if verify:
        verify_graph(proto, model, Probe(x_name, lengths_name, state_names, roles, layout))
    return model


def _check_muls(
    graph: onnx.GraphProto, constants: dict[str, np.ndarray], nodes: list[onnx.NodeProto]
) -> None:
    """Mul is accepted as shape arithmetic only (a product of dims), never on tensor values."""
    walk = Walk(graph, constants, nodes)
    for node in graph.node:
        if node.op_type == "Mul" and not walk.is_shape_arithmetic(node.output[0]):
            raise unsupported(
                f"Mul node {node.name!r}: operands",
                list(node.input),
                "shape arithmetic only (products of Shape outputs and constants)",
            )


def _node_options(node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes as numpy-lstm options, refusing what we cannot compute."""
    name = f"LSTM node {node.name!r}"
    attrs = {a.name: helper_value(a) for a in node.attribute}
    extra = sorted(set(attrs) - LSTM_ATTRIBUTES)
    if extra:
        raise unsupported(f"{name}: attributes", extra, sorted(LSTM_ATTRIBUTES))
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise unsupported(f"{name}: direction", direction, "'forward', 'reverse', 'bidirectional'")
    if attrs.get("layout", 0) not in (0, 1):
        raise unsupported(f"{name}: layout", attrs["layout"], "0 (time-major), 1 (batch-major)")
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
    hidden_size = attrs.get("hidden_size")
    if hidden_size is not None and not isinstance(hidden_size, int):
        raise unsupported(f"{name}: hidden_size", hidden_size, "an int")
    return {
        "hidden_size": hidden_size,
        "direction": direction,
        "activations": tuple(FROM_ONNX_ACTIVATION[a] for a in names[:3]),
        "clip": None if clip is None else float(clip),
        "input_forget": bool(attrs.get("input_forget", 0)),
        "layout": attrs.get("layout", 0),
    }


def helper_value(attribute: onnx.AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [v.decode(errors="replace") if isinstance(v, bytes) else v for v in value]
    return value


def _node_weights(
    node: onnx.NodeProto, constants: dict[str, np.ndarray], options: dict[str, Any], k: int
) -> dict[str, np.ndarray]:
    """W (D, 4H, I), R (D, 4H, H) and, if given, B (D, 8H) and P (D, 3H) of a node: constants
    of one float dtype whose shapes agree with each other, with the node's direction and
    hidden_size — checked before any model is built, so a hidden_size the weights do not
    hold allocates nothing. Fills in options["hidden_size"] when the node omits it."""
    where = f"LSTM node {k} ({node.name!r})"
    tensors = {}
    for key, index in (("W", 1), ("R", 2), ("B", 3), ("P", 7)):
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            continue
        if name not in constants:
            raise unsupported(f"{where}: input {key}", name, "an initializer")
        tensors[key] = constants[name]
    if "W" not in tensors or "R" not in tensors:
        raise ValueError(f"{where}: W and R must be given")
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) != 1 or dtypes.pop() not in TOLERANCE:
        raise unsupported(f"{where}: weight dtypes", dtypes, "float32, float64")
    D = 2 if options["direction"] == "bidirectional" else 1
    R = tensors["R"]
    H = R.shape[-1] if R.ndim == 3 else -1
    options["hidden_size"] = options["hidden_size"] or H
    I = tensors["W"].shape[-1] if tensors["W"].ndim == 3 else -1
    if k > 0 and I != D * H:  # checked here, before a model of len(nodes) layers is built
        raise ValueError(f"{where}: W has input size {I}, expected {D * H} (the layer below's)")
    expected = {"W": (D, 4 * H, I), "R": (D, 4 * H, H), "B": (D, 8 * H), "P": (D, 3 * H)}
    for key, value in tensors.items():
        if value.shape != expected[key] or options["hidden_size"] != H or min(H, I) < 1:
            raise ValueError(
                f"{where}: {key} has shape {value.shape}, expected {expected[key]} for "
                f"hidden_size {options['hidden_size']} and {D} direction(s)"
            )
    return tensors


def _x_input(walk: Walk, nodes: list[onnx.NodeProto], layout: int) -> tuple[str, bool]:
    """(name of x, batch_first): x feeds the first LSTM node directly or through Transpose
    [1, 0, 2] (which swaps the node's layout); each later node's X comes from the previous
    node's Y only."""
    first = nodes[0]
    for k, node in enumerate(nodes[1:], 1):
        if walk.sources(node.input[0]) != [("Y", k - 1)]:
            raise unsupported(
                f"LSTM node {k}: X", walk.sources(node.input[0]), f"the Y of LSTM node {k - 1}"
            )
    if first.input[0] in walk.inputs:
        return first.input[0], layout == 1
    producer = walk.producers.get(first.input[0])
    if (
        producer is not None
        and producer.op_type == "Transpose"
        and producer.input[0] in walk.inputs
    ):
        perm = [helper_value(a) for a in producer.attribute if a.name == "perm"]
        if perm == [[1, 0, 2]]:
            return producer.input[0], layout == 0
    raise unsupported(
        "the first LSTM node's X",
        f"{first.input[0]} (made by {producer.op_type if producer else '?'})",
        "a graph input (T, B, I), or its Transpose [1, 0, 2]; one-step (LSTMCell) graphs are "
        "not imported — convert the cell from its .safetensors or .pt file",
    )


def _lengths(walk: Walk, nodes: list[onnx.NodeProto], x_name: str, batch_first: bool) -> str | None:
    """The graph input that is every node's sequence_lens, or None. A constant is accepted
    only where it masks nothing (every length is the graph's static sequence length): our
    model takes lengths per call and cannot hold fixed ones."""
    names = {node.input[4] if len(node.input) > 4 else "" for node in nodes}
    if len(names) != 1:
        raise unsupported(
            "the LSTM nodes' sequence_lens", sorted(names), "the same graph input for every node"
        )
    name = names.pop()
    if not name or name in walk.inputs:
        return name or None
    if name in walk.constants:
        steps = static_dims(walk.graph, x_name)[1 if batch_first else 0]
        value = walk.constants[name]
        if steps is not None and value.size and np.all(value == steps):
            return None
        raise ValueError(
            f"sequence_lens {name!r}: the constant {value.ravel()[:8].tolist()} "
            f"masks steps of a sequence of length {steps or 'T (not static)'}; numpy-lstm's "
            f"model takes lengths per call (model(x, lengths=…)) and cannot hold fixed ones — "
            f"make sequence_lens a graph input"
        )
    raise unsupported("sequence_lens", f"{name} (computed)", "a graph input, or none")


def _initial_states(
    walk: Walk, nodes: list[onnx.NodeProto], layout: int, D: int
) -> tuple[str, str] | None:
    """(h0, c0): the graph inputs of which every node k's initial_h/initial_c is rows
    [k·D, (k+1)·D) — the model's hx — or None when every node starts from zeros (absent, or
    zeros whatever the input)."""
    found: list[set[str | None]] = [set(), set()]
    for slot, key in ((5, "initial_h"), (6, "initial_c")):
        for k, node in enumerate(nodes):
            name = node.input[slot] if len(node.input) > slot else ""
            if not name or walk.is_zeros(name):
                found[slot - 5].add(None)
                continue
            where = f"LSTM node {k} ({node.name!r}): {key} {name!r}"
            reached = walk.reached_inputs(name)
            if name in walk.constants or reached == set():
                raise ValueError(
                    f"{where}: a constant, non-zero initial state — numpy-lstm's LSTM starts "
                    f"from zeros or from the hx passed per call and cannot hold a fixed one; "
                    f"make {key} a graph input (and pass it as hx) or zeros"
                )
            source, start, stop = state_rows(walk, name, D * len(nodes))
            if (start, stop) != (k * D, (k + 1) * D):
                raise unsupported(f"{where}: rows of {source!r}", (start, stop), (k * D, k * D + D))
            found[slot - 5].add(source)
    h, c = found
    if h == {None} and c == {None}:
        return None
    if len(h) == 1 and len(c) == 1 and None not in h | c and h != c:
        if layout == 1:
            raise unsupported(
                "initial states of layout=1 nodes",
                "graph inputs (B, D, H)",
                "zeros (numpy-lstm's hx is (D·L, B, H) in either layout)",
            )
        return h.pop(), c.pop()  # type: ignore[return-value]
    raise unsupported(
        "initial states (initial_h, initial_c)",
        f"from {sorted(map(str, h))}, {sorted(map(str, c))}",
        "zeros for every node, or slices of one h0 and one c0 graph input for every node",
    )


def _check_inputs(
    walk: Walk, x_name: str, lengths_name: str | None, states: tuple[str, str] | None
) -> None:
    known = {x_name, lengths_name, *(states or ())}
    extra = sorted(walk.inputs - known)
    if extra:
        raise unsupported(
            "ONNX graph: inputs", extra, "x, sequence_lens and initial states (h0, c0) only"
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


def _head(walk: Walk, lstm: LSTM) -> Linear | None:
    """A Linear head from one MatMul (constant right operand (in, out)) on the last node's
    output, and at most one Add of a constant bias (out,) to it, in either operand order
    (torch writes Add(bias, MatMul))."""
    matmuls = [n for n in walk.graph.node if n.op_type == "MatMul"]
    adds = [n for n in walk.graph.node if n.op_type == "Add"]
    if not matmuls and not adds:
        return None
    if len(matmuls) != 1 or len(adds) > 1:
        raise unsupported("MatMul, Add nodes", (len(matmuls), len(adds)), "one MatMul (+ one Add)")
    matmul = matmuls[0]
    weight = walk.constants.get(matmul.input[1])
    if weight is None or weight.ndim != 2 or weight.dtype != lstm.dtype:
        raise unsupported(
            "MatMul: right operand", matmul.input[1], f"a constant {lstm.dtype} matrix"
        )
    last = len(walk.lstm_nodes) - 1
    if walk.sources(matmul.input[0]) != [("Y", last)]:
        raise unsupported("MatMul: left operand", walk.sources(matmul.input[0]), "the last Y")
    output, bias = matmul.output[0], None
    if adds:
        operands = list(adds[0].input)
        if len(operands) != 2 or output not in operands:
            raise unsupported("Add: operands", operands, f"the MatMul's {output} and a bias")
        other = operands[1 - operands.index(output)]
        bias = walk.constants.get(other)
        out = weight.shape[1]
        if bias is None or bias.size != out or bias.shape[-1:] != (out,) or bias.ndim > 3:
            raise unsupported("Add: bias", other, f"a constant of shape ({out},)")
        output = adds[0].output[0]
    walk.head_output = output
    head = Linear(weight.shape[0], weight.shape[1], bias=bias is not None, dtype=lstm.dtype)
    state = {"weight": weight.T.copy()}
    if bias is not None:
        state["bias"] = bias.reshape(-1).astype(lstm.dtype)
    head.load_state_dict(state)
    return head


def _head_names(walk: Walk) -> list[str]:
    """The head's MatMul output and, if any, its Add's output."""
    names = [n.output[0] for n in walk.graph.node if n.op_type == "MatMul"]
    return names + [n.output[0] for n in walk.graph.node if n.op_type == "Add"] if names else []


def _output_roles(walk: Walk, has_head: bool) -> list[Role]:
    """What each graph output is in our model's terms, traced through the graph: "output" (the
    last node's Y, or the head on it), "h_n"/"c_n" with the layers whose Y_h/Y_c it holds."""
    last = len(walk.lstm_nodes) - 1
    roles = []
    for value in walk.graph.output:
        sources = walk.sources(value.name)
        if ("head", -1) in sources or (not has_head and ("Y", last) in sources):
            roles.append(Role(value.name, "output", ()))
        elif sources and all(role == "Y_h" for role, _ in sources):
            roles.append(Role(value.name, "h_n", tuple(k for _, k in sources)))
        elif sources and all(role == "Y_c" for role, _ in sources):
            roles.append(Role(value.name, "c_n", tuple(k for _, k in sources)))
        else:
            raise unsupported(
                f"graph output {value.name!r}: computed from",
                sources,
                "the last node's Y (or the head on it), the nodes' Y_h, or their Y_c",
            )
    return roles
