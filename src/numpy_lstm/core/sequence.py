"""A whole sequence through one LSTM layer-direction: forward and backpropagation through time.

Pure functions over time-major arrays (x: (T, B, I)). The per-step math is
:func:`numpy_lstm.core.variants.step_forward` (the textbook cell when no variant is on); here we add
what makes a sequence fast, exact and general:

- the input projection x·W_ihᵀ does not depend on the recurrence, so it is one big GEMM for all
  T steps before the loop (and dx, dW_ih, dW_hh, dW_hr are one GEMM each after the backward loop);
- the cache keeps h and c with the initial state at index 0, so step s reads its predecessor at s;
- an optional projection h = (o·act(c))·W_hrᵀ (torch's `proj_size`);
- an optional mask (T, B): at a masked step the state is carried unchanged and the output is
  zero (or, with `carry_output`, the carried h). Padding therefore never touches a valid result;
- `reverse=True` runs from the last step to the first — with a mask, over each sequence's own
  valid steps, which is what torch's packed sequences do for the backward direction;
- layer normalisation of the two pre-activation terms (Ba et al. 2016):
  z = LN(x·W_ihᵀ) + LN(h·W_hhᵀ) + b;
- variational recurrent dropout (Gal & Ghahramani 2016): one mask per sequence on h before W_hh;
- zoneout (Krueger et al. 2016): each unit keeps its previous h / c with a given weight
  (a Bernoulli draw per step when training, the probability itself when evaluating). A masked
  step is the special case "keep everything".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, overload

import numpy as np

from .cell import LSTMWeights
from .options import SequenceOptions
from .variants import CellVariant, StepValues, layer_norm, layer_norm_backward, step_backward
from .variants import step_forward as variant_step


@dataclass(frozen=True)
class SequenceCache:
    """Everything BPTT needs from a forward pass, in *processing* order (reversed if `reverse`).

    x:      (T, B, I)      the input (zeros at masked steps)
    h:      (T+1, B, H_out) h[0] = h0, h[s+1] = the state after step s
    c:      (T+1, B, H)    c[0] = c0, c[s+1] = the memory after step s
    steps:  what each step computed (gates, act(c), …), see :class:`StepValues`
    carry_h, carry_c: (T, B, ·) how much of the previous state each step kept (mask, zoneout),
            or None
    recurrent_keep: (B, H_out) the recurrent dropout mask (scaled), or None
    ln_x: (normalised, 1/std) of x·W_ihᵀ over all steps; ln_h: one per step — or None
    """

    x: np.ndarray
    h: np.ndarray
    c: np.ndarray
    steps: list[StepValues]
    mask: np.ndarray | None
    carry_h: np.ndarray | None
    carry_c: np.ndarray | None
    recurrent_keep: np.ndarray | None
    ln_x: tuple[np.ndarray, np.ndarray] | None
    ln_h: list[tuple[np.ndarray, np.ndarray]] | None
    weights: LSTMWeights
    variant: CellVariant
    reverse: bool
    carry_output: bool

    @property
    def gates(self) -> np.ndarray:
        """(T, B, 4H) gate values i, f, g, o of every step, in processing order."""
        return np.stack([step.gates for step in self.steps])

    def state(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(h[steps], c[steps]), copies: the state after the first `steps` steps processed."""
        return self.h[steps].copy(), self.c[steps].copy()


class SequenceGrads(NamedTuple):
    """Gradients of a loss w.r.t. every input of :func:`lstm_forward`.

    dx (T, B, I); dh0 (B, H_out); dc0 (B, H); dweights in the layout of :class:`LSTMWeights`.
    With `record`: dh (T, B, H_out) and dc (T, B, H), the full gradients w.r.t. every step's
    h and memory c (time order) — how far the error reaches back through time.
    """

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dweights: LSTMWeights
    dh: np.ndarray | None = None
    dc: np.ndarray | None = None


NO_OPTIONS = SequenceOptions()


@overload
def _in_processing_order(a: np.ndarray, reverse: bool) -> np.ndarray: ...
@overload
def _in_processing_order(a: np.ndarray | None, reverse: bool) -> np.ndarray | None: ...
def _in_processing_order(a: np.ndarray | None, reverse: bool) -> np.ndarray | None:
    """Time axis 0 flipped for the reverse direction (a view; flipping twice restores it)."""
    return a if a is None or not reverse else a[::-1]


def _carry_weights(
    mask: np.ndarray | None, zoneout: np.ndarray | None, dtype: np.dtype
) -> np.ndarray | None:
    """How much of the previous state each step keeps: 1 at masked steps, else the zoneout
    weight (or 0). mask (T, B), zoneout (T, B, F) → (T, B, F) or (T, B, 1); None if neither."""
    if zoneout is None:
        return None if mask is None else (~mask)[:, :, None].astype(dtype)
    return zoneout if mask is None else np.where(mask[:, :, None], zoneout, 1).astype(dtype)


def lstm_forward(
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    w: LSTMWeights,
    options: SequenceOptions | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, SequenceCache]:
    """Run the LSTM over a sequence.

    x (T, B, I), h0 (B, H_out), c0 (B, H), `options` (the mask, direction, variant, dropout and
    zoneout arrays; see :class:`SequenceOptions`; None: the plain cell over every step) →
    outputs (T, B, H_out), h_n (B, H_out), c_n (B, H), cache. Results keep the inputs' dtype.
    With `options.record`, each step's pre-activations are kept in the cache too (for traces).
    """
    o = NO_OPTIONS if options is None else options
    variant, reverse, recurrent_keep = o.variant, o.reverse, o.recurrent_keep
    x, mask = _in_processing_order(x, reverse), _in_processing_order(o.mask, reverse)
    zoneout_h, zoneout_c = (None, None) if o.zoneout is None else o.zoneout
    zoneout_h = _in_processing_order(zoneout_h, reverse)
    zoneout_c = _in_processing_order(zoneout_c, reverse)
    carry_h = _carry_weights(mask, zoneout_h, x.dtype)
    carry_c = _carry_weights(mask, zoneout_c, x.dtype)
    T, B, I = x.shape
    H, H_out = w.hidden_size, w.output_size
    if mask is not None:  # padding may hold anything, NaN included: it must not reach the math
        x = np.where(mask[:, :, None], x, 0).astype(x.dtype, copy=False)
    z_x = (x.reshape(T * B, I) @ w.weight_ih.T).reshape(T, B, 4 * H)
    ln_x: tuple[np.ndarray, np.ndarray] | None = None
    ln_h: list[tuple[np.ndarray, np.ndarray]] | None = None
    if variant.layer_norm:
        z_x, *ln_x_stats = layer_norm(
            z_x,
            _norm_weight(w, "ln_weight_ih"),
            _norm_weight(w, "ln_bias_ih"),
            variant.layer_norm_eps,
        )
        ln_x, ln_h = (ln_x_stats[0], ln_x_stats[1]), []
    z_x = z_x + w.bias()
    W_hh_T = w.weight_hh.T
    h = np.empty((T + 1, B, H_out), dtype=x.dtype)
    c = np.empty((T + 1, B, H), dtype=x.dtype)
    h[0], c[0] = h0, c0
    steps = []
    for s in range(T):
        h_in = h[s] if recurrent_keep is None else h[s] * recurrent_keep
        z_h = h_in @ W_hh_T
        if ln_h is not None:
            z_h, normalised, inv_std = layer_norm(
                z_h,
                _norm_weight(w, "ln_weight_hh"),
                _norm_weight(w, "ln_bias_hh"),
                variant.layer_norm_eps,
            )
            ln_h.append((normalised, inv_std))
        step = variant_step(z_x[s] + z_h, c[s], w, variant, o.record)
        steps.append(step)
        h[s + 1] = step.shown if w.weight_hr is None else step.shown @ w.weight_hr.T
        c[s + 1] = step.c
        if carry_h is not None and carry_c is not None:  # keep part (at a masked step, all)
            h[s + 1] = carry_h[s] * h[s] + (1 - carry_h[s]) * h[s + 1]
            c[s + 1] = carry_c[s] * c[s] + (1 - carry_c[s]) * c[s + 1]
    out = h[1:].copy()
    if mask is not None and not o.carry_output:
        out *= mask[:, :, None]
    cache = SequenceCache(
        x=x,
        h=h,
        c=c,
        steps=steps,
        mask=mask,
        carry_h=carry_h,
        carry_c=carry_c,
        recurrent_keep=recurrent_keep,
        ln_x=ln_x,
        ln_h=ln_h,
        weights=w,
        variant=variant,
        reverse=reverse,
        carry_output=o.carry_output,
    )
    return _in_processing_order(out, reverse).copy(), h[T].copy(), c[T].copy(), cache


def lstm_backward(
    d_out: np.ndarray | None,
    dh_n: np.ndarray | None,
    dc_n: np.ndarray | None,
    cache: SequenceCache,
    record: bool = False,
) -> SequenceGrads:
    """Backpropagation through time for :func:`lstm_forward`.

    d_out (T, B, H_out): upstream gradient of every output; dh_n (B, H_out), dc_n (B, H): of the
    final state. Any of them may be None (zero). Returns the gradients of x, h0, c0 and every
    weight.
    """
    x, w, v, mask = cache.x, cache.weights, cache.variant, cache.mask
    T, B, I = x.shape
    H, H_out = w.hidden_size, w.output_size
    d_out = _in_processing_order(d_out, cache.reverse)
    if d_out is not None and mask is not None and not cache.carry_output:
        d_out = d_out * mask[:, :, None]  # zero outputs at masked steps pass no gradient
    dz = np.empty((T, B, 4 * H), dtype=x.dtype)
    dz_h = dz if cache.ln_h is None else np.empty_like(dz)  # gradient w.r.t. h·W_hhᵀ
    dh_proj = None if w.weight_hr is None else np.empty((T, B, H_out), dtype=x.dtype)
    dh = np.zeros((B, H_out), dtype=x.dtype) if dh_n is None else dh_n.astype(x.dtype, copy=True)
    dc = np.zeros((B, H), dtype=x.dtype) if dc_n is None else dc_n.astype(x.dtype, copy=True)
    extra: dict[str, np.ndarray] = {}  # per-step parameters: peepholes, norms
    carry_h, carry_c = cache.carry_h, cache.carry_c
    dh_steps = np.empty((T, B, H_out), dtype=x.dtype) if record else None
    dc_steps = np.empty((T, B, H), dtype=x.dtype) if record else None
    for s in reversed(range(T)):
        if d_out is not None:
            dh = dh + d_out[s]
        if dh_steps is not None:
            dh_steps[s] = dh
        if carry_h is not None and carry_c is not None:  # the kept part skips this step's math
            dh, dh_kept = dh * (1 - carry_h[s]), dh * carry_h[s]
            dc, dc_kept = dc * (1 - carry_c[s]), dc * carry_c[s]
        if dh_proj is not None:
            dh_proj[s] = dh
            dh = dh @ w.weight_hr
        step = step_backward(dh, dc, cache.steps[s], cache.c[s], w, v)
        dz[s], dc = step.dz, step.dc_prev
        _add_into(extra, step.params)
        if dc_steps is not None:
            dc_steps[s] = step.dc
        if cache.ln_h is not None:
            dz_h[s], *ln_grads = layer_norm_backward(
                dz[s], *cache.ln_h[s], _norm_weight(w, "ln_weight_hh")
            )
            _add_into(extra, dict(zip(("ln_weight_hh", "ln_bias_hh"), ln_grads, strict=True)))
        dh = dz_h[s] @ w.weight_hh
        if cache.recurrent_keep is not None:
            dh = dh * cache.recurrent_keep
        if carry_h is not None and carry_c is not None:
            dh, dc = dh + dh_kept, dc + dc_kept
    # The weight gradients sum over time: one GEMM each over the flattened (T·B) rows.
    db = dz.sum(axis=(0, 1)) if w.bias_ih is not None else None
    dz_x = dz
    if cache.ln_x is not None:
        dz_x, *ln_grads = layer_norm_backward(dz, *cache.ln_x, _norm_weight(w, "ln_weight_ih"))
        _add_into(extra, dict(zip(("ln_weight_ih", "ln_bias_ih"), ln_grads, strict=True)))
    dz_x_flat = dz_x.reshape(T * B, 4 * H)
    dx = (dz_x_flat @ w.weight_ih).reshape(T, B, I)
    h_in = cache.h[:T] if cache.recurrent_keep is None else cache.h[:T] * cache.recurrent_keep
    dweights = LSTMWeights(
        weight_ih=dz_x_flat.T @ x.reshape(T * B, I),
        weight_hh=dz_h.reshape(T * B, 4 * H).T @ h_in.reshape(T * B, H_out),
        bias_ih=db,
        bias_hh=None if db is None else db.copy(),
        weight_hr=None if dh_proj is None else _projection_grad(dh_proj, cache.steps),
        **extra,
    )
    dx = _in_processing_order(dx, cache.reverse).copy()
    if dh_steps is not None and dc_steps is not None:
        # back to time order; at masked steps only the carried part exists
        dh_steps = _in_processing_order(dh_steps, cache.reverse).copy()
        dc_steps = _in_processing_order(dc_steps, cache.reverse).copy()
    return SequenceGrads(dx, dh, dc, dweights, dh_steps, dc_steps)


def _norm_weight(w: LSTMWeights, name: str) -> np.ndarray:
    """A layer-norm parameter the variant needs: its absence is a caller's error."""
    value: np.ndarray | None = getattr(w, name)
    if value is None:
        raise ValueError(f"w: layer_norm needs {name}, and these weights have none")
    return value


def _projection_grad(dh_proj: np.ndarray, steps: list[StepValues]) -> np.ndarray:
    """dW_hr (P, H) = Σ_t dhᵀ·shown over all steps, as one GEMM."""
    shown = np.stack([step.shown for step in steps])
    return dh_proj.reshape(-1, dh_proj.shape[-1]).T @ shown.reshape(-1, shown.shape[-1])


def _add_into(total: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
    for name, grad in grads.items():
        total[name] = grad if name not in total else total[name] + grad
