"""Graphs torch's DEFAULT ONNX exporter (`torch.onnx.export(..., dynamo=True)`, which needs
onnxscript) writes for `nn.LSTM` import into models that compute what the torch module computes.

What torch 2.13 writes (opset 20, no ONNX functions, plain ops): one ONNX LSTM node per layer,
initial states as Slices of h0/c0 (or an Expand of zeros), each layer's Y (T, D, B, H) turned
into (T, B, D·H) by Transpose [0, 2, 1, 3] and a Reshape — to a constant [T, B, D·H] for static
shapes, or, for a dynamic batch, to a shape computed from the Y's own Shape (Slice, Mul,
Concat), or to [T, −1, D·H] (allowzero=1) — h_n/c_n as a Concat of the layers' states, a
Linear head as MatMul + Add. The sequence length stays static: torch specialises it; where the
input still declares it dynamic but a Reshape holds the fixed length, the graph is refused.
Each configuration is exported once per module (the exporter takes seconds)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
import pytest

from conftest import TorchLSTMWithHead
from numpy_lstm.io.errors import FileFormatError
from numpy_lstm.io.onnx import import_onnx
from numpy_lstm.nn.models import SequenceModel

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")  # torch's default exporter needs it (in the test extra)

I, H, T, B = 3, 4, 5, 2


def Net(head: bool, **options: object) -> TorchLSTMWithHead:
    return TorchLSTMWithHead(I, H, head, **options)


# name: (LSTM options, head, with h0/c0, dynamic batch) — as small as covers what torch writes:
# constant Reshapes (static), Expand-of-zeros states and [T, -1, D·H] (allowzero=1), computed
# Reshapes (Shape/Slice/Mul/Concat) between layers, Slices of h0/c0, Concat of states, batch_first
# Transposes, the MatMul + Add head.
CONFIGS: dict[str, tuple[dict[str, object], bool, bool, bool]] = {
    "plain static": ({}, False, False, False),
    "plain dynamic head": ({}, True, False, True),
    "2 layers bidirectional dynamic h0 head": (
        {"num_layers": 2, "bidirectional": True},
        True,
        True,
        True,
    ),
    "2 layers batch_first bidirectional dynamic h0": (
        {"num_layers": 2, "batch_first": True, "bidirectional": True},
        False,
        True,
        True,
    ),
    "batch_first static h0 head": ({"batch_first": True}, True, True, False),
}


def inputs(options: dict[str, object], with_state: bool, batch: int = B, steps: int = T) -> tuple:
    D = 2 if options.get("bidirectional") else 1
    rows = D * int(options.get("num_layers", 1))  # type: ignore[call-overload]
    x = torch.randn((batch, steps, I) if options.get("batch_first") else (steps, batch, I))
    return (x, *((torch.randn(rows, batch, H), torch.randn(rows, batch, H)) if with_state else ()))


def export(net: torch.nn.Module, args: tuple, dynamic_shapes: object = None) -> onnx.ModelProto:
    names = ["x", "h0", "c0"][: len(args)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            args,
            input_names=names,
            output_names=["y", "h_n", "c_n"],
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    return program.model_proto


@functools.cache
def exported(name: str) -> tuple[torch.nn.Module, onnx.ModelProto]:
    options, head, with_state, dynamic = CONFIGS[name]
    torch.manual_seed(0)
    net = Net(head, **options).eval()
    args = inputs(options, with_state)
    shapes = None
    if dynamic:
        batch = torch.export.Dim("batch")
        shapes = {"x": {0 if options.get("batch_first") else 1: batch}}
        if with_state:
            shapes |= {"h0": {1: batch}, "c0": {1: batch}}
    return net, export(net, args, shapes)


def batch_dim(proto: onnx.ModelProto, batch_first: bool) -> onnx.TensorShapeProto.Dimension:
    return proto.graph.input[0].type.tensor_type.shape.dim[0 if batch_first else 1]


@pytest.mark.parametrize("verify", [True, False], ids=["verified", "unverified"])
@pytest.mark.parametrize("name", CONFIGS)
def test_dynamo_exported_lstm_imports_exactly(name: str, verify: bool) -> None:
    options, head, with_state, dynamic = CONFIGS[name]
    net, proto = exported(name)
    # What torch wrote: plain ops (no ONNX functions), one LSTM node per layer.
    assert not proto.functions
    assert sum(n.op_type == "LSTM" for n in proto.graph.node) == options.get("num_layers", 1)
    assert batch_dim(proto, bool(options.get("batch_first"))).HasField("dim_param") == dynamic
    # verify=False: nothing runs the graph; the glue alone is interpreted.
    model = import_onnx(proto, verify=verify)
    assert isinstance(model, SequenceModel) == head
    sizes = [(B, T), (3, T)] if dynamic else [(B, T)]  # the batch is the dynamic axis
    sizes.append((4, 7))  # and the model, unlike the graph, runs at any length
    torch.manual_seed(1)
    for batch, steps in sizes:
        args = inputs(options, with_state, batch, steps)
        with torch.no_grad():
            expected = [t.numpy() for t in net(*args)]
        state = tuple(a.numpy() for a in args[1:]) or None
        ours, (h_n, c_n) = model(args[0].numpy(), state)
        for got, want, what in zip(
            (ours, h_n, c_n), expected, ("output", "h_n", "c_n"), strict=True
        ):
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{what} at {batch, steps}")


def test_dynamo_graph_with_a_specialised_sequence_length_is_refused() -> None:
    # torch specialises the sequence length even when asked for it dynamic: its Reshapes hold
    # [5, -1, 8]. Usually x then declares T = 5 too (imported above), but the first export in a
    # process with a Dim per input (x: {0: Dim("t"), 1: Dim("b")}) leaves x declared (t, b, I) —
    # a graph that computes something else (or fails) at any other length, while onnxruntime
    # agrees with us at the probe's T = 5. The same graph, built here from a specialised one
    # by declaring T symbolic as that export does: refused, naming the Reshape.
    _, original = exported("2 layers bidirectional dynamic h0 head")
    proto = onnx.ModelProto()
    proto.CopyFrom(original)
    steps = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert steps.dim_value == T
    steps.dim_param = "t"
    for verify in (True, False):
        with pytest.raises(FileFormatError, match=r"Reshape node .*dim 5 of shape \[5, -1, 8\].*T"):
            import_onnx(proto, verify=verify)


def test_dynamo_graph_with_ops_on_the_values_is_refused() -> None:
    # Mul is accepted only as shape arithmetic (the dynamic batch's D·H); on the LSTM's output
    # it is refused by name — with or without running the graph.
    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(I, H)

        def forward(self, x):  # type: ignore[no-untyped-def]
            y, (h, c) = self.lstm(x)
            return y * 2.0, h, c

    proto = export(Scaled().eval(), (torch.randn(T, B, I),), {"x": {1: torch.export.Dim("b")}})
    for verify in (True, False):
        with pytest.raises(FileFormatError, match=r"Mul node .*shape arithmetic only"):
            import_onnx(proto, verify=verify)


def test_dynamo_graph_computed_shapes_are_interpreted_not_trusted() -> None:
    # The Reshape between the layers takes its shape from Concat(T, B, D·H) of the Y's own
    # Shape; with T and B swapped the next layer would read a different sequence — refused
    # without running the graph, naming the Reshape.
    _, original = exported("2 layers bidirectional dynamic h0 head")
    proto = onnx.ModelProto()
    proto.CopyFrom(original)
    lstm_1 = [n for n in proto.graph.node if n.op_type == "LSTM"][1]
    reshape = next(n for n in proto.graph.node if lstm_1.input[0] in n.output)
    concat = next(n for n in proto.graph.node if reshape.input[1] in n.output)
    assert reshape.op_type == "Reshape" and concat.op_type == "Concat"
    first, second = concat.input[0], concat.input[1]
    concat.input[0], concat.input[1] = second, first
    with pytest.raises(FileFormatError, match=r"Reshape node .*dim \('B',\) of shape"):
        import_onnx(proto, verify=False)
