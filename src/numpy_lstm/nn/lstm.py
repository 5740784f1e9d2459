"""`LSTM`: torch.nn.LSTM's full surface — stacks, bidirectional, projection, inter-layer dropout —
plus variable lengths and arbitrary masks, over the pure functions of :mod:`numpy_lstm.sequence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.cell import LSTMWeights
from ..core.sequence import SequenceGrads
from ..core.validation import as_float_array, check_finite, checked_input, resolve_rng, valid_steps
from ..core.variants import PLAIN_ACTIVATIONS, CellVariant
from ..kernels.select import sequence_backward, sequence_forward
from .init import check_scheme
from .layers import RecurrentBase, State, parameter_shapes

MASK_OUTPUTS = ("zero", "carry")


@dataclass(frozen=True)
class _Layout:
    """How the user's arrays relate to the time-major (T, B, ·) arrays of the math."""

    batched: bool
    batch_first: bool

    def to_time_major(self, a: np.ndarray) -> np.ndarray:
        if not self.batched:
            return a[:, None]
        return a.transpose(1, 0, 2) if self.batch_first else a

    def from_time_major(self, a: np.ndarray) -> np.ndarray:
        if not self.batched:
            return a[:, 0]
        return a.transpose(1, 0, 2) if self.batch_first else a

    def state_to_batch(self, s: np.ndarray) -> np.ndarray:
        """(D·L, B, ·) or unbatched (D·L, ·) → (D·L, B, ·)."""
        return s if self.batched else s[:, None]

    def state_from_batch(self, s: np.ndarray) -> np.ndarray:
        return s if self.batched else s[:, 0]


@dataclass(frozen=True)
class _ForwardCall:
    """One forward pass: a cache per layer-direction, the dropout masks between layers."""

    caches: list[Any]  # one per layer-direction, from the kernel that ran it
    dropout_masks: list[np.ndarray | None]
    layout: _Layout
    out_shape: tuple[int, ...]
    h_shape: tuple[int, ...]
    c_shape: tuple[int, ...]


class LSTM(RecurrentBase):
    """A multi-layer LSTM, like `torch.nn.LSTM`, same arguments, names, shapes and results.

    Parameters per layer k and direction (suffix "" or "_reverse"): `weight_ih_l{k}` (4H, I_k),
    `weight_hh_l{k}` (4H, H_out), `bias_ih_l{k}`, `bias_hh_l{k}` (4H,), and with proj_size P > 0
    `weight_hr_l{k}` (P, H). H_out = P or H; I_0 = input_size, I_k = D·H_out; D = 2 if
    bidirectional. Gate order i, f, g, o (Filter, Eraser, Writer, Presenter).

    `out, (h_n, c_n) = lstm(x, (h0, c0), lengths=None, mask=None)`:
      x (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I);
      h0, h_n (D·num_layers, B, H_out); c0, c_n (D·num_layers, B, H) (no B axis if unbatched);
      out (T, B, D·H_out) / (B, T, D·H_out) / (T, D·H_out): the last layer's h, directions
      concatenated;
      lengths (B,) ints in [1, T] or mask (B, T) bool: masked steps carry the state unchanged and
      output zeros (mask_output="zero") or the carried h ("carry"); h_n, c_n are each sequence's
      state after its last valid step; the reverse direction runs over the valid steps only.
    `dx, (dh0, dc0) = lstm.backward(d_out, (dh_n, dc_n))`: gradients shaped like the forward's
      inputs; any upstream part may be None. Parameter gradients accumulate in `lstm.grads`.

    Extras beyond torch: `init` ("torch", "keras" or a callable(name, shape, rng)),
    `forget_bias` (sets the forget gate's total bias), `mask_output`, and the variants of
    :mod:`numpy_lstm.variants` — `peephole` (adds `weight_peephole_l{k}` (3, H), rows i, f, o),
    `coupled_input_forget`, `clip`, `activations` (gate, cell, hidden), `layer_norm` (adds
    `ln_{weight,bias}_{ih,hh,c}_l{k}`) — plus `recurrent_dropout` (one mask per sequence on h
    before W_hh, training only) and `zoneout` (p, or (p_h, p_c): the probability that a unit
    keeps its previous h / c at a step; the expectation when evaluating).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
        init: Any = "torch",
        forget_bias: float | None = None,
        mask_output: str = "zero",
        peephole: bool = False,
        coupled_input_forget: bool = False,
        clip: float | None = None,
        activations: tuple[str, str, str] = PLAIN_ACTIVATIONS,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, dtype)
        self.num_layers = _checked_int("num_layers", num_layers, minimum=1)
        self.proj_size = _checked_int("proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size: must be smaller than hidden_size ({self.hidden_size}), "
                f"got {self.proj_size}"
            )
        self.dropout = _checked_probability("dropout", dropout)
        self.recurrent_dropout = _checked_probability("recurrent_dropout", recurrent_dropout)
        zoneout_pair = zoneout if isinstance(zoneout, (tuple, list)) else (zoneout, zoneout)
        if len(zoneout_pair) != 2:
            raise ValueError(f"zoneout: expected p or (p_h, p_c), got {zoneout!r}")
        self.zoneout = tuple(_checked_probability("zoneout", p) for p in zoneout_pair)
        if forget_bias is not None and coupled_input_forget:
            raise ValueError(
                "forget_bias, coupled_input_forget: unsupported combination — with a coupled "
                "input-forget gate (f = 1 − i) the forget bias is unused"
            )
        self.variant = CellVariant(
            coupled_input_forget=bool(coupled_input_forget),
            clip=None if clip is None else float(clip),
            activations=tuple(activations),
            layer_norm=bool(layer_norm),
        )
        self.peephole = bool(peephole)
        if mask_output not in MASK_OUTPUTS:
            raise ValueError(f"mask_output: expected one of {MASK_OUTPUTS}, got {mask_output!r}")
        if forget_bias is not None and not bias:
            raise ValueError("forget_bias: needs bias=True (there is no bias to set)")
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.mask_output = mask_output
        self.num_directions = 2 if self.bidirectional else 1
        self.output_size = self.proj_size or self.hidden_size
        self.rng = resolve_rng(rng)
        scheme = check_scheme(init)
        self._names: list[LSTMWeights] = []  # layer-major, then direction: index k·D + d
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else self.num_directions * self.output_size
            for suffix in ("", "_reverse")[: self.num_directions]:
                shapes = parameter_shapes(
                    layer_input,
                    self.hidden_size,
                    bias=self.bias,
                    proj_size=self.proj_size,
                    peephole=self.peephole,
                    layer_norm=self.variant.layer_norm,
                )
                names = self._register_weights(f"_l{k}{suffix}", shapes, self.rng, scheme)
                self._names.append(names)
                if forget_bias is not None:
                    H = self.hidden_size
                    self._params[names.bias_ih][H : 2 * H] = forget_bias
                    self._params[names.bias_hh][H : 2 * H] = 0

    def extra_repr(self) -> str:
        options = {
            "num_layers": (self.num_layers, 1),
            "batch_first": (self.batch_first, False),
            "dropout": (self.dropout, 0.0),
            "bidirectional": (self.bidirectional, False),
            "proj_size": (self.proj_size, 0),
            "mask_output": (self.mask_output, "zero"),
            "peephole": (self.peephole, False),
            "coupled_input_forget": (self.variant.coupled_input_forget, False),
            "clip": (self.variant.clip, None),
            "activations": (self.variant.activations, PLAIN_ACTIVATIONS),
            "layer_norm": (self.variant.layer_norm, False),
            "recurrent_dropout": (self.recurrent_dropout, 0.0),
            "zoneout": (self.zoneout, (0.0, 0.0)),
        }
        shown = "".join(f", {k}={v!r}" for k, (v, default) in options.items() if v != default)
        return super().extra_repr() + shown

    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able) that rebuild this architecture:
        `LSTM(**lstm.config())` has the same parameter names and shapes (not values)."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "proj_size": self.proj_size,
            "dtype": self.dtype.name,
            "mask_output": self.mask_output,
            "peephole": self.peephole,
            "coupled_input_forget": self.variant.coupled_input_forget,
            "clip": self.variant.clip,
            "activations": list(self.variant.activations),
            "layer_norm": self.variant.layer_norm,
            "recurrent_dropout": self.recurrent_dropout,
            "zoneout": list(self.zoneout),
        }

    def layer_weights(self, layer: int = 0, reverse: bool = False) -> LSTMWeights:
        """The live parameters of one layer-direction, as the pure functions take them."""
        if not 0 <= layer < self.num_layers or (reverse and not self.bidirectional):
            raise ValueError(
                f"layer, reverse: no such layer-direction ({layer}, reverse={reverse}) in {self!r}"
            )
        return self._weights(self._names[layer * self.num_directions + int(reverse)])

    def state_after(self, steps: int) -> State:
        """(h, c) of every layer after the first `steps` steps of the last forward pass, shaped
        like h_n and c_n — the state to carry when truncated BPTT advances by `steps`."""
        call = self._require_cache()
        T = call.out_shape[1 if call.layout.batched and self.batch_first else 0]
        if self.bidirectional or not 1 <= steps <= T:
            raise ValueError(
                f"steps: expected 1 ≤ steps ≤ {T} on a unidirectional LSTM, got {steps} "
                f"(bidirectional={self.bidirectional})"
            )
        h = np.stack([cache.h[steps] for cache in call.caches])
        c = np.stack([cache.c[steps] for cache in call.caches])
        return call.layout.state_from_batch(h), call.layout.state_from_batch(c)

    # -- forward ------------------------------------------------------------------------------
    def forward(
        self,
        x: Any,
        hx: Any = None,
        *,
        lengths: Any = None,
        mask: Any = None,
        record: bool = False,
    ) -> tuple[np.ndarray, State]:
        """See the class docstring. `record` keeps every step's pre-activations for a trace
        (:func:`numpy_lstm.trace`); it forces the reference kernel."""
        x = as_float_array("x", x, self.dtype)
        layout_name = "(B, T, I)" if self.batch_first else "(T, B, I)"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape {layout_name} or unbatched (T, I) with I = {self.input_size}, "
                f"got {x.shape}"
            )
        layout = _Layout(batched=x.ndim == 3, batch_first=self.batch_first)
        x_tm = layout.to_time_major(x)
        T, B = x_tm.shape[:2]
        if T == 0:
            raise ValueError(f"x: the sequence is empty (T = 0), shape {x.shape}")
        valid = valid_steps(lengths, mask, B if layout.batched else None, T)  # (B, T) or None
        valid_tm = None if valid is None else np.ascontiguousarray(valid.T)  # (T, B)
        check_finite(
            "x", x, None if valid_tm is None else layout.from_time_major(valid_tm[..., None])
        )
        DL = self.num_directions * self.num_layers
        batch = (B,) if layout.batched else ()
        h_shape, c_shape = (DL, *batch, self.output_size), (DL, *batch, self.hidden_size)
        h0, c0 = (layout.state_to_batch(s) for s in self._state(hx, h_shape, c_shape))

        caches, dropout_masks, h_n, c_n = [], [], [], []
        layer_input = x_tm
        for k in range(self.num_layers):
            outputs = []
            for d in range(self.num_directions):
                index = k * self.num_directions + d
                out, h, c, cache = sequence_forward(
                    layer_input,
                    h0[index],
                    c0[index],
                    self._weights(self._names[index]),
                    mask=valid_tm,
                    reverse=d == 1,
                    carry_output=self.mask_output == "carry",
                    variant=self.variant,
                    recurrent_keep=self._recurrent_mask((B, self.output_size)),
                    zoneout=self._zoneout_weights(T, B),
                    record=record,
                )
                outputs.append(out)
                caches.append(cache)
                h_n.append(h)
                c_n.append(c)
            layer_input = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
            keep = self._dropout_mask(layer_input.shape) if k < self.num_layers - 1 else None
            if keep is not None:
                layer_input = layer_input * keep
            dropout_masks.append(keep)
        out = layout.from_time_major(layer_input)
        self._cache = _ForwardCall(caches, dropout_masks, layout, out.shape, h_shape, c_shape)
        return out, (layout.state_from_batch(np.stack(h_n)), layout.state_from_batch(np.stack(c_n)))

    def _dropout_mask(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Inverted dropout between layers: keep with probability 1 − p, scale by 1/(1 − p)."""
        return self._inverted_dropout(self.dropout, shape)

    def _recurrent_mask(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Variational dropout: one (B, H_out) mask on h before W_hh for the whole sequence."""
        return self._inverted_dropout(self.recurrent_dropout, shape)

    def _inverted_dropout(self, p: float, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self.training or p == 0:
            return None
        keep = self.rng.random(shape) >= p
        return (keep / (1 - p)).astype(self.dtype)

    def _zoneout_weights(self, T: int, B: int) -> tuple[np.ndarray, np.ndarray] | None:
        """How much of its previous h and c each unit keeps per step (T, B, ·): a Bernoulli(p)
        draw when training, p itself (the expectation) when evaluating."""
        if self.zoneout == (0.0, 0.0):
            return None
        weights = []
        for p, size in zip(self.zoneout, (self.output_size, self.hidden_size), strict=True):
            if self.training:
                weights.append((self.rng.random((T, B, size)) < p).astype(self.dtype))
            else:
                weights.append(np.full((T, B, size), p, dtype=self.dtype))
        return weights[0], weights[1]

    # -- backward -----------------------------------------------------------------------------
    def backward(self, d_out: Any = None, d_state: Any = None) -> tuple[np.ndarray, State]:
        dx, state, grads = self.backward_pass(d_out, d_state)
        for names, g in zip(self._names, grads, strict=True):
            self._accumulate_weights(names, g.dweights)
        return dx, state

    def backward_pass(
        self, d_out: Any = None, d_state: Any = None, *, record: bool = False
    ) -> tuple[np.ndarray, State, list[SequenceGrads]]:
        """BPTT through the last forward without touching `grads`: returns dx, (dh0, dc0) and
        every layer-direction's :class:`SequenceGrads` (with `record`, per-step dh and dc)."""
        call: _ForwardCall = self._require_cache()
        layout = call.layout
        if d_out is not None:
            d_out = layout.to_time_major(checked_input("d_out", d_out, self.dtype, call.out_shape))
        dh_n, dc_n = (
            None if g is None else layout.state_to_batch(g)
            for g in self._grad_state(d_state, call.h_shape, call.c_shape)
        )
        D, H_out = self.num_directions, self.output_size
        grads: list[Any] = [None] * len(call.caches)
        d_layer_output = d_out
        for k in reversed(range(self.num_layers)):
            if call.dropout_masks[k] is not None and d_layer_output is not None:
                d_layer_output = d_layer_output * call.dropout_masks[k]
            d_layer_input = None
            for d in range(D):
                index = k * D + d
                grads[index] = g = sequence_backward(
                    None
                    if d_layer_output is None
                    else d_layer_output[..., d * H_out : (d + 1) * H_out],
                    None if dh_n is None else dh_n[index],
                    None if dc_n is None else dc_n[index],
                    call.caches[index],
                    record=record,
                )
                d_layer_input = g.dx if d_layer_input is None else d_layer_input + g.dx
            d_layer_output = d_layer_input
        dx = layout.from_time_major(d_layer_output)
        dh0 = layout.state_from_batch(np.stack([g.dh0 for g in grads]))
        dc0 = layout.state_from_batch(np.stack([g.dc0 for g in grads]))
        return dx, (dh0, dc0), grads


def _checked_probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value}")
    return float(value)


def _checked_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer ≥ {minimum}, got {value!r}")
    return int(value)
