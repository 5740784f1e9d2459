"""Stateful layers with PyTorch's names, shapes and calling conventions.

Each layer validates its inputs, calls the pure functions of :mod:`numpy_lstm.cell` or
:mod:`numpy_lstm.sequence`, keeps the forward cache, and on `backward` returns the input
gradients and accumulates the parameter gradients into `self.grads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .cell import LSTMWeights, StepCache, cell_backward, cell_forward
from .module import Module
from .sequence import SequenceCache, lstm_backward, lstm_forward
from .validation import (
    as_float_array,
    check_finite,
    check_positive_int,
    checked_input,
    resolve_dtype,
    resolve_rng,
)

State = tuple[np.ndarray, np.ndarray]
OptionalState = tuple[np.ndarray | None, np.ndarray | None]


def uniform_init(
    rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """U(−bound, bound) in `dtype` (drawn in float64, then rounded once)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class _LSTMParameters(Module):
    """Shared by LSTMCell and LSTM: sizes, dtype, and torch's default initialisation."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool, dtype: Any, rng: Any, suffix: str
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.dtype = resolve_dtype(dtype)
        self._names = LSTMWeights(*(f"{n}{suffix}" for n in LSTMWeights._fields))
        # torch's default: every parameter ~ U(−1/√H, 1/√H), drawn in this order.
        rng = resolve_rng(rng)
        bound = 1.0 / np.sqrt(self.hidden_size)
        H4, I, H = 4 * self.hidden_size, self.input_size, self.hidden_size
        shapes = LSTMWeights((H4, I), (H4, H), (H4,), (H4,))
        for name, shape in zip(self._names, shapes, strict=True):
            if self.bias or not name.startswith("bias"):
                self.register_parameter(name, uniform_init(rng, bound, shape, self.dtype))
        self._cache: Any = None

    @property
    def weights(self) -> LSTMWeights:
        """The current parameters as the pure functions take them."""
        return LSTMWeights(*(self._params.get(name) for name in self._names))

    def _accumulate_weights(self, dweights: LSTMWeights) -> None:
        self._accumulate(
            {n: g for n, g in zip(self._names, dweights, strict=True) if g is not None}
        )

    def _state(self, hx: Any, shape: tuple[int, ...]) -> State:
        """Validate an optional (h, c) pair of the given shape; None → zeros."""
        if hx is None:
            zeros = np.zeros(shape, dtype=self.dtype)
            return zeros, zeros.copy()
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"hx: expected a tuple (h0, c0), got {type(hx).__name__}")
        return (
            checked_input("h0", hx[0], self.dtype, shape),
            checked_input("c0", hx[1], self.dtype, shape),
        )

    def _grad_state(self, d_state: Any, shape: tuple[int, ...]) -> OptionalState:
        """Validate an optional (dh, dc) pair; either part may be None."""
        if d_state is None:
            return None, None
        if not isinstance(d_state, (tuple, list)) or len(d_state) != 2:
            raise TypeError(f"d_state: expected a tuple (dh, dc), got {type(d_state).__name__}")
        return tuple(  # type: ignore[return-value]
            None if g is None else checked_input(name, g, self.dtype, shape)
            for name, g in zip(("dh_n", "dc_n"), d_state, strict=True)
        )

    def _require_cache(self) -> Any:
        if self._cache is None:
            raise ValueError(
                f"{type(self).__name__}.backward() called before forward(): "
                "there is no forward pass to differentiate"
            )
        return self._cache

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}, dtype={self.dtype.name})"


@dataclass(frozen=True)
class _CellCall:
    cache: StepCache
    batched: bool


class LSTMCell(_LSTMParameters):
    """One LSTM step, like `torch.nn.LSTMCell`.

    Parameters `weight_ih` (4H, I), `weight_hh` (4H, H), `bias_ih`, `bias_hh` (4H,), gate order
    i, f, g, o (Filter, Eraser, Writer, Presenter).

    `h1, c1 = cell(x, (h0, c0))` with x (B, I) or unbatched (I,), states (B, H) or (H,).
    `dx, (dh0, dc0) = cell.backward((dh1, dc1))` after a forward; either gradient may be None.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, dtype, rng, suffix="")

    def forward(self, x: Any, hx: Any = None) -> State:
        x = as_float_array("x", x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape (B, {self.input_size}) or unbatched ({self.input_size},), "
                f"got {x.shape}"
            )
        check_finite("x", x)
        batched = x.ndim == 2
        shape = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        h0, c0 = self._state(hx, shape)
        if not batched:  # the math always sees a batch axis
            x, h0, c0 = x[None], h0[None], c0[None]
        h1, c1, cache = cell_forward(x, h0, c0, self.weights)
        self._cache = _CellCall(cache, batched)
        return (h1, c1) if batched else (h1[0], c1[0])

    def backward(self, d_state: Any) -> tuple[np.ndarray, State]:
        call: _CellCall = self._require_cache()
        shape = call.cache.c_prev.shape if call.batched else (self.hidden_size,)
        dh, dc = self._grad_state(d_state, shape)
        if not call.batched:
            dh, dc = (None if g is None else g[None] for g in (dh, dc))
        g = cell_backward(dh, dc, call.cache, self.weights)
        self._accumulate_weights(g.dweights)
        if call.batched:
            return g.dx, (g.dh_prev, g.dc_prev)
        return g.dx[0], (g.dh_prev[0], g.dc_prev[0])


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
        """(1, B, H) or unbatched (1, H) → (B, H)."""
        return s[0] if self.batched else s

    def state_from_batch(self, s: np.ndarray) -> np.ndarray:
        return s[None] if self.batched else s


@dataclass(frozen=True)
class _SequenceCall:
    cache: SequenceCache
    layout: _Layout
    out_shape: tuple[int, ...]
    state_shape: tuple[int, ...]


class LSTM(_LSTMParameters):
    """A single-layer LSTM over sequences, like `torch.nn.LSTM(input_size, hidden_size)`.

    Parameters `weight_ih_l0` (4H, I), `weight_hh_l0` (4H, H), `bias_ih_l0`, `bias_hh_l0` (4H,).

    `out, (h_n, c_n) = lstm(x, (h0, c0))`:
      x (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I);
      h0, c0, h_n, c_n (1, B, H), or (1, H) unbatched; the state is optional (zeros);
      out (T, B, H) / (B, T, H) / (T, H), the h of every step.
    `dx, (dh0, dc0) = lstm.backward(d_out, (dh_n, dc_n))` after a forward: gradients shaped like
    the forward's inputs; any upstream part may be None. Parameter gradients accumulate in
    `lstm.grads`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        batch_first: bool = False,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, dtype, rng, suffix="_l0")
        self.batch_first = bool(batch_first)
        self.num_layers = 1

    def extra_repr(self) -> str:
        return super().extra_repr() + (", batch_first=True" if self.batch_first else "")

    def forward(self, x: Any, hx: Any = None) -> tuple[np.ndarray, State]:
        x = as_float_array("x", x, self.dtype)
        layout_name = "(B, T, I)" if self.batch_first else "(T, B, I)"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape {layout_name} or unbatched (T, I) with I = {self.input_size}, "
                f"got {x.shape}"
            )
        check_finite("x", x)
        layout = _Layout(batched=x.ndim == 3, batch_first=self.batch_first)
        x_tm = layout.to_time_major(x)
        if x_tm.shape[0] == 0:
            raise ValueError(f"x: the sequence is empty (T = 0), shape {x.shape}")
        batch = x_tm.shape[1]
        state_shape = (1, batch, self.hidden_size) if layout.batched else (1, self.hidden_size)
        h0, c0 = self._state(hx, state_shape)
        out, h_n, c_n, cache = lstm_forward(
            x_tm, layout.state_to_batch(h0), layout.state_to_batch(c0), self.weights
        )
        out = layout.from_time_major(out)
        self._cache = _SequenceCall(cache, layout, out.shape, state_shape)
        return out, (layout.state_from_batch(h_n), layout.state_from_batch(c_n))

    def backward(self, d_out: Any = None, d_state: Any = None) -> tuple[np.ndarray, State]:
        call: _SequenceCall = self._require_cache()
        layout = call.layout
        if d_out is not None:
            d_out = layout.to_time_major(checked_input("d_out", d_out, self.dtype, call.out_shape))
        dh_n, dc_n = (
            None if g is None else layout.state_to_batch(g)
            for g in self._grad_state(d_state, call.state_shape)
        )
        g = lstm_backward(d_out, dh_n, dc_n, call.cache)
        self._accumulate_weights(g.dweights)
        dx = layout.from_time_major(g.dx)
        return dx, (layout.state_from_batch(g.dh0), layout.state_from_batch(g.dc0))


class Linear(Module):
    """y = x·Wᵀ + b, like `torch.nn.Linear`: `weight` (out, in), `bias` (out,).

    x (…, in) → y (…, out). Default init U(±1/√in) for both, like torch's.
    `dx = linear.backward(dy)` after a forward; parameter gradients accumulate in `grads`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.dtype = resolve_dtype(dtype)
        rng = resolve_rng(rng)
        bound = 1.0 / np.sqrt(self.in_features)
        self.register_parameter(
            "weight", uniform_init(rng, bound, (self.out_features, self.in_features), self.dtype)
        )
        if bias:
            self.register_parameter(
                "bias", uniform_init(rng, bound, (self.out_features,), self.dtype)
            )
        self._x: np.ndarray | None = None

    def forward(self, x: Any) -> np.ndarray:
        x = as_float_array("x", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}), got {x.shape}")
        check_finite("x", x)
        self._x = x
        y = x @ self._params["weight"].T
        return y + self._params["bias"] if "bias" in self._params else y

    def backward(self, dy: Any) -> np.ndarray:
        if self._x is None:
            raise ValueError("Linear.backward() called before forward()")
        x = self._x
        dy = checked_input("dy", dy, self.dtype, (*x.shape[:-1], self.out_features))
        dy_flat, x_flat = dy.reshape(-1, self.out_features), x.reshape(-1, self.in_features)
        grads = {"weight": dy_flat.T @ x_flat}
        if "bias" in self._params:
            grads["bias"] = dy_flat.sum(axis=0)
        self._accumulate(grads)
        return dy @ self._params["weight"]

    def __repr__(self) -> str:
        bias = "" if "bias" in self._params else ", bias=False"
        return f"Linear({self.in_features}, {self.out_features}{bias}, dtype={self.dtype.name})"
