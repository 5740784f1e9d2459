"""A whole sequence through one LSTM layer-direction: forward and backpropagation through time.

Pure functions over time-major arrays (x: (T, B, I)). The per-step math is the cell's
(:mod:`numpy_lstm.cell`); here we only add what makes a sequence fast and exact:

- the input projection x·W_ihᵀ does not depend on the recurrence, so it is one big GEMM for all
  T steps before the loop (and dx, dW_ih, dW_hh are one GEMM each after the backward loop);
- the cache keeps h and c with the initial state at index 0, so step t reads its predecessor at t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .cell import LSTMWeights, gate_activations, memory_update, memory_update_backward


@dataclass(frozen=True)
class SequenceCache:
    """Everything BPTT needs from a forward pass.

    x:     (T, B, I)  the input
    h:     (T+1, B, H) h[0] = h0, h[t+1] = output of step t
    c:     (T+1, B, H) c[0] = c0, c[t+1] = memory after step t
    tanh_c: (T, B, H)  tanh(c[t+1])
    gates: (T, B, 4H)  i, f, g, o after their activations
    weights: the parameters used
    """

    x: np.ndarray
    h: np.ndarray
    c: np.ndarray
    tanh_c: np.ndarray
    gates: np.ndarray
    weights: LSTMWeights


class SequenceGrads(NamedTuple):
    """Gradients of a loss w.r.t. every input of :func:`lstm_forward`.

    dx (T, B, I); dh0, dc0 (B, H); dweights in the layout of :class:`LSTMWeights`.
    """

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dweights: LSTMWeights


def lstm_forward(
    x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w: LSTMWeights
) -> tuple[np.ndarray, np.ndarray, np.ndarray, SequenceCache]:
    """Run the LSTM over a sequence.

    x (T, B, I), h0 and c0 (B, H) → outputs (T, B, H), h_n (B, H), c_n (B, H), cache.
    All arrays share one floating dtype, which the results keep.
    """
    T, B, I = x.shape
    H = w.hidden_size
    z_x = (x.reshape(T * B, I) @ w.weight_ih.T).reshape(T, B, 4 * H) + w.bias()
    W_hh_T = w.weight_hh.T
    h = np.empty((T + 1, B, H), dtype=x.dtype)
    c = np.empty((T + 1, B, H), dtype=x.dtype)
    tanh_c = np.empty((T, B, H), dtype=x.dtype)
    gates = np.empty((T, B, 4 * H), dtype=x.dtype)
    h[0], c[0] = h0, c0
    for t in range(T):
        gates[t] = gate_activations(z_x[t] + h[t] @ W_hh_T)
        h[t + 1], c[t + 1], tanh_c[t] = memory_update(gates[t], c[t])
    cache = SequenceCache(x, h, c, tanh_c, gates, w)
    return h[1:].copy(), h[T].copy(), c[T].copy(), cache


def lstm_backward(
    d_out: np.ndarray | None,
    dh_n: np.ndarray | None,
    dc_n: np.ndarray | None,
    cache: SequenceCache,
) -> SequenceGrads:
    """Backpropagation through time for :func:`lstm_forward`.

    d_out (T, B, H): upstream gradient of every output; dh_n, dc_n (B, H): of the final state.
    Any of them may be None (zero). Returns the gradients of x, h0, c0 and every weight.
    """
    x, w = cache.x, cache.weights
    T, B, I = x.shape
    H = w.hidden_size
    dz = np.empty((T, B, 4 * H), dtype=x.dtype)
    dh = np.zeros((B, H), dtype=x.dtype) if dh_n is None else dh_n.astype(x.dtype, copy=True)
    dc = np.zeros((B, H), dtype=x.dtype) if dc_n is None else dc_n.astype(x.dtype, copy=True)
    for t in reversed(range(T)):
        if d_out is not None:
            dh += d_out[t]
        dz[t], dc = memory_update_backward(dh, dc, cache.gates[t], cache.c[t], cache.tanh_c[t])
        dh = dz[t] @ w.weight_hh
    # The weight gradients sum over time: one GEMM each over the flattened (T·B) rows.
    dz_flat = dz.reshape(T * B, 4 * H)
    dx = (dz_flat @ w.weight_ih).reshape(T, B, I)
    dW_ih = dz_flat.T @ x.reshape(T * B, I)
    dW_hh = dz_flat.T @ cache.h[:T].reshape(T * B, H)
    db = dz_flat.sum(axis=0) if w.bias_ih is not None else None
    dweights = LSTMWeights(dW_ih, dW_hh, db, None if db is None else db.copy())
    return SequenceGrads(dx, dh, dc, dweights)
