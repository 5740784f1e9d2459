"""The check behind `import_onnx(verify=True)`: run the graph in ONNX Runtime on a random probe
and compare every graph output, matched by its role (traced through the graph, never by
position), with what the imported model computes.

Roles: "output" — the model's output, compared in our arrangement ((T, B, D·H), batch-major with
batch_first) or in ONNX's Y arrangement ((T, D, B, H), or (B, T, D, H) for layout=1);
"h_n"/"c_n" — the listed layers' rows of our h_n/c_n (L·D, B, H), or (B, D, H) for layout=1.

onnxruntime's CPU LSTM refuses layout=1, so such graphs run with each layout=1 node rewritten
as the same node in layout 0 between Transposes — the definition of layout=1 in the ONNX spec.
(Not `onnx.reference` as the oracle: its LSTM ignores sequence_lens, clip, input_forget and
activations — onnx 1.23.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ...nn.lstm import LSTM
from ...nn.models import SequenceModel
from .graph import MAX_PROBE_ELEMENTS
from .reverse import ReverseTime

TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


@dataclass(frozen=True)
class Role:
    """A graph output and what it is: "output", or "h_n"/"c_n" of `layers` (in its order)."""

    name: str
    kind: str
    layers: tuple[int, ...]


@dataclass(frozen=True)
class Probe:
    """The graph inputs the model's call maps to, and the outputs' roles."""

    x_name: str
    lengths_name: str | None
    state_names: tuple[str, str] | None  # (h0, c0) graph inputs, the model's hx
    roles: list[Role]
    layout: int


def static_dims(graph: onnx.GraphProto, name: str) -> list[int | None]:
    """The declared dims of graph input `name`: ints where static, None where symbolic."""
    value = next(v for v in graph.input if v.name == name)
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def verify_graph(
    proto: onnx.ModelProto, model: LSTM | SequenceModel | ReverseTime, probe: Probe
) -> None:
    """Raise a ValueError unless onnxruntime's outputs of the graph are ours, role by role, on
    a random x (static dims as declared, else T = 5, B = 3), varied lengths and random initial
    states (if the graph takes them)."""
    lstm = model if isinstance(model, LSTM) else model.lstm
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

    dims = static_dims(proto.graph, probe.x_name)
    if len(dims) != 3:
        raise ValueError(f"ONNX graph: input {probe.x_name!r} has {len(dims)} dims, expected 3")
    batch_axis, time_axis = (0, 1) if lstm.batch_first else (1, 0)
    steps, batch = dims[time_axis] or 5, dims[batch_axis] or 3
    shape = [0, 0, lstm.input_size]
    shape[time_axis], shape[batch_axis] = steps, batch
    if math.prod(shape) > MAX_PROBE_ELEMENTS or min(shape) < 1:
        raise ValueError(f"ONNX graph: input {probe.x_name!r} declares shape {shape}, too large")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(lstm.dtype)
    feeds: dict[str, np.ndarray] = {probe.x_name: x}
    lengths = None
    if probe.lengths_name:
        lengths = np.maximum(steps - np.arange(batch), 1).astype(np.int32)
        feeds[probe.lengths_name] = lengths
    hx = None
    if probe.state_names:
        rows = lstm.num_directions * lstm.num_layers
        hx = tuple(
            (0.5 * rng.standard_normal((rows, batch, lstm.hidden_size))).astype(lstm.dtype)
            for _ in "hc"
        )
        feeds |= dict(zip(probe.state_names, hx, strict=True))
    runnable = _time_major(proto) if probe.layout == 1 else proto
    try:
        session = onnxruntime.InferenceSession(
            runnable.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]
        expected = dict(zip(names, session.run(None, feeds), strict=True))
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValueError(
            f"ONNX graph: fails in onnxruntime on a probe input of shape {x.shape} "
            f"(the glue between its LSTM nodes is not a plain stack?): {err}"
        ) from None
    ours, (h_n, c_n) = model(x, hx, lengths=lengths)
    for role in probe.roles:
        candidates = _candidates(role, lstm, ours, h_n, c_n)
        _compare(model, role, candidates, expected[role.name])


def _candidates(
    role: Role, lstm: LSTM, ours: np.ndarray, h_n: np.ndarray, c_n: np.ndarray
) -> list[np.ndarray]:
    """Our value for `role` in each arrangement the graph may hold it in."""
    D = lstm.num_directions
    if role.kind == "output":
        time_major = ours.transpose(1, 0, 2) if lstm.batch_first else ours
        T, B = time_major.shape[:2]
        if time_major.shape[2] % D:  # a head's width: no per-direction arrangement
            return [ours]
        split = time_major.reshape(T, B, D, -1)  # (T, B, D, H)
        return [ours, split.transpose(0, 2, 1, 3), split.transpose(1, 0, 2, 3)]
    state = h_n if role.kind == "h_n" else c_n
    rows = np.concatenate([state[k * D : (k + 1) * D] for k in role.layers])
    return [rows, rows.transpose(1, 0, 2)]


def _compare(
    model: LSTM | SequenceModel | ReverseTime,
    role: Role,
    candidates: list[np.ndarray],
    expected: np.ndarray,
) -> None:
    tolerance = TOLERANCE[np.dtype(np.float32)]
    shaped = [c for c in candidates if c.shape == expected.shape]
    errors = [float(np.abs(c - expected).max()) if c.size else 0.0 for c in shaped]
    if not errors or min(errors) > tolerance + tolerance * float(np.abs(expected).max(initial=0)):
        found: Any = (
            min(errors) if errors else f"shape {expected.shape}, ours {candidates[0].shape}"
        )
        raise ValueError(
            f"ONNX graph: the imported {model!r} does not compute what the graph computes "
            f"(graph output {role.name!r}, our {role.kind}: onnxruntime on a probe input, max "
            f"error {found}); the glue between its LSTM nodes is not the plain stack this "
            f"importer understands"
        )


def _time_major(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the graph in which every layout=1 LSTM node is a layout=0 node between
    Transposes: X, initial_h, initial_c (B, T|D, …) → (T|D, B, …), Y (T, D, B, H) → (B, T, D, H),
    Y_h, Y_c (D, B, H) → (B, D, H) — what layout=1 means in the ONNX spec."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    nodes = []
    for node in copy.graph.node:
        layout = [a for a in node.attribute if a.name == "layout"]
        if node.op_type != "LSTM" or not layout or layout[0].i != 1:
            nodes.append(node)
            continue
        layout[0].i = 0
        for slot in (0, 5, 6):
            if slot < len(node.input) and node.input[slot]:
                swapped = f"{node.input[slot]}__time_major_{len(nodes)}"
                nodes.append(
                    helper.make_node("Transpose", [node.input[slot]], [swapped], perm=[1, 0, 2])
                )
                node.input[slot] = swapped
        after = []
        for slot, perm in ((0, [2, 0, 1, 3]), (1, [1, 0, 2]), (2, [1, 0, 2])):
            if slot < len(node.output) and node.output[slot]:
                original = node.output[slot]
                node.output[slot] = f"{original}__time_major"
                after.append(
                    helper.make_node("Transpose", [node.output[slot]], [original], perm=perm)
                )
        nodes += [node, *after]
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy
