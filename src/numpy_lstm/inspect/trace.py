"""Gate traces: every step's Filter, Eraser, Writer and Presenter, recorded, summarised, narrated.

    tr = numpy_lstm.trace(lstm, x)               # forward, recording every layer and direction
    tr.gate("f")                                 # (T, B, H): forget gate f, the share kept
    1 - tr.gate("f")                             # what the Eraser erases
    tr.backward(d_out)                           # adds ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ through time
    tr.input_grad                                # (T, B, I): ∂L/∂x_t, what each input drove
    print(tr.explain(step=12, unit=7))           # plain-language narration from the numbers

Recording happens only when asked (`trace(...)` runs a forward with `record=True`); an ordinary
forward keeps nothing extra. Arrays are in time order (the reverse direction is flipped back)
and steps masked out by `lengths`/`mask` are marked in `valid`.

Summaries:
- saturation (Karpathy, Johnson & Fei-Fei 2015): per unit, the fraction of steps a gate spends
  below 0.1 ("closed") and above 0.9 ("open");
- memory span: per unit, the median number of steps until the product of the forget gate's
  values (the shares the Eraser leaves) has fallen below 1/e — how long a written value survives;
- written i·g and erased (1 − f)·c_prev per step and unit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

import numpy as np
import numpy.typing as npt

from ..core.cell import GATE_ROLES, GATES
from ..nn.layers import GradStateLike, StateLike
from ..nn.lstm import LSTM

# The narration of one step and unit. The wording lives here only: Trace.explain fills it in, and
# the explorer page receives it (see narration_template) and fills in the same numbers formatted
# the same way. Fields are plain {name}s: step and unit (integers), and the NARRATION_FIELDS.
NARRATION = (
    "step {step}, unit {unit}: the Eraser wiped {f} of the memory, "
    "the Filter let {i} of the Writer's candidate ({g}) in, "
    "the Presenter showed {o}. "
    "Memory {c_before} → {c}, output {h}."
)
PADDING_NARRATION = "step {step}: padding — the memory is carried through unchanged."
NumberFormat = Literal["percent", "erased", "signed"]
# field → how its number is written: the gates i, f, g, o, the memory before and after the step,
# and the output h = o·act(c) (before any projection). The forget gate f is the share of the
# memory *kept*; the Eraser's number is what it erases, so f is written as 1 − f.
NARRATION_FIELDS: dict[str, NumberFormat] = {
    "f": "erased",
    "i": "percent",
    "g": "signed",
    "o": "percent",
    "c_before": "signed",
    "c": "signed",
    "h": "signed",
}
NUMBER_FORMATS: dict[NumberFormat, Callable[[float], str]] = {
    "percent": lambda x: f"{100 * x:.0f}%",  # 0.973 → "97%"
    # 1 − x in whole percent, as 100 − (x in whole percent): with the gate's own percent the
    # two add up to 100%, and a page holding only the gate's percent writes the same digits.
    "erased": lambda x: f"{100 - round(100 * x)}%",  # 0.973 → "3%"
    "signed": lambda x: f"{x:+.2f}",  # 0.5 → "+0.50", −0.004 → "-0.00"
}


class NarrationTemplate(TypedDict):
    """The narration as data, for a page that fills it in itself."""

    sentence: str  # NARRATION
    padding: str  # PADDING_NARRATION
    fields: dict[str, NumberFormat]  # NARRATION_FIELDS


def narration_template() -> NarrationTemplate:
    """The sentences Trace.explain fills in, and how each field's number is formatted."""
    return {"sentence": NARRATION, "padding": PADDING_NARRATION, "fields": dict(NARRATION_FIELDS)}


def narrate(step: int, unit: int, values: Mapping[str, float] | None) -> str:
    """NARRATION with each field's value formatted by its kind; `values` None: a padding step."""
    if values is None:
        return PADDING_NARRATION.format(step=step)
    numbers = {
        field: NUMBER_FORMATS[kind](values[field]) for field, kind in NARRATION_FIELDS.items()
    }
    return NARRATION.format(step=step, unit=unit, **numbers)


@dataclass(frozen=True)
class LayerTrace:
    """One layer-direction, every array in time order (the reverse direction flipped back).

    gates, preactivations: (T, B, 4H) blocks i, f, g, o; c_before / c: (T, B, H) the memory a
    step started from / ended with; act_c: what the Presenter multiplied; h: (T, B, H_out);
    dh, dc: the full gradients w.r.t. each step's h and memory, after :meth:`Trace.backward`.
    """

    gates: np.ndarray
    preactivations: np.ndarray
    c_before: np.ndarray
    c: np.ndarray
    act_c: np.ndarray
    h: np.ndarray
    dh: np.ndarray | None = None
    dc: np.ndarray | None = None


class Trace:
    """The record of one forward pass (and optionally its backward) of an :class:`LSTM`."""

    def __init__(
        self,
        lstm: LSTM,
        layers: dict[tuple[int, int], LayerTrace],
        valid: np.ndarray,
        forward: object = None,
    ):
        self.lstm = lstm
        self.layers = layers
        self.valid = valid  # (T, B) bool
        # the LSTM's record of this forward, which backward() runs from: the LSTM itself keeps
        # only its latest forward, which may be another one by then
        self._forward = forward
        # (T, B, I) ∂L/∂x_t after backward(): time-major like every other array of the trace,
        # whatever layout x was passed in (the batch axis kept for unbatched x)
        self.input_grad: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return self.valid.shape[0]

    def layer(self, layer: int = 0, direction: int = 0) -> LayerTrace:
        if (layer, direction) not in self.layers:
            raise ValueError(
                f"layer, direction: no ({layer}, {direction}) in this trace; it has "
                f"{sorted(self.layers)}"
            )
        return self.layers[(layer, direction)]

    def gate(self, name: str, layer: int = 0, direction: int = 0, pre: bool = False) -> np.ndarray:
        """(T, B, H) values (or pre-activations) of gate `name`: i, f, g, o or their roles."""
        index = _gate_index(name)
        record = self.layer(layer, direction)
        source = record.preactivations if pre else record.gates
        H = self.lstm.hidden_size
        return source[..., index * H : (index + 1) * H]

    # -- gradients through time ---------------------------------------------------------------
    def backward(
        self,
        d_out: npt.ArrayLike | None = None,
        d_state: GradStateLike | None = None,
    ) -> Trace:
        """Run BPTT from upstream gradients and add per-step ∂L/∂h_t and ∂L/∂c_t to every layer,
        and ∂L/∂x_t as `input_grad` (T, B, I) (the layer's own `grads` are not touched).
        Returns self."""
        latest = self.lstm._cache
        if self._forward is not None:
            self.lstm._cache = self._forward  # BPTT through *this* trace's forward
        try:
            dx, _, grads = self.lstm.backward_pass(d_out, d_state, record=True)
            # backward_pass answers in the caller's layout; the trace keeps time-major (T, B, ·)
            self.input_grad = self.lstm._cache.layout.to_time_major(dx)
        finally:
            self.lstm._cache = latest
        D = self.lstm.num_directions
        for index, g in enumerate(grads):
            key = (index // D, index % D)
            record = self.layers[key]
            self.layers[key] = LayerTrace(**{**record.__dict__, "dh": g.dh, "dc": g.dc})
        return self

    def gradient_norms(
        self, layer: int = 0, direction: int = 0, batch: int = 0
    ) -> dict[str, np.ndarray]:
        """‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ over the units, per step t (T,): the error signal's reach."""
        record = self.layer(layer, direction)
        if record.dh is None or record.dc is None:
            raise ValueError("gradient_norms: call trace.backward(...) first")
        return {
            "h": np.linalg.norm(record.dh[:, batch], axis=-1),
            "c": np.linalg.norm(record.dc[:, batch], axis=-1),
        }

    # -- summaries ----------------------------------------------------------------------------
    def saturation(
        self, gate: str, layer: int = 0, direction: int = 0, low: float = 0.1, high: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray]:
        """(closed, open): per unit (H,), the fraction of valid steps with value < low / > high."""
        values = self.gate(gate, layer, direction)[self.valid]  # (N, H)
        return (values < low).mean(axis=0), (values > high).mean(axis=0)

    def memory_span(self, layer: int = 0, direction: int = 0) -> np.ndarray:
        """Per unit (H,): the median over start steps of how many steps pass until the product
        of the forget gate's values (the shares kept) falls below 1/e. Starts whose value never
        decays that far within the sequence count as the steps remaining (a lower bound)."""
        f = self.gate("f", layer, direction)  # (T, B, H)
        if direction == 1:
            f = f[::-1]  # the reverse direction's memory flows backwards in time
        log_keep = np.log(np.maximum(f, np.finfo(f.dtype).tiny)).astype(np.float64)
        cumulative = np.concatenate([np.zeros_like(log_keep[:1]), np.cumsum(log_keep, 0)])
        T, B, H = f.shape
        spans = np.empty((T, B, H), dtype=np.float64)
        for b in range(B):
            for unit in range(H):
                path = -cumulative[:, b, unit]  # non-decreasing
                # first k ≥ 1 with path[t + k] − path[t] > 1
                ends = np.searchsorted(path, path[:-1] + 1.0, side="right")
                spans[:, b, unit] = np.minimum(ends, T) - np.arange(T)
        return np.median(spans.reshape(-1, H), axis=0)

    def written(self, layer: int = 0, direction: int = 0) -> np.ndarray:
        """(T, B, H) what each step wrote into the memory: i·g (the Filter times the Writer)."""
        return self.gate("i", layer, direction) * self.gate("g", layer, direction)

    def erased(self, layer: int = 0, direction: int = 0) -> np.ndarray:
        """(T, B, H) what each step erased: (1 − f)·c_prev."""
        record = self.layer(layer, direction)
        return (1 - self.gate("f", layer, direction)) * record.c_before

    # -- narration ----------------------------------------------------------------------------
    def explain(
        self, step: int, unit: int, layer: int = 0, direction: int = 0, batch: int = 0
    ) -> str:
        """:data:`NARRATION` for one step and unit, in the gate vocabulary, every number from
        the trace (:data:`PADDING_NARRATION` at a step masked out)."""
        if not 0 <= step < self.steps:
            raise ValueError(f"step: expected 0 ≤ step < {self.steps}, got {step}")
        if not 0 <= unit < self.lstm.hidden_size:
            raise ValueError(f"unit: expected 0 ≤ unit < {self.lstm.hidden_size}, got {unit}")
        if not self.valid[step, batch]:
            return narrate(step, unit, None)
        record = self.layer(layer, direction)
        values = {n: float(self.gate(n, layer, direction)[step, batch, unit]) for n in GATES}
        values["c_before"] = float(record.c_before[step, batch, unit])
        values["c"] = float(record.c[step, batch, unit])
        values["h"] = values["o"] * float(record.act_c[step, batch, unit])
        return narrate(step, unit, values)


def _gate_index(name: str) -> int:
    roles = {role.lower(): gate for gate, role in GATE_ROLES.items()}
    gate = roles.get(name.lower(), name)
    if gate not in GATES:
        raise ValueError(
            f"gate: expected one of {GATES} or {sorted(GATE_ROLES.values())}, got {name!r}"
        )
    return GATES.index(gate)


def trace(
    lstm: LSTM,
    x: npt.ArrayLike,
    hx: StateLike | None = None,
    *,
    lengths: npt.ArrayLike | None = None,
    mask: npt.ArrayLike | None = None,
) -> Trace:
    """Run `lstm` forward on x (any layout it accepts) recording every gate of every layer and
    direction; returns a :class:`Trace` (time order, batch axis kept even for unbatched x)."""
    if not isinstance(lstm, LSTM):
        raise TypeError(f"lstm: expected a numpy_lstm.LSTM, got {type(lstm).__name__}")
    lstm.forward(x, hx, lengths=lengths, mask=mask, record=True)
    call = lstm._cache
    D = lstm.num_directions
    layers = {}
    for index, cache in enumerate(call.caches):
        reverse = cache.reverse

        def in_time(a: np.ndarray, reverse: bool = reverse) -> np.ndarray:
            return a[::-1].copy() if reverse else a

        layers[(index // D, index % D)] = LayerTrace(
            gates=in_time(np.stack([s.gates for s in cache.steps])),
            preactivations=in_time(np.stack([s.preactivations for s in cache.steps])),
            c_before=in_time(cache.c[:-1]),
            c=in_time(cache.c[1:]),
            act_c=in_time(np.stack([s.act_c for s in cache.steps])),
            h=in_time(cache.h[1:]),
        )
    first = call.caches[0]
    valid = np.ones(first.x.shape[:2], dtype=bool) if first.mask is None else first.mask.copy()
    return Trace(lstm, layers, valid, call)
