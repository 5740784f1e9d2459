"""`LSTM`: torch.nn.LSTM's full surface — stacks, bidirectional, projection, inter-layer dropout —
plus variable lengths and arbitrary masks, over the pure functions of
:mod:`numpy_lstm.core.sequence`. Its architecture is one
:class:`~numpy_lstm.core.options.LSTMConfig` (`lstm.options`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from ..core.cell import LSTMWeights
from ..core.options import LSTMConfig, MaskOutput, SequenceOptions
from ..core.sequence import SequenceGrads
from ..core.validation import as_float_array, check_finite, checked_input, resolve_rng, valid_steps
from ..core.variants import CellVariant
from ..kernels.cache import Cache
from ..kernels.select import sequence_backward_side_by_side, sequence_forward_side_by_side
from .init import Initializer, check_scheme
from .layers import (
    GradStateLike,
    RecurrentBase,
    State,
    StateLike,
    WeightNames,
    parameter_shapes,
)


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

    caches: list[Cache]  # one per layer-direction, from the kernel that ran it
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

    The arguments are those of :class:`~numpy_lstm.core.options.LSTMConfig` (kept as
    `lstm.options`) plus the init-time `rng`, `init` and `forget_bias`. Extras beyond torch:
    `init` ("torch", "keras" or a callable(name, shape, rng)), `forget_bias` (sets the forget
    gate's total bias), `mask_output`, and the variants of :mod:`numpy_lstm.core.variants` —
    `peephole` (adds `weight_peephole_l{k}` (3, H), rows i, f, o), `coupled_input_forget`,
    `clip`, `activations` (gate, cell, hidden), `layer_norm` (adds
    `ln_{weight,bias}_{ih,hh,c}_l{k}`) — plus `recurrent_dropout` (one mask per sequence on h
    before W_hh, training only) and `zoneout` (p, or (p_h, p_c): the probability that a unit
    keeps its previous h / c at a step; the expectation when evaluating).
    """

    options: LSTMConfig  # the architecture: every option but the init-time rng, init, forget_bias
    __signature__: ClassVar[inspect.Signature]  # LSTMConfig's arguments + the init-time ones

    def __init__(
        self,
        *args: Any,
        rng: np.random.Generator | int | None = None,
        init: str | Initializer = "torch",
        forget_bias: float | None = None,
        **options: Any,
    ) -> None:
        # The arguments are LSTMConfig's, positionally in torch.nn.LSTM's order (input_size,
        # hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size), the
        # rest by keyword; it checks them all.
        config = LSTMConfig(*args, **options)
        if forget_bias is not None and config.coupled_input_forget:
            raise ValueError(
                "forget_bias, coupled_input_forget: unsupported combination — with a coupled "
                "input-forget gate (f = 1 − i) the forget bias is unused"
            )
        if forget_bias is not None and not config.bias:
            raise ValueError("forget_bias: needs bias=True (there is no bias to set)")
        super().__init__(config.input_size, config.hidden_size, config.bias, config.dtype)
        self.options = config
        self.rng = resolve_rng(rng)
        scheme = check_scheme(init)
        self._names: list[WeightNames] = []  # layer-major, then direction: index k·D + d
        for k in range(config.num_layers):
            layer_input = self.input_size if k == 0 else self.num_directions * self.output_size
            for suffix in ("", "_reverse")[: self.num_directions]:
                shapes = parameter_shapes(
                    layer_input,
                    self.hidden_size,
                    bias=self.bias,
                    proj_size=config.proj_size,
                    peephole=config.peephole,
                    layer_norm=config.layer_norm,
                )
                names = self._register_weights(f"_l{k}{suffix}", shapes, self.rng, scheme)
                self._names.append(names)
                if forget_bias is not None:
                    H = self.hidden_size
                    with self.editing():
                        self._params[names["bias_ih"]][H : 2 * H] = forget_bias
                        self._params[names["bias_hh"]][H : 2 * H] = 0

    # The options as attributes, read from `options` (which is frozen: build a new LSTM to
    # change the architecture).
    @property
    def num_layers(self) -> int:
        return self.options.num_layers

    @property
    def batch_first(self) -> bool:
        return self.options.batch_first

    @property
    def dropout(self) -> float:
        return self.options.dropout

    @property
    def bidirectional(self) -> bool:
        return self.options.bidirectional

    @property
    def proj_size(self) -> int:
        return self.options.proj_size

    @property
    def mask_output(self) -> MaskOutput:
        return self.options.mask_output

    @property
    def peephole(self) -> bool:
        return self.options.peephole

    @property
    def variant(self) -> CellVariant:
        return self.options.variant

    @property
    def recurrent_dropout(self) -> float:
        return self.options.recurrent_dropout

    @property
    def zoneout(self) -> tuple[float, float]:
        return self.options.zoneout

    @property
    def num_directions(self) -> int:
        return self.options.num_directions

    @property
    def output_size(self) -> int:
        return self.options.output_size

    def extra_repr(self) -> str:
        """The sizes, then every option that differs from its default (bias by the base class,
        dtype by repr)."""
        shown = self.options.non_defaults()
        return super().extra_repr() + "".join(
            f", {name}={value!r}" for name, value in shown.items() if name not in ("bias", "dtype")
        )

    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able) that rebuild this architecture:
        `LSTM(**lstm.config())` has the same parameter names and shapes (not values)."""
        return self.options.to_json()

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
        states = [cache.state(steps) for cache in call.caches]
        h, c = (np.stack(parts) for parts in zip(*states, strict=True))
        return call.layout.state_from_batch(h), call.layout.state_from_batch(c)

    # -- forward ------------------------------------------------------------------------------
    def forward(
        self,
        x: ArrayLike,
        hx: StateLike | None = None,
        *,
        lengths: ArrayLike | None = None,
        mask: ArrayLike | None = None,
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

        caches: list[Cache] = []
        dropout_masks: list[np.ndarray | None] = []
        h_n, c_n = [], []
        layer_input = x_tm
        for k in range(self.num_layers):
            calls = []
            for index in range(k * self.num_directions, (k + 1) * self.num_directions):
                options = SequenceOptions(
                    mask=valid_tm,
                    reverse=index % self.num_directions == 1,
                    carry_output=self.mask_output == "carry",
                    variant=self.variant,
                    recurrent_keep=self._recurrent_mask((B, self.output_size)),
                    zoneout=self._zoneout_weights(T, B),
                    record=record,
                )
                weights = self._weights(self._names[index])
                calls.append((layer_input, h0[index], c0[index], weights, options))
            outputs = []
            # The directions do not depend on each other: side by side, on the fast path.
            for out, h, c, cache in sequence_forward_side_by_side(calls):
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
        return out, (layout.state_from_batch(_stacked(h_n)), layout.state_from_batch(_stacked(c_n)))

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
    def backward(
        self, d_out: ArrayLike | None = None, d_state: GradStateLike | None = None
    ) -> tuple[np.ndarray, State]:
        dx, state, grads = self.backward_pass(d_out, d_state)
        for names, g in zip(self._names, grads, strict=True):
            self._accumulate_weights(names, g.dweights)
        return dx, state

    def backward_pass(
        self,
        d_out: ArrayLike | None = None,
        d_state: GradStateLike | None = None,
        *,
        record: bool = False,
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
        grads: dict[int, SequenceGrads] = {}  # by layer-direction index
        d_layer_output = d_out
        for k in reversed(range(self.num_layers)):
            if call.dropout_masks[k] is not None and d_layer_output is not None:
                d_layer_output = d_layer_output * call.dropout_masks[k]
            calls = [
                (
                    None
                    if d_layer_output is None
                    else d_layer_output[..., d * H_out : (d + 1) * H_out],
                    None if dh_n is None else dh_n[k * D + d],
                    None if dc_n is None else dc_n[k * D + d],
                    call.caches[k * D + d],
                )
                for d in range(D)
            ]
            layer_grads = sequence_backward_side_by_side(calls, record=record)
            for d, g in enumerate(layer_grads):
                grads[k * D + d] = g
            # the gradient w.r.t. this layer's input: the sum over its directions
            d_layer_output = layer_grads[0].dx if D == 1 else layer_grads[0].dx + layer_grads[1].dx
        assert d_layer_output is not None  # the first layer's loop set it
        dx = layout.from_time_major(d_layer_output)
        in_order = [grads[index] for index in range(len(call.caches))]
        dh0 = layout.state_from_batch(np.stack([g.dh0 for g in in_order]))
        dc0 = layout.state_from_batch(np.stack([g.dc0 for g in in_order]))
        return dx, (dh0, dc0), in_order


def _stacked(states: list[np.ndarray]) -> np.ndarray:
    """np.stack(states) — for the one state of a one-layer LSTM, a view of it (np.stack costs
    more than a whole streaming step's kernel); each state is already the caller's own copy."""
    return states[0][None] if len(states) == 1 else np.stack(states)


def _signature() -> inspect.Signature:
    """LSTM's call signature for help() and inspect: LSTMConfig's, then rng, init, forget_bias."""
    init_only = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, default, kind in (
            ("rng", None, "np.random.Generator | int | None"),
            ("init", "torch", "str | Initializer"),
            ("forget_bias", None, "float | None"),
        )
    ]
    config = inspect.signature(LSTMConfig)
    parameters = [*config.parameters.values(), *init_only]
    return config.replace(parameters=parameters, return_annotation=inspect.Signature.empty)


LSTM.__signature__ = _signature()
