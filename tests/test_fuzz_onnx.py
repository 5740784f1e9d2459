"""Malformed .onnx files (random bytes, truncations, byte flips, sizes the bytes cannot hold)
fail with FileFormatError naming the file — never DecodeError, IndexError, KeyError or
MemoryError — and allocate nothing near what they declare. Seeded, a few hundred cases."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import numpy_lstm
from numpy_lstm.io.errors import FileFormatError
from numpy_lstm.io.onnx import export_onnx, import_onnx
from numpy_lstm.nn.models import SequenceModel


@pytest.fixture(scope="module")
def valid_bytes() -> bytes:
    lstm = numpy_lstm.LSTM(3, 4, num_layers=2, bidirectional=True, rng=0)
    model = SequenceModel(lstm, numpy_lstm.Linear(8, 2, rng=1)).eval()
    return export_onnx(model, with_lengths=True, initial_state=True).SerializeToString()


def imports_or_refuses(path: Path, data: bytes) -> None:
    """The one acceptable outcome for a damaged file: a model, or FileFormatError naming it."""
    path.write_bytes(data)
    try:
        import_onnx(path)
    except FileFormatError as err:
        assert str(path) in str(err)


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    for k in range(120):
        data = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        path = tmp_path / f"random{k}.onnx"
        path.write_bytes(data)
        with pytest.raises(FileFormatError, match=f"random{k}.onnx"):
            import_onnx(path)


def test_truncated_files_are_refused(tmp_path: Path, valid_bytes: bytes) -> None:
    rng = np.random.default_rng(8)
    for k, end in enumerate(rng.integers(0, len(valid_bytes) - 1, 100)):
        imports_or_refuses(tmp_path / f"cut{k}.onnx", valid_bytes[:end])


def test_byte_flips_import_or_are_refused(tmp_path: Path, valid_bytes: bytes) -> None:
    rng = np.random.default_rng(9)
    for k in range(150):
        data = bytearray(valid_bytes)
        for index in rng.integers(0, len(data), int(rng.integers(1, 4))):
            data[index] = int(rng.integers(0, 256))
        imports_or_refuses(tmp_path / f"flip{k}.onnx", bytes(data))


def small_graph(hidden_size: int, W: onnx.TensorProto | None = None) -> onnx.ModelProto:
    """An LSTM node declaring `hidden_size`, with weights of hidden size 2 (or W as given)."""
    rng = np.random.default_rng(0)
    W = W or numpy_helper.from_array(rng.standard_normal((1, 8, 3)).astype(np.float32), "W")
    R = numpy_helper.from_array(rng.standard_normal((1, 8, 2)).astype(np.float32), "R")
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=hidden_size)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, "B", 2])],
        [W, R],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("verify", [True, False])
def test_declared_sizes_the_bytes_cannot_hold_allocate_nothing(
    tmp_path: Path, verify: bool
) -> None:
    huge_hidden = small_graph(14_000)
    # A W declaring (1, 56000, 3) — 672 KB of floats — in a dozen bytes.
    lying = onnx.TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1, 56_000, 3])
    lying.raw_data = b"\0" * 12
    lying_tensor = small_graph(14_000, lying)
    for name, proto in (("hidden", huge_hidden), ("tensor", lying_tensor)):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(proto.SerializeToString())
        assert path.stat().st_size < 4096
        tracemalloc.start()
        try:
            with pytest.raises(
                FileFormatError, match=rf"{name}.onnx: .*(hidden_size|declare|too small)"
            ):
                import_onnx(path, verify=verify)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * 2**20, f"{name}: peak {peak} bytes"


def test_glue_declaring_huge_shapes_and_external_data_are_refused(tmp_path: Path) -> None:
    # A ConstantOfShape the graph would fill with 10¹² zeros when verify runs it.
    proto = export_onnx(numpy_lstm.LSTM(3, 4, rng=0))
    proto.graph.initializer.append(numpy_helper.from_array(np.array([10**6] * 2), "big"))
    proto.graph.node.append(helper.make_node("ConstantOfShape", ["big"], ["zeros"]))
    path = tmp_path / "big.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(FileFormatError, match=r"big.onnx: ConstantOfShape .*shape"):
        import_onnx(path)
    # Weights "stored" in another file: never read.
    proto = small_graph(2)
    proto.graph.initializer[0].data_location = TensorProto.EXTERNAL
    proto.graph.initializer[0].ClearField("raw_data")
    proto.graph.initializer[0].external_data.add(key="location", value="/etc/passwd")
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(FileFormatError, match=r"external"):
        import_onnx(path)


def test_layers_sharing_one_set_of_weights_are_refused_before_allocating(tmp_path: Path) -> None:
    # 300 LSTM nodes on the same 200 KB of weights would be a 60 MB model from a small file.
    rng = np.random.default_rng(0)
    hidden = 64
    W = numpy_helper.from_array(
        rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "W"
    )
    R = numpy_helper.from_array(
        rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "R"
    )
    nodes, x = [], "X"
    for k in range(300):
        nodes += [
            helper.make_node("LSTM", [x, "W", "R"], [f"Y{k}"], hidden_size=hidden),
            helper.make_node("Squeeze", [f"Y{k}", "axis"], [f"x{k}"]),
        ]
        x = f"x{k}"
    axis = numpy_helper.from_array(np.array([1]), "axis")
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", hidden])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["T", "B", hidden])],
        [W, R, axis],
    )
    path = tmp_path / "shared.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"shared.onnx: .*shared between nodes"):
            import_onnx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * path.stat().st_size + 8 * 2**20
