"""The plain (Elman) recurrent network, forward and backward through time, as pure functions.

    h_t = φ(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh),   φ = tanh (or relu)

torch.nn.RNN's equation and parameter layout: W_ih (H, I), W_hh (H, H), b_ih, b_hh (H,). It is
the LSTM without its memory c: every step's gradient to the past is multiplied by
W_hhᵀ·diag(φ′), which is why it fades (or explodes) over long spans — the contrast that
:mod:`numpy_lstm.inspect.highway` draws.

Shapes: x (T, B, I), h (B, H); every array keeps the parameters' dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Nonlinearity = Literal["tanh", "relu"]
NONLINEARITIES: tuple[Nonlinearity, ...] = ("tanh", "relu")


@dataclass(frozen=True)
class RNNWeights:
    """One layer's parameters: weight_ih (H, I), weight_hh (H, H), biases (H,) or None."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None


@dataclass(frozen=True)
class RNNCache:
    """What the backward needs: the inputs x (T, B, I), the states h (T+1, B, H) with h[0] = h0,
    and the nonlinearity."""

    x: np.ndarray
    h: np.ndarray
    nonlinearity: Nonlinearity


@dataclass(frozen=True)
class RNNGrads:
    """dx (T, B, I), dh0 (B, H), the parameter gradients (None where there is no bias), and with
    `record` dh (T, B, H): the total gradient of the loss w.r.t. each step's output h_t (from
    d_out and from the future), None otherwise."""

    dx: np.ndarray
    dh0: np.ndarray
    dweights: RNNWeights
    dh: np.ndarray | None = None


def rnn_forward(
    x: np.ndarray, h0: np.ndarray, w: RNNWeights, nonlinearity: Nonlinearity = "tanh"
) -> tuple[np.ndarray, np.ndarray, RNNCache]:
    """x (T, B, I), h0 (B, H) → out (T, B, H) (every h_t), h_n (B, H) and the cache."""
    T, B = x.shape[:2]
    H = w.weight_hh.shape[0]
    h = np.empty((T + 1, B, H), dtype=h0.dtype)
    h[0] = h0
    # The input part of every step at once: one (T·B, I) × (I, H) product.
    from_input = x @ w.weight_ih.T
    if w.bias_ih is not None and w.bias_hh is not None:
        from_input = from_input + (w.bias_ih + w.bias_hh)
    for t in range(T):
        a = from_input[t] + h[t] @ w.weight_hh.T
        h[t + 1] = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return h[1:].copy(), h[T].copy(), RNNCache(x, h, nonlinearity)


def rnn_backward(
    d_out: np.ndarray | None,
    dh_n: np.ndarray | None,
    cache: RNNCache,
    w: RNNWeights,
    *,
    record: bool = False,
) -> RNNGrads:
    """BPTT. d_out (T, B, H) the loss's gradient w.r.t. every output, dh_n (B, H) w.r.t. the
    final state (either may be None: zero) → :class:`RNNGrads`.

    Going back one step: dh_t (total) → da_t = dh_t·φ′(a_t) → dh_{t−1} += da_t·W_hh — the
    product that shrinks or grows the gradient at every step."""
    x, h = cache.x, cache.h
    T = x.shape[0]
    dtype = h.dtype
    dh_next = np.zeros_like(h[0]) if dh_n is None else dh_n.astype(dtype, copy=True)
    da = np.empty_like(h[1:])  # (T, B, H)
    recorded = np.empty_like(h[1:]) if record else None
    for t in reversed(range(T)):
        dh_t = dh_next if d_out is None else dh_next + d_out[t]
        if recorded is not None:
            recorded[t] = dh_t
        h_t = h[t + 1]
        # φ′ from the output: tanh′ = 1 − h², relu′ = [h > 0].
        da[t] = dh_t * (1 - h_t * h_t) if cache.nonlinearity == "tanh" else dh_t * (h_t > 0)
        dh_next = da[t] @ w.weight_hh
    da_flat = da.reshape(-1, da.shape[-1])  # (T·B, H)
    dweights = RNNWeights(
        weight_ih=da_flat.T @ x.reshape(-1, x.shape[-1]),
        weight_hh=da_flat.T @ h[:-1].reshape(-1, h.shape[-1]),
        bias_ih=None if w.bias_ih is None else da_flat.sum(axis=0),
        bias_hh=None if w.bias_hh is None else da_flat.sum(axis=0),
    )
    return RNNGrads(dx=da @ w.weight_ih, dh0=dh_next, dweights=dweights, dh=recorded)
