"""ONNX ⇄ numpy-lstm (numpy_lstm.io.onnx): exported graphs pass onnx.checker and compute
in ONNX Runtime what we compute — dynamic batch and sequence axes, sequence_lens, stacks,
bidirectional, heads, peepholes, CIFG, clip, activations; graphs built here from the ONNX spec
import into models that agree with onnxruntime and onnx.reference; the rest is refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import numpy_lstm
from numpy_lstm.io.onnx import export_onnx, import_onnx
from numpy_lstm.nn.models import SequenceModel

I, H = 3, 4
ATOL = 1e-5
SHAPES = [(6, 2), (9, 5), (1, 1)]  # (T, B): none is special; the graph has symbolic axes


def run(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def varied(model: numpy_lstm.Module, rng: np.random.Generator) -> None:
    """Larger, shifted weights push gates into the ranges where clip and kinks matter."""
    model.load_state_dict(
        {
            k: (2 * v + 0.2 * rng.standard_normal(v.shape)).astype(v.dtype)
            for k, v in model.state_dict().items()
        }
    )


EXPORT_CASES = [
    ({}, False),
    ({"num_layers": 2, "bidirectional": True}, True),
    ({"num_layers": 3, "batch_first": True, "dropout": 0.2}, True),
    ({"bidirectional": True, "mask_output": "carry"}, True),
    ({"peephole": True, "coupled_input_forget": True, "clip": 1.5}, False),
    ({"bidirectional": True, "activations": ("hard_sigmoid", "relu", "softsign")}, False),
    ({"bias": False, "batch_first": True, "mask_output": "carry"}, True),
]


@pytest.mark.parametrize("with_head", [False, True], ids=["lstm", "head"])
@pytest.mark.parametrize(
    "config, with_state", EXPORT_CASES, ids=["+".join(c) or "plain" for c, _ in EXPORT_CASES]
)
def test_exported_graph_matches_onnxruntime(
    rng: np.random.Generator, config: dict, with_state: bool, with_head: bool
) -> None:
    lstm = numpy_lstm.LSTM(I, H, rng=rng, **config)
    D, L = lstm.num_directions, lstm.num_layers
    model = SequenceModel(lstm, numpy_lstm.Linear(D * H, 2, rng=rng)) if with_head else lstm
    varied(model, rng)
    model.eval()
    proto = export_onnx(model, with_lengths=True, initial_state=with_state)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 14
    assert [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim][:2] == (
        ["batch", "sequence"] if lstm.batch_first else ["sequence", "batch"]
    )
    for steps, batch in SHAPES:
        shape = (batch, steps, I) if lstm.batch_first else (steps, batch, I)
        x = (1.5 * rng.standard_normal(shape)).astype(np.float32)
        lengths = rng.integers(1, steps + 1, batch).astype(np.int32)
        feeds = {"x": x, "lengths": lengths}
        hx = None
        if with_state:
            hx = tuple(rng.standard_normal((D * L, batch, H)).astype(np.float32) for _ in "hc")
            feeds |= {"h0": hx[0], "c0": hx[1]}
        y, h_n, c_n = run(proto, feeds)
        ours, (our_h, our_c) = model(x, hx, lengths=lengths)
        np.testing.assert_allclose(ours, y, atol=ATOL, err_msg=f"output at {shape}")
        np.testing.assert_allclose(our_h, h_n, atol=ATOL, err_msg=f"h_n at {shape}")
        np.testing.assert_allclose(our_c, c_n, atol=ATOL, err_msg=f"c_n at {shape}")


def test_export_without_lengths_and_round_trip(rng: np.random.Generator, tmp_path) -> None:
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, bidirectional=True, peephole=True, rng=rng)
    model = SequenceModel(lstm, numpy_lstm.Linear(2 * H, 2, rng=rng)).eval()
    export_onnx(model, tmp_path / "m.onnx")
    assert [i.name for i in onnx.load(tmp_path / "m.onnx").graph.input] == ["x"]
    x = rng.standard_normal((5, 3, I)).astype(np.float32)
    y, h_n, _ = run(onnx.load(tmp_path / "m.onnx"), {"x": x})
    np.testing.assert_allclose(model(x)[0], y, atol=ATOL)
    np.testing.assert_allclose(model(x)[1][0], h_n, atol=ATOL)
    back = import_onnx(tmp_path / "m.onnx")  # B = [Wb, Rb] keeps both biases: exact
    assert back.config() == model.config()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], value, err_msg=name)


def test_lstm_cell_exports_as_one_step(rng: np.random.Generator) -> None:
    cell = numpy_lstm.LSTMCell(I, H, rng=rng)
    x = rng.standard_normal((4, I)).astype(np.float32)
    h0, c0 = (rng.standard_normal((4, H)).astype(np.float32) for _ in range(2))
    h1, c1 = run(export_onnx(cell), {"x": x, "h0": h0, "c0": c0})
    ours = cell(x, (h0, c0))
    np.testing.assert_allclose(ours[0], h1, atol=ATOL)
    np.testing.assert_allclose(ours[1], c1, atol=ATOL)


# -- import: graphs written here from the ONNX spec, not by our exporter -----------------------
def spec_graph(
    rng: np.random.Generator, D: int = 1, peephole: bool = False, **attributes: object
) -> onnx.ModelProto:
    """One ONNX LSTM node with random W, R, B (and P), gates in ONNX's own order (i, o, f, c):
    what any other tool would hand us. X (T, B, I) with symbolic T and B."""
    weights = {
        "W": rng.uniform(-1.5, 1.5, (D, 4 * H, I)),
        "R": rng.uniform(-1, 1, (D, 4 * H, H)),
        "B": rng.uniform(-1, 1, (D, 8 * H)),
    }
    if peephole:
        weights["P"] = rng.uniform(-1, 1, (D, 3 * H))
    inputs = ["X", "W", "R", "B", "", "", "", "P"] if peephole else ["X", "W", "R", "B"]
    direction = "bidirectional" if D == 2 else "forward"
    node = helper.make_node(
        "LSTM", inputs, ["Y", "Y_h", "Y_c"], hidden_size=H, direction=direction, **attributes
    )
    graph = helper.make_graph(
        [node],
        "spec",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
            for name, shape in (("Y", ["T", D, "B", H]), ("Y_h", [D, "B", H]), ("Y_c", [D, "B", H]))
        ],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


IMPORT_CASES = {
    "peephole": {"peephole": True},
    "bidirectional peephole": {"peephole": True, "D": 2},
    "clip": {"clip": 0.6},
    "clip+peephole+cifg": {"clip": 1.1, "peephole": True, "input_forget": 1, "D": 2},
    "activations": {"activations": ["HardSigmoid", "Relu", "Softsign"]},
}


@pytest.mark.parametrize("case", IMPORT_CASES)
def test_imported_graph_matches_onnxruntime(rng: np.random.Generator, case: str) -> None:
    proto = spec_graph(rng, **IMPORT_CASES[case])
    model = import_onnx(proto)
    x = (2 * rng.standard_normal((7, 3, I))).astype(np.float32)
    Y, Y_h, Y_c = run(proto, {"X": x})
    out, (h_n, c_n) = model(x)
    T, D, B, _ = Y.shape
    np.testing.assert_allclose(out, Y.transpose(0, 2, 1, 3).reshape(T, B, D * H), atol=ATOL)
    np.testing.assert_allclose(h_n, Y_h, atol=ATOL)
    np.testing.assert_allclose(c_n, Y_c, atol=ATOL)


@pytest.mark.parametrize("D", [1, 2])
def test_imported_peepholes_match_the_onnx_reference_evaluator(
    rng: np.random.Generator, D: int
) -> None:
    # onnx.reference's LSTM implements peepholes but ignores clip, input_forget, activations
    # and sequence_lens (onnx 1.23), so it is the oracle for plain and peephole graphs only.
    proto = spec_graph(rng, D=D, peephole=True)
    x = rng.standard_normal((6, 2, I)).astype(np.float32)
    Y, Y_h, Y_c = ReferenceEvaluator(proto).run(None, {"X": x})
    out, (h_n, c_n) = import_onnx(proto)(x)
    np.testing.assert_allclose(out, Y.transpose(0, 2, 1, 3).reshape(6, 2, D * H), atol=ATOL)
    np.testing.assert_allclose(h_n, Y_h, atol=ATOL)
    np.testing.assert_allclose(c_n, Y_c, atol=ATOL)


@pytest.mark.parametrize(
    "attributes, message",
    [
        ({"activations": ["Sigmoid", "LeakyRelu", "Tanh"]}, r"activations: unsupported value"),
        (
            {"activations": ["HardSigmoid", "Tanh", "Tanh"], "activation_alpha": [0.3]},
            r"activation_alpha: unsupported value \[0.3",
        ),
        ({"layout": 2}, r"layout: unsupported value 2"),
        ({"direction": "sideways"}, r"direction: unsupported value 'sideways'"),
    ],
)
def test_unsupported_onnx_attributes_are_refused(
    rng: np.random.Generator, attributes: dict, message: str
) -> None:
    proto = spec_graph(rng)
    node = proto.graph.node[0]
    for key in attributes:
        [node.attribute.remove(a) for a in list(node.attribute) if a.name == key]
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attributes.items())
    with pytest.raises(ValueError, match=message):
        import_onnx(proto)


def test_unknown_ops_and_wrong_glue_are_refused(rng: np.random.Generator) -> None:
    proto = spec_graph(rng)
    proto.graph.node.append(helper.make_node("Relu", ["Y"], ["Z"]))
    with pytest.raises(ValueError, match=r"ops: unsupported value \['Relu'\]"):
        import_onnx(proto)
    # Glue between the layers is interpreted exactly: glue that reverses time between them is
    # refused by name, whether or not the graph is then run …
    proto = export_onnx(numpy_lstm.LSTM(I, H, num_layers=2, rng=rng))
    index, second = [(k, n) for k, n in enumerate(proto.graph.node) if n.op_type == "LSTM"][1]
    slice_inputs = {"starts": [-1], "ends": [-(2**62)], "axes": [0], "steps": [-1]}
    proto.graph.initializer.extend(
        numpy_helper.from_array(np.array(v, np.int64), k) for k, v in slice_inputs.items()
    )
    node = helper.make_node("Slice", [second.input[0], *slice_inputs], ["reversed"])
    proto.graph.node.insert(index, node)
    second.input[0] = "reversed"
    for verify in (True, False):
        with pytest.raises(ValueError, match=r"Slice node .*not one of the ops the importer"):
            import_onnx(proto, verify=verify)
    # … and so is glue that swaps the time and batch axes.
    proto = export_onnx(numpy_lstm.LSTM(I, H, num_layers=2, rng=rng))
    transpose = next(n for n in proto.graph.node if n.op_type == "Transpose")
    transpose.attribute[0].CopyFrom(helper.make_attribute("perm", [2, 0, 1, 3]))
    with pytest.raises(ValueError, match=r"LSTM node 1: X is .*not the Y of node 0"):
        import_onnx(proto, verify=False)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"layer_norm": True}, ValueError, r"ONNX cannot represent .* layer_norm=True"),
        ({"zoneout": 0.2}, ValueError, r"ONNX cannot represent .* zoneout"),
        ({"proj_size": 2}, ValueError, r"ONNX cannot represent .* proj_size=2"),
        ({"dtype": np.float64}, TypeError, r"ONNX Runtime's LSTM runs float32 only"),
    ],
)
def test_export_refuses_what_onnx_lacks(options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        export_onnx(numpy_lstm.LSTM(I, H, **options))
