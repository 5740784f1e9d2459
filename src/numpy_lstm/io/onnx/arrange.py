"""Exact interpretation of the glue around ONNX LSTM nodes: how each op rearranges the axes of
an LSTM output (Y, Y_h, Y_c, the head on Y), and which rows of a graph input an initial state is.

A tensor computed from LSTM outputs is described by its kind ("Y", "Y_h", "Y_c", "head"), the
layers it comes from (a Concat of the layers' Y_h lists them in order) and its axes, each a
tuple of atoms merged row-major: T, B (symbolic), D, H, O (the head's width; known sizes).
Identity, Transpose, Squeeze, Unsqueeze, Reshape (constant shapes of 0, −1 last, or sizes the
known atoms fill exactly), Concat (of states, along their direction axis) and the head's MatMul
and Add are interpreted; any other op on the way raises a ValueError naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .graph import Walk

Axes = tuple[tuple[str, ...], ...]


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

    def _reshape(self, node: onnx.NodeProto, axes: Axes, where: str) -> Axes:
        if _attribute(node, "allowzero", 0):
            raise ValueError(f"{where}: allowzero=1")
        shape = self._ints(node, 1, "shape", where)
        atoms = [a for axis in axes for a in axis]
        boundaries = np.cumsum([0, *(len(axis) for axis in axes)]).tolist()
        out: list[tuple[str, ...]] = []
        used = 0
        for i, dim in enumerate(shape):
            if dim == 0 and i < len(axes) and used == boundaries[i]:
                out.append(axes[i])
                used += len(axes[i])
            elif dim == -1 and i == len(shape) - 1:
                out.append(tuple(atoms[used:]) or ("1",))
                used = len(atoms)
            elif dim > 0:
                take = used
                while take < len(atoms) and self.size(tuple(atoms[used:take])) != dim:
                    take += 1
                merged = tuple(atoms[used:take])
                if self.size(merged) != dim:
                    raise ValueError(f"{where}: dim {dim} of shape {shape} from axes {axes}")
                out.append(merged or ("1",))
                used = take
            else:
                raise ValueError(f"{where}: shape {shape} from axes {axes}")
        if used != len(atoms) and self.size(tuple(atoms[used:])) != 1:
            raise ValueError(f"{where}: shape {shape} leaves axes {atoms[used:]} of {axes}")
        return tuple(out)

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
