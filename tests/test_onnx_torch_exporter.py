"""Graphs torch's own ONNX exporter writes for `nn.LSTM` import into models that compute what
the torch module computes. Here `dynamo=False`, the TorchScript exporter (the default, dynamo
exporter's graphs: test_onnx_torch_dynamo_exporter.py) — static shapes (initial zeros built
with Expand) and dynamic axes (ConstantOfShape), h0/c0 as graph inputs (Slice per layer),
batch_first (Transpose), a Linear head (MatMul, Add(bias, ·))."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest

from conftest import TorchLSTMWithHead
from numpy_lstm.io.onnx import import_onnx
from numpy_lstm.nn.models import SequenceModel

torch = pytest.importorskip("torch")

I, H, T, B = 3, 4, 5, 2


def Net(head: bool, **options: object) -> TorchLSTMWithHead:
    return TorchLSTMWithHead(I, H, head, **options)


def exported(net: Net, args: tuple, dynamic: bool) -> onnx.ModelProto:
    names = ["x", "h0", "c0"][: len(args)]
    axes = {"x": {0: "a", 1: "b"}} if dynamic else None
    if dynamic and len(args) > 1:
        axes |= {"h0": {1: "batch"}, "c0": {1: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            args,
            buffer,
            dynamo=False,
            input_names=names,
            output_names=["y", "h_n", "c_n"],
            dynamic_axes=axes,
        )
    return onnx.load_from_string(buffer.getvalue())


CASES = {
    "plain": {},
    "2 layers bidirectional": {"num_layers": 2, "bidirectional": True},
    "batch_first": {"batch_first": True},
    "3 layers batch_first bidirectional": {
        "num_layers": 3,
        "batch_first": True,
        "bidirectional": True,
    },
}


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "h0"])
@pytest.mark.parametrize("head", [False, True], ids=["lstm", "head"])
@pytest.mark.parametrize("case", CASES)
def test_torch_exported_lstm_imports_exactly(
    case: str, head: bool, with_state: bool, dynamic: bool
) -> None:
    torch.manual_seed(0)
    options = CASES[case]
    net = Net(head, **options).eval()
    D, L = 2 if options.get("bidirectional") else 1, options.get("num_layers", 1)
    shape = (B, T, I) if options.get("batch_first") else (T, B, I)
    x = torch.randn(shape)
    state = (torch.randn(D * L, B, H), torch.randn(D * L, B, H)) if with_state else ()
    proto = exported(net, (x, *state), dynamic)
    model = import_onnx(proto)  # verify=True: also checked against onnxruntime
    assert isinstance(model, SequenceModel) == head
    with torch.no_grad():
        expected = [t.numpy() for t in net(x, *state)]
    # The same call torch makes; dynamic graphs also at other sizes.
    ours, (h_n, c_n) = model(x.numpy(), tuple(s.numpy() for s in state) or None)
    for got, want, what in zip((ours, h_n, c_n), expected, ("output", "h_n", "c_n"), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=what)
    if dynamic:
        longer = torch.randn((3, 7, I) if options.get("batch_first") else (7, 3, I))
        more = (torch.randn(D * L, 3, H), torch.randn(D * L, 3, H)) if with_state else ()
        with torch.no_grad():
            want = net(longer, *more)[0].numpy()
        got = model(longer.numpy(), tuple(s.numpy() for s in more) or None)[0]
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_torch_export_glue_the_importer_cannot_interpret_is_refused() -> None:
    # A torch model whose graph adds an op on the state: refused by name, not imported wrong.
    class Doubled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(I, H)

        def forward(self, x):  # type: ignore[no-untyped-def]
            y, (h, c) = self.lstm(x)
            return torch.relu(y), h, c

    proto = exported(Doubled().eval(), (torch.randn(T, B, I),), dynamic=True)
    with pytest.raises(ValueError, match=r"ops: unsupported value \['Relu'\]"):
        import_onnx(proto)


def test_torch_graph_glue_is_interpreted_not_trusted() -> None:
    # With verify=False nothing runs the graph: a torch graph whose second layer starts from
    # the first layer's rows of h0, or whose layers are joined by a wrong Transpose, must still
    # be refused — naming what is wrong — rather than imported as a different model.
    torch.manual_seed(0)
    state = (torch.randn(4, B, H), torch.randn(4, B, H))
    net = Net(False, num_layers=2, bidirectional=True).eval()
    proto = exported(net, (torch.randn(T, B, I), *state), dynamic=True)
    assert import_onnx(proto, verify=False) is not None
    lstm_1 = [n for n in proto.graph.node if n.op_type == "LSTM"][1]
    slice_1 = next(n for n in proto.graph.node if lstm_1.input[5] in n.output)
    zero = onnx.numpy_helper.from_array(np.array([0], np.int64), slice_1.input[1])
    for tensor in proto.graph.initializer:  # starts: an initializer or a Constant node's value
        if tensor.name == zero.name:
            tensor.CopyFrom(zero)
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.output[0] == zero.name:
            node.attribute[0].t.CopyFrom(zero)
    with pytest.raises(ValueError, match=r"LSTM node 1 .*initial_h .*rows of 'h0'"):
        import_onnx(proto, verify=False)

    proto = exported(net, (torch.randn(T, B, I), *state), dynamic=True)
    transpose = next(n for n in proto.graph.node if n.op_type == "Transpose")
    transpose.attribute[0].CopyFrom(onnx.helper.make_attribute("perm", [0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"LSTM node 1: X is .*not the Y of node 0"):
        import_onnx(proto, verify=False)
