"""Exact interpretation of the glue around ONNX LSTM nodes: how each op rearranges the axes of
an LSTM output (Y, Y_h, Y_c, the head on Y), and which rows of a graph input an initial state is.

A tensor computed from LSTM outputs is described by its kind ("Y", "Y_h", "Y_c", "head"), the
layers it comes from (a Concat of the layers' Y_h lists them in order) and its axes, each a
tuple of atoms merged row-major: T, B (symbolic), D, H, O (the head's width; known sizes).
Identity, Transpose, Squeeze, Unsqueeze, Reshape, Concat (of states, along their direction
axis) and the head's MatMul and Add are interpreted; any other op on the way raises a ValueError
naming it. A Reshape's target shape is a constant (dims of 0, −1 last, or sizes the known atoms
fill exactly — T and B are known only where the graph declares x static) or is computed from
the axes of an LSTM output by shape arithmetic (Shape, Slice, Concat, Mul, Reshape, Cast,
Identity: what torch's dynamo exporter writes for a dynamic batch): each computed dim is then a
product of atoms, which must be the next atoms of the input in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .graph import Walk

Axes = tuple[tuple[str, ...], ...]
Dim = int | tuple[str, ...]  # a dim of a shape value: a constant, or a product of atoms
SHAPE_OPS = {"Shape", "Slice", "Concat", "Mul", "Reshape", "Cast", "Identity"}


class Uninterpreted(ValueError):
    """An op on the way from an LSTM output that this module does not interpret."""


@dataclass(frozen=True)
class Arranged:
    kind: str
    layers: tuple[int, ...]
    axes: Axes


class Arrangements:
    """`of(name)`: the Arranged value of a tensor computed from LSTM outputs."""

    def __init__(self, walk: Walk, sizes: dict[str, int], layout: int, head: list[str]) -> None:
        self.walk, self.sizes, self.head = walk, sizes, head  # head: MatMul output (, Add output)
        self.native_y: Axes = (
            (("B",), ("T",), ("D",), ("H",)) if layout else (("T",), ("D",), ("B",), ("H",))
        )
        self.native_state: Axes = (("B",), ("D",), ("H",)) if layout else (("D",), ("B",), ("H",))
        self._memo: dict[str, Arranged] = {}

    def canonical(self, axes: Axes) -> Axes:
        """Drop atoms of size 1 from merged axes (an axis of size 1 stays, as ("1",))."""
        return tuple(tuple(a for a in axis if self.sizes.get(a) != 1) or ("1",) for axis in axes)

    def size(self, axis: tuple[str, ...]) -> int | None:
        sizes = [self.sizes.get(a) for a in axis]
        return None if None in sizes else math.prod(s for s in sizes if s is not None)

    def of(self, name: str) -> Arranged:
        if name not in self._memo:
            value = self._of(name)
            self._memo[name] = Arranged(value.kind, value.layers, self.canonical(value.axes))
        return self._memo[name]

    def _of(self, name: str) -> Arranged:
        node = self.walk.producers.get(name)
        if node is None:
            raise ValueError(f"tensor {name!r}: not computed from an LSTM node")
        op = node.op_type
        if op == "LSTM":
            layer = next(k for k, n in enumerate(self.walk.lstm_nodes) if n is node)
            slot = list(node.output).index(name)
            kind = ("Y", "Y_h", "Y_c")[slot]
            return Arranged(kind, (layer,), self.native_y if slot == 0 else self.native_state)
        if name in self.head:
            return self._head(node)
        where = f"{op} node {node.name!r} (making {name!r})"
        if op == "Identity":
            return self.of(node.input[0])
        if op == "Concat":
            return self._concat(node, where)
        if op not in ("Transpose", "Squeeze", "Unsqueeze", "Reshape"):
            raise Uninterpreted(
                f"{where}: not one of the ops the importer interprets exactly between LSTM "
                f"outputs and the graph's outputs (Identity, Transpose, Squeeze, Unsqueeze, "
                f"Reshape, Concat, the head's MatMul/Add)"
            )
        value = self.of(node.input[0])
        axes = list(value.axes)
        if op == "Transpose":
            perm = _attribute(node, "perm", list(reversed(range(len(axes)))))
            if sorted(perm) != list(range(len(axes))):
                raise ValueError(f"{where}: perm {perm} for {len(axes)} axes")
            return Arranged(value.kind, value.layers, tuple(axes[p] for p in perm))
        if op in ("Squeeze", "Unsqueeze"):
            given = self._ints(node, 1, "axes", where)
            if not given:  # Squeeze of every size-1 axis: T or B would go when they are 1
                raise ValueError(f"{where}: no axes given")
            rank = len(axes) + (len(given) if op == "Unsqueeze" else 0)
            chosen = sorted({a % rank for a in given} if rank else set())
            if len(chosen) != len(given):
                raise ValueError(f"{where}: axes {given} for rank {rank}")
            for a in reversed(chosen) if op == "Squeeze" else chosen:
                if op == "Squeeze" and self.size(axes[a]) != 1:
                    raise ValueError(f"{where}: squeezes axis {a} {axes[a]}, not of size 1")
                if op == "Squeeze":
                    del axes[a]
                else:
                    axes.insert(a, ("1",))
            return Arranged(value.kind, value.layers, tuple(axes))
        return Arranged(value.kind, value.layers, self._reshape(node, value.axes, where))

    def _ints(self, node: onnx.NodeProto, index: int, attribute: str, where: str) -> list[int]:
        """An int list given as constant input `index` (opset ≥ 13) or as attribute."""
        if index < len(node.input) and node.input[index]:
            value = self.walk.constants.get(node.input[index])
            if value is None:
                raise ValueError(f"{where}: {attribute} is not a constant")
            return [int(v) for v in value.ravel()]
        return [int(v) for v in _attribute(node, attribute, [])]

    def shape_value(self, name: str, where: str) -> list[Dim]:
        """The value of a 1-D int tensor computed by shape arithmetic from constants and the
        Shape of LSTM outputs: each element a constant or a product of atoms."""
        if name in self.walk.constants:
            array = self.walk.constants[name]
            if array.ndim != 1 or array.dtype.kind not in "iu":
                raise ValueError(f"{where}: shape {name!r} is not a 1-D int constant")
            return [int(v) for v in array]
        node = self.walk.producers.get(name)
        if node is None or node.op_type not in SHAPE_OPS:
            op = "a graph input" if node is None else f"a {node.op_type} node"
            raise ValueError(
                f"{where}: shape {name!r} is made by {op}, not by shape arithmetic the importer "
                f"interprets ({sorted(SHAPE_OPS)}) on constants and LSTM outputs"
            )
        at = f"{node.op_type} node {node.name!r} (making {name!r})"
        if node.op_type == "Shape":
            shaped = self.of(node.input[0]).axes
            start, end = _attribute(node, "start", 0), _attribute(node, "end", len(shaped))
            return [self._dim(axis) for axis in shaped[start:end]]
        if node.op_type in ("Identity", "Cast"):
            if node.op_type == "Cast" and _attribute(node, "to", 0) != onnx.TensorProto.INT64:
                raise ValueError(f"{at}: a Cast of a shape to another type than int64")
            return self.shape_value(node.input[0], where)
        if node.op_type == "Concat":
            return [d for part in node.input for d in self.shape_value(part, where)]
        value = self.shape_value(node.input[0], where)
        if node.op_type == "Reshape":  # of a shape vector: only to itself, 1-D
            target = self.shape_value(node.input[1], where)
            if target not in ([-1], [len(value)]):
                raise ValueError(f"{at}: reshapes a shape vector to {target}")
            return value
        if node.op_type == "Slice":
            bounds = [self.walk.constants.get(n) if n else None for n in list(node.input)[1:5]]
            bounds += [None] * (4 - len(bounds))
            starts, ends, along, steps = (None if b is None else b.ravel().tolist() for b in bounds)
            if (
                starts is None
                or ends is None
                or len(starts) != 1
                or (along or [0]) not in ([0], [-1])
                or (steps or [1]) != [1]
            ):
                raise ValueError(f"{at}: not a constant slice (step 1) of a shape vector")
            return value[int(starts[0]) : int(ends[0])]  # ONNX clamps as Python does, step 1
        other = self.shape_value(node.input[1], where)  # Mul, elementwise (broadcasting one)
        if len(value) != len(other) and 1 not in (len(value), len(other)):
            raise ValueError(f"{at}: multiplies shapes of lengths {len(value)}, {len(other)}")
        count = max(len(value), len(other))
        value, other = value * (count // len(value)), other * (count // len(other))
        return [self._product(a, b, at) for a, b in zip(value, other, strict=True)]

    def _dim(self, axis: tuple[str, ...]) -> Dim:
        """An axis as a dim: its size where known, else its atoms of size other than 1."""
        size = self.size(axis)
        return size if size is not None else tuple(a for a in axis if self.sizes.get(a) != 1)

    def _product(self, a: Dim, b: Dim, where: str) -> Dim:
        if isinstance(a, int) and isinstance(b, int):
            return a * b
        if a == 1 or b == 1:
            return b if a == 1 else a
        if isinstance(a, int) or isinstance(b, int):
            raise ValueError(f"{where}: multiplies symbolic dims {a} by a constant {b}")
        return (*a, *b)

    def _reshape(self, node: onnx.NodeProto, axes: Axes, where: str) -> Axes:
        """Each dim of the target shape merges the next atoms of the input in order: dims
        before a −1 from the front, dims after it from the back, the −1 what lies between."""
        if len(node.input) < 2 or not node.input[1]:
            raise ValueError(f"{where}: no shape")
        shape = self.shape_value(node.input[1], where)
        if _attribute(node, "allowzero", 0) and 0 in shape:  # 0 then means an empty axis
            raise ValueError(f"{where}: allowzero=1 with a 0 in shape {shape}")
        if shape.count(-1) > 1:
            raise ValueError(f"{where}: shape {shape} has more than one -1")
        atoms = [a for axis in axes for a in axis]
        boundaries = np.cumsum([0, *(len(axis) for axis in axes)]).tolist()
        split = shape.index(-1) if -1 in shape else len(shape)
        out: list[tuple[str, ...]] = []
        used = 0
        for i, dim in enumerate(shape[:split]):
            if dim == 0 and i < len(axes) and used == boundaries[i]:  # 0: the input's dim i
                out.append(axes[i])
                used += len(axes[i])
                continue
            take = self._match(atoms, used, dim, f"{where}: dim {dim} of shape {shape}", axes)
            out.append(tuple(atoms[used:take]) or ("1",))
            used = take
        tail: list[tuple[str, ...]] = []
        reverse, end = atoms[::-1], len(atoms)
        for dim in reversed(shape[split + 1 :]):
            start = len(atoms) - end
            take = self._match(reverse, start, dim, f"{where}: dim {dim} of shape {shape}", axes)
            tail.insert(0, tuple(reversed(reverse[start:take])) or ("1",))
            end = len(atoms) - take
        if end < used:
            raise ValueError(f"{where}: shape {shape} from axes {axes}")
        if -1 in shape:
            out.append(tuple(atoms[used:end]) or ("1",))
        elif self.size(tuple(atoms[used:end])) != 1:
            raise ValueError(f"{where}: shape {shape} leaves axes {atoms[used:end]} of {axes}")
        return (*out, *tail)

    def _match(self, atoms: list[str], used: int, dim: Dim, where: str, axes: Axes) -> int:
        """The end of the run of atoms from `used` that make `dim`: a computed dim exactly
        its atoms (sizes of 1 aside), a constant one atoms of known sizes with that product."""
        take = used
        if isinstance(dim, tuple):
            want, found = sorted(dim), list[str]()
            while take < len(atoms) and sorted(found) != want:
                if self.sizes.get(atoms[take]) != 1:
                    found.append(atoms[take])
                take += 1
            if sorted(found) != want:
                raise ValueError(f"{where} from axes {axes}")
            return take
        if dim < 1:
            raise ValueError(f"{where} from axes {axes}")
        while take < len(atoms) and self.size(tuple(atoms[used:take])) != dim:
            take += 1
        if self.size(tuple(atoms[used:take])) != dim:
            symbolic = sorted({a for a in atoms if a not in self.sizes})
            hint = (
                f" (a fixed size where {'/'.join(symbolic)} is not static in the graph's "
                f"input: the exporter specialised it; export with static shapes, or with those "
                f"dims dynamic throughout)"
            )
            raise ValueError(f"{where} from axes {axes}" + (hint if symbolic else ""))
        return take

    def _concat(self, node: onnx.NodeProto, where: str) -> Arranged:
        parts = [self.of(name) for name in node.input]
        axis = _attribute(node, "axis", 0) % len(parts[0].axes)
        first = parts[0]
        same = all(
            p.kind == first.kind and p.axes == first.axes and p.kind in ("Y_h", "Y_c")
            for p in parts
        )
        if (
            not same
            or first.axes[axis] not in (("D",), ("1",))
            or axis != (1 if first.axes[0] == ("B",) else 0)
        ):
            raise ValueError(f"{where}: only states concatenated along their direction axis")
        return Arranged(first.kind, tuple(k for p in parts for k in p.layers), first.axes)

    def _head(self, node: onnx.NodeProto) -> Arranged:
        if node.op_type == "Add":
            return self.of(self.head[0])
        value = self.of(node.input[0])
        last = len(self.walk.lstm_nodes) - 1
        if (
            value.kind != "Y"
            or value.layers != (last,)
            or value.axes[-1] != self.canonical((("D", "H"),))[0]
        ):
            raise ValueError(
                f"MatMul {node.name!r}: its input is {value}, not the last node's output "
                f"with its directions' features in the last axis"
            )
        return Arranged("head", (), (*value.axes[:-1], ("O",)))


def _attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    found = [onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name]
    return found[0] if found else default


def state_rows(walk: Walk, name: str, rows: int) -> tuple[str, int, int]:
    """(graph input, start, stop): the rows [start, stop) along axis 0 of one graph input that
    tensor `name` is, through Identity, Slice (constant, axis 0, step 1) and Split (axis 0)."""
    if name in walk.inputs:
        return name, 0, rows
    node = walk.producers.get(name)
    op = "?" if node is None else node.op_type
    where = f"{op} node {'' if node is None else node.name!r} (making {name!r})"
    if node is not None and op == "Identity":
        return state_rows(walk, node.input[0], rows)
    if node is not None and op == "Slice":
        source, start, stop = state_rows(walk, node.input[0], rows)
        values = [walk.constants.get(n) if n else None for n in (list(node.input) + [""] * 5)[1:5]]
        starts, ends, axes, steps = (None if v is None else v.ravel().tolist() for v in values)
        if (
            starts is None
            or ends is None
            or len(starts) != 1
            or (axes or [0]) != [0]
            or (steps or [1]) != [1]
        ):
            raise ValueError(f"{where}: not a constant slice of rows (axis 0, step 1)")
        length = stop - start
        lo, hi = (min(max(v + length if v < 0 else v, 0), length) for v in (starts[0], ends[0]))
        return source, start + lo, start + max(lo, hi)
    if node is not None and op == "Split":
        source, start, stop = state_rows(walk, node.input[0], rows)
        if _attribute(node, "axis", 0) != 0:
            raise ValueError(f"{where}: not along axis 0")
        split = walk.constants.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        outputs = len(node.output)
        sizes = (
            split.ravel().tolist()
            if split is not None
            else _attribute(node, "split", None) or [-(-(stop - start) // outputs)] * outputs
        )
        index = list(node.output).index(name)
        offset = start + sum(sizes[:index])
        return source, offset, min(offset + sizes[index], stop)
    raise ValueError(f"{where}: an initial state must be rows of a graph input (Slice, Split)")


def check_arrangements(
    walk: Walk,
    arrangements: Arrangements,
    batch_first: bool,
    layout: int,
    outputs: bool,
) -> None:
    """Raise a ValueError unless each later LSTM node's X is the node below's output as
    (T, B, D·H) ((B, T, D·H) for layout=1) and, if `outputs`, each graph output is one of the
    model's, arranged as the model returns it (a bare node's Y or states also as ONNX has them)."""
    canonical = arrangements.canonical
    x_axes = (("B",), ("T",), ("D", "H")) if layout else (("T",), ("B",), ("D", "H"))
    for k, node in enumerate(walk.lstm_nodes[1:], 1):
        value = arrangements.of(node.input[0])
        if value != Arranged("Y", (k - 1,), canonical(x_axes)):
            raise ValueError(f"LSTM node {k}: X is {value}, not the Y of node {k - 1} as {x_axes}")
    if not outputs:
        return
    last = len(walk.lstm_nodes) - 1
    steps: tuple[tuple[str, ...], ...] = (("B",), ("T",)) if batch_first else (("T",), ("B",))
    for output in walk.graph.output:
        value = arrangements.of(output.name)
        if value.kind == "head":
            accepted = [canonical((*steps, ("O",)))]
        elif value.kind == "Y" and value.layers == (last,) and not arrangements.head:
            accepted = [canonical((*steps, ("D", "H"))), arrangements.native_y]
        elif value.kind in ("Y_h", "Y_c"):
            accepted = [canonical((("D",), ("B",), ("H",))), canonical((("B",), ("D",), ("H",)))]
        else:
            accepted = []
        if value.axes not in [canonical(a) for a in accepted]:
            raise ValueError(
                f"graph output {output.name!r}: {value.kind} of layers {value.layers} arranged "
                f"as {value.axes}; the model returns {accepted or 'no such output'}"
            )
