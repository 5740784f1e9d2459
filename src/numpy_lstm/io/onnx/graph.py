"""Walking an ONNX graph for :func:`~numpy_lstm.io.onnx.import_onnx`: its constants (each
checked against the bytes that hold it before it becomes an array), who produces each tensor,
which LSTM outputs a tensor is computed from, and which tensors are zeros whatever the input.

Every function raises a ValueError naming what it refuses; the importer turns it into a
FileFormatError naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ..representable import unsupported

LSTM_OUTPUTS = ("Y", "Y_h", "Y_c")
# Ops whose output holds only elements of their first input (rearranged, selected, broadcast or
# converted): zeros in, zeros out — whatever their other inputs (shapes, indices, axes) are.
ZERO_PRESERVING = {
    "Expand", "Tile", "Reshape", "Unsqueeze", "Squeeze", "Identity", "Cast", "Transpose",
    "Slice", "Gather", "Split", "Flatten",
}  # fmt: skip
SHAPE_ARITHMETIC = {"Shape", "Slice", "Concat", "Mul", "Reshape", "Cast", "Identity", "Gather"}
MAX_PROBE_ELEMENTS = 2**22  # the largest shape-constant a glue op may declare (see check_sizes)


def tensor_array(tensor: onnx.TensorProto) -> np.ndarray | None:
    """A numeric tensor's value, or None for a non-numeric one. Refuses external data (it
    would read other files) and declared dims that the stored data does not fill — checked
    before numpy_helper builds anything, so a tensor declaring 10⁹ elements in a few bytes
    allocates nothing."""
    where = f"tensor {tensor.name!r}"
    if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
        raise unsupported(f"{where}: data location", "external", "data stored in the file")
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: unknown data type {tensor.data_type}") from None
    if dtype.kind not in "biuf" or tensor.data_type == onnx.TensorProto.BFLOAT16:
        return None
    if any(d < 0 for d in tensor.dims):
        raise ValueError(f"{where}: negative dims {list(tensor.dims)}")
    count = math.prod(tensor.dims)
    if tensor.HasField("raw_data"):
        stored, needed = len(tensor.raw_data), count * dtype.itemsize
    else:
        fields = (
            tensor.float_data, tensor.double_data, tensor.int32_data, tensor.int64_data,
            tensor.uint64_data,
        )  # fmt: skip
        stored, needed = max(len(f) for f in fields), count
    if stored != needed:
        raise ValueError(
            f"{where}: declares dims {list(tensor.dims)} ({needed} stored values/bytes) but "
            f"holds {stored}"
        )
    return numpy_helper.to_array(tensor)


def read_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The graph's initializers and Constant nodes, by name."""
    constants = {}
    for tensor in graph.initializer:
        value = tensor_array(tensor)
        if value is not None:
            constants[tensor.name] = value
    for node in graph.node:
        if node.op_type != "Constant" or len(node.attribute) != 1 or len(node.output) != 1:
            continue
        attribute = node.attribute[0]
        value = None
        if attribute.name == "value":
            value = tensor_array(attribute.t)
        elif attribute.name in ("value_float", "value_int", "value_floats", "value_ints"):
            value = np.array(onnx.helper.get_attribute_value(attribute))
        if value is not None:
            constants[node.output[0]] = value
    return constants


@dataclass
class Walk:
    """A graph's producers and its LSTM nodes (in graph order, which onnx.checker has made
    topological), with memoised questions about where tensors come from."""

    graph: onnx.GraphProto
    constants: dict[str, np.ndarray]
    lstm_nodes: list[onnx.NodeProto]
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    inputs: set[str] = field(default_factory=set)  # graph inputs that are not initializers
    head_output: str | None = None
    _sources: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.graph.node:
            for name in node.output:
                if name:
                    self.producers[name] = node
        initializers = {t.name for t in self.graph.initializer}
        self.inputs = {i.name for i in self.graph.input} - initializers

    def sources(self, name: str) -> list[tuple[str, int]]:
        """The LSTM outputs (role "Y", "Y_h" or "Y_c", layer) and the head ("head", -1) that
        `name` is computed from, in the order the graph's ops take them (so a Concat of the
        layers' Y_h lists them layer by layer)."""
        if name in self._sources:
            return self._sources[name]
        found: list[tuple[str, int]] = []
        node = self.producers.get(name)
        if name == self.head_output:
            found = [("head", -1)]
        elif node is not None and node.op_type == "LSTM":
            layer = next(k for k, n in enumerate(self.lstm_nodes) if n is node)
            found = [(LSTM_OUTPUTS[list(node.output).index(name)], layer)]
        elif node is not None:
            for source in node.input:
                found += [s for s in self.sources(source) if s not in found] if source else []
        self._sources[name] = found
        return found

    def reached_inputs(self, name: str, through: set[str] | None = None) -> set[str] | None:
        """The graph inputs `name` is computed from; None if some op on the way is not in
        `through` (when given) or the way passes an LSTM node."""
        if name in self.inputs:
            return {name}
        node = self.producers.get(name)
        if node is None:
            return set()
        if node.op_type == "LSTM" or (through is not None and node.op_type not in through):
            return None
        reached: set[str] = set()
        # Only the data input when `through` is given: the rest are indices, axes, shapes.
        for source in node.input[:1] if through is not None else node.input:
            more = self.reached_inputs(source, through) if source else set()
            if more is None:
                return None
            reached |= more
        return reached

    def is_shape_arithmetic(self, name: str) -> bool:
        """Whether `name` is computed only from constants and Shape outputs (the value of a
        Shape depends on its input's dims only), through the ops of shape arithmetic."""
        if name in self.constants:
            return True
        node = self.producers.get(name)
        if node is None or node.op_type not in SHAPE_ARITHMETIC:
            return False
        return node.op_type == "Shape" or all(
            self.is_shape_arithmetic(source) for source in node.input if source
        )

    def is_zeros(self, name: str) -> bool:
        """Whether `name` is all zeros whatever the graph's inputs are: a zero constant, a
        ConstantOfShape of zero, or a zero-preserving op (Expand, Reshape, …) of zeros."""
        if name in self.constants:
            return not np.any(self.constants[name])
        node = self.producers.get(name)
        if node is None:
            return False
        if node.op_type == "ConstantOfShape":
            values = [tensor_array(a.t) for a in node.attribute if a.name == "value"]
            return not values or (values[0] is not None and not np.any(values[0]))  # absent: 0
        if node.op_type == "Concat":
            return all(self.is_zeros(source) for source in node.input)
        return node.op_type in ZERO_PRESERVING and bool(node.input) and self.is_zeros(node.input[0])

    def check_sizes(self) -> None:
        """Refuse shape constants that would make a glue op allocate far more than the file
        holds when the graph runs (verify runs it in onnxruntime): ConstantOfShape, Expand and
        Tile shapes, Range bounds."""
        for node in self.graph.node:
            if node.op_type in ("ConstantOfShape", "Expand", "Tile") and len(node.input) >= 1:
                shape = self.constants.get(node.input[-1])
                if (
                    shape is not None
                    and shape.size
                    and np.prod(np.abs(shape), dtype=float) > (MAX_PROBE_ELEMENTS)
                ):
                    raise unsupported(
                        f"{node.op_type} node {node.name!r}: shape", shape.tolist(), "a smaller one"
                    )
            if node.op_type == "Range" and len(node.input) == 3:
                bounds = [self.constants.get(n) for n in node.input]
                if all(b is not None and b.size == 1 for b in bounds):
                    start, limit, delta = (float(b.ravel()[0]) for b in bounds)  # type: ignore[union-attr]
                    if delta == 0 or abs((limit - start) / delta) > MAX_PROBE_ELEMENTS:
                        raise unsupported(
                            f"Range node {node.name!r}: bounds",
                            (start, limit, delta),
                            "fewer steps",
                        )
