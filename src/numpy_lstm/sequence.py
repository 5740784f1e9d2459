"""A whole sequence through one LSTM layer-direction: forward and backpropagation through time.

Pure functions over time-major arrays (x: (T, B, I)). The per-step math is the cell's
(:mod:`numpy_lstm.cell`); here we only add what makes a sequence fast, exact and general:

- the input projection x·W_ihᵀ does not depend on the recurrence, so it is one big GEMM for all
  T steps before the loop (and dx, dW_ih, dW_hh, dW_hr are one GEMM each after the backward loop);
- the cache keeps h and c with the initial state at index 0, so step s reads its predecessor at s;
- an optional projection h = (o·tanh(c))·W_hrᵀ (torch's `proj_size`);
- an optional mask (T, B): at a masked step the state is carried unchanged and the output is
  zero (or, with `carry_output`, the carried h). Padding therefore never touches a valid result;
- `reverse=True` runs from the last step to the first — with a mask, over each sequence's own
  valid steps, which is what torch's packed sequences do for the backward direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .cell import LSTMWeights, gate_activations, memory_update, memory_update_backward


@dataclass(frozen=True)
class SequenceCache:
    """Everything BPTT needs from a forward pass, in *processing* order (reversed if `reverse`).

    x:      (T, B, I)    the input (zeros at masked steps)
    h:      (T+1, B, H_out) h[0] = h0, h[s+1] = the state after step s
    c:      (T+1, B, H)  c[0] = c0, c[s+1] = the memory after step s
    tanh_c: (T, B, H)    tanh of the memory the step computed
    gates:  (T, B, 4H)   i, f, g, o after their activations
    shown:  (T, B, H) or None — o·tanh(c) before the projection (only with a projection)
    mask:   (T, B) bool or None
    """

    x: np.ndarray
    h: np.ndarray
    c: np.ndarray
    tanh_c: np.ndarray
    gates: np.ndarray
    shown: np.ndarray | None
    mask: np.ndarray | None
    weights: LSTMWeights
    reverse: bool
    carry_output: bool


class SequenceGrads(NamedTuple):
    """Gradients of a loss w.r.t. every input of :func:`lstm_forward`.

    dx (T, B, I); dh0 (B, H_out); dc0 (B, H); dweights in the layout of :class:`LSTMWeights`.
    """

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dweights: LSTMWeights


def _in_processing_order(a: np.ndarray | None, reverse: bool) -> np.ndarray | None:
    """Time axis 0 flipped for the reverse direction (a view; flipping twice restores it)."""
    return a if a is None or not reverse else a[::-1]


def lstm_forward(
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    w: LSTMWeights,
    *,
    mask: np.ndarray | None = None,
    reverse: bool = False,
    carry_output: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, SequenceCache]:
    """Run the LSTM over a sequence.

    x (T, B, I), h0 (B, H_out), c0 (B, H), mask (T, B) bool or None →
    outputs (T, B, H_out), h_n (B, H_out), c_n (B, H), cache. Results keep the inputs' dtype.
    """
    x, mask = _in_processing_order(x, reverse), _in_processing_order(mask, reverse)
    T, B, I = x.shape
    H, H_out = w.hidden_size, w.output_size
    if mask is not None:  # padding may hold anything, NaN included: it must not reach the math
        x = np.where(mask[:, :, None], x, 0).astype(x.dtype, copy=False)
    z_x = (x.reshape(T * B, I) @ w.weight_ih.T).reshape(T, B, 4 * H) + w.bias()
    W_hh_T = w.weight_hh.T
    W_hr_T = None if w.weight_hr is None else w.weight_hr.T
    h = np.empty((T + 1, B, H_out), dtype=x.dtype)
    c = np.empty((T + 1, B, H), dtype=x.dtype)
    tanh_c = np.empty((T, B, H), dtype=x.dtype)
    gates = np.empty((T, B, 4 * H), dtype=x.dtype)
    shown = None if W_hr_T is None else np.empty((T, B, H), dtype=x.dtype)
    h[0], c[0] = h0, c0
    for s in range(T):
        gates[s] = gate_activations(z_x[s] + h[s] @ W_hh_T)
        h_new, c[s + 1], tanh_c[s] = memory_update(gates[s], c[s])
        if shown is not None:
            shown[s] = h_new
            h_new = h_new @ W_hr_T
        h[s + 1] = h_new
        if mask is not None:  # a masked step carries the state through unchanged
            keep = mask[s][:, None]
            h[s + 1] = np.where(keep, h[s + 1], h[s])
            c[s + 1] = np.where(keep, c[s + 1], c[s])
    out = h[1:].copy()
    if mask is not None and not carry_output:
        out *= mask[:, :, None]
    cache = SequenceCache(x, h, c, tanh_c, gates, shown, mask, w, reverse, carry_output)
    return _in_processing_order(out, reverse).copy(), h[T].copy(), c[T].copy(), cache


def lstm_backward(
    d_out: np.ndarray | None,
    dh_n: np.ndarray | None,
    dc_n: np.ndarray | None,
    cache: SequenceCache,
) -> SequenceGrads:
    """Backpropagation through time for :func:`lstm_forward`.

    d_out (T, B, H_out): upstream gradient of every output; dh_n (B, H_out), dc_n (B, H): of the
    final state. Any of them may be None (zero). Returns the gradients of x, h0, c0 and every
    weight.
    """
    x, w, mask = cache.x, cache.weights, cache.mask
    T, B, I = x.shape
    H, H_out = w.hidden_size, w.output_size
    d_out = _in_processing_order(d_out, cache.reverse)
    if d_out is not None and mask is not None and not cache.carry_output:
        d_out = d_out * mask[:, :, None]  # zero outputs at masked steps pass no gradient
    dz = np.empty((T, B, 4 * H), dtype=x.dtype)
    dh_proj = None if w.weight_hr is None else np.empty((T, B, H_out), dtype=x.dtype)
    dh = np.zeros((B, H_out), dtype=x.dtype) if dh_n is None else dh_n.astype(x.dtype, copy=True)
    dc = np.zeros((B, H), dtype=x.dtype) if dc_n is None else dc_n.astype(x.dtype, copy=True)
    for s in reversed(range(T)):
        if d_out is not None:
            dh = dh + d_out[s]
        if mask is not None:  # the carried part of the state skips this step's math
            keep = mask[s][:, None]
            dh, dh_carried = dh * keep, dh * ~keep
            dc, dc_carried = dc * keep, dc * ~keep
        if dh_proj is not None:
            dh_proj[s] = dh
            dh = dh @ w.weight_hr
        dz[s], dc = memory_update_backward(dh, dc, cache.gates[s], cache.c[s], cache.tanh_c[s])
        dh = dz[s] @ w.weight_hh
        if mask is not None:
            dh, dc = dh + dh_carried, dc + dc_carried
    # The weight gradients sum over time: one GEMM each over the flattened (T·B) rows.
    dz_flat = dz.reshape(T * B, 4 * H)
    dx = (dz_flat @ w.weight_ih).reshape(T, B, I)
    dW_ih = dz_flat.T @ x.reshape(T * B, I)
    dW_hh = dz_flat.T @ cache.h[:T].reshape(T * B, H_out)
    db = dz_flat.sum(axis=0) if w.bias_ih is not None else None
    dW_hr = None
    if dh_proj is not None:
        dW_hr = dh_proj.reshape(T * B, H_out).T @ cache.shown.reshape(T * B, H)
    dweights = LSTMWeights(dW_ih, dW_hh, db, None if db is None else db.copy(), dW_hr)
    return SequenceGrads(_in_processing_order(dx, cache.reverse).copy(), dh, dc, dweights)
