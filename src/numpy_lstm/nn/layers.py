"""Stateful layers with PyTorch's names, shapes and calling conventions.

Each layer validates its inputs, calls the pure functions of :mod:`numpy_lstm.core` (the step
of :mod:`~numpy_lstm.core.variants`, the sequence of :mod:`~numpy_lstm.core.sequence`), keeps the
forward cache, and on `backward` returns the input gradients and accumulates the parameter
gradients into `self.grads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..core.cell import LSTMWeights, preactivations, preactivations_backward
from ..core.validation import (
    as_float_array,
    check_finite,
    check_int,
    checked_input,
    resolve_dtype,
    resolve_rng,
)
from ..core.variants import StepValues, step_backward, step_forward
from ..kernels.products import linear, linear_input_grad, matmul
from ..kernels.training import scatter_add_rows
from .init import Initializer, initial_value
from .module import Module

State = tuple[np.ndarray, np.ndarray]
OptionalState = tuple[np.ndarray | None, np.ndarray | None]
StateLike = tuple[ArrayLike, ArrayLike]  # (h, c) as a caller gives it, checked by the layer
GradStateLike = tuple[ArrayLike | None, ArrayLike | None]  # (dh, dc), either may be None
WeightNames = dict[str, str]  # one layer-direction's LSTMWeights field → parameter name


def uniform_init(
    rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """U(−bound, bound) in `dtype` (drawn in float64, then rounded once)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def parameter_shapes(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    proj_size: int = 0,
    peephole: bool = False,
    layer_norm: bool = False,
) -> dict[str, tuple[int, ...]]:
    """LSTMWeights field → shape of one layer-direction: torch's parameters in torch's order,
    then the variants' (peepholes, layer-norm gains and biases)."""
    H4, H = 4 * hidden_size, hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "weight_ih": (H4, input_size),
        "weight_hh": (H4, proj_size or H),
    }
    if bias:
        shapes |= {"bias_ih": (H4,), "bias_hh": (H4,)}
    if proj_size:
        shapes["weight_hr"] = (proj_size, H)
    if peephole:
        shapes["weight_peephole"] = (3, H)
    if layer_norm:
        for part, size in (("ih", H4), ("hh", H4), ("c", H)):
            shapes |= {f"ln_weight_{part}": (size,), f"ln_bias_{part}": (size,)}
    return shapes


class RecurrentBase(Module):
    """Shared by LSTMCell and LSTM: sizes, dtype, parameter registration, state validation."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, dtype: DTypeLike) -> None:
        super().__init__()
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.dtype = resolve_dtype(dtype)
        self._cache: Any = None

    def _register_weights(
        self,
        suffix: str,
        shapes: dict[str, tuple[int, ...]],
        rng: np.random.Generator,
        scheme: str | Initializer,
    ) -> WeightNames:
        """Create one layer-direction's parameters (LSTMWeights field → shape, in torch's order)
        and return their names by field."""
        names = {field: f"{field}{suffix}" for field in shapes}
        for field, shape in shapes.items():
            value = initial_value(scheme, names[field], shape, rng, self.hidden_size, self.dtype)
            self.register_parameter(names[field], value)
        return names

    def _weights(self, names: WeightNames) -> LSTMWeights:
        """The current parameters (by name) as the pure functions take them."""
        return LSTMWeights(**{field: self._params[name] for field, name in names.items()})

    def _accumulate_weights(self, names: WeightNames, dweights: LSTMWeights) -> None:
        self._accumulate({name: getattr(dweights, field) for field, name in names.items()})

    def _state(self, hx: object, h_shape: tuple[int, ...], c_shape: tuple[int, ...]) -> State:
        """Validate an optional (h0, c0) pair of the given shapes; None → zeros."""
        if hx is None:
            return np.zeros(h_shape, dtype=self.dtype), np.zeros(c_shape, dtype=self.dtype)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"hx: expected a tuple (h0, c0), got {type(hx).__name__}")
        return (
            checked_input("h0", hx[0], self.dtype, h_shape),
            checked_input("c0", hx[1], self.dtype, c_shape),
        )

    def _grad_state(
        self, d_state: object, h_shape: tuple[int, ...], c_shape: tuple[int, ...]
    ) -> OptionalState:
        """Validate an optional (dh, dc) pair; either part may be None."""
        if d_state is None:
            return None, None
        if not isinstance(d_state, (tuple, list)) or len(d_state) != 2:
            raise TypeError(f"d_state: expected a tuple (dh, dc), got {type(d_state).__name__}")
        dh, dc = d_state
        return (
            None if dh is None else checked_input("dh_n", dh, self.dtype, h_shape),
            None if dc is None else checked_input("dc_n", dc, self.dtype, c_shape),
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
    """What LSTMCell.forward keeps for its backward: the step's inputs x (B, I), h_prev and
    c_prev (B, H), what it computed, and whether the caller passed a batch."""

    x: np.ndarray
    h_prev: np.ndarray
    c_prev: np.ndarray
    step: StepValues
    batched: bool


class LSTMCell(RecurrentBase):
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
        dtype: DTypeLike = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, dtype)
        shapes = parameter_shapes(self.input_size, self.hidden_size, bias=self.bias)
        self._names = self._register_weights("", shapes, resolve_rng(rng), "torch")

    def config(self) -> dict[str, int | bool | str]:
        """The constructor arguments (JSON-able): `LSTMCell(**cell.config())`."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "dtype": self.dtype.name,
        }

    def forward(self, x: ArrayLike, hx: StateLike | None = None) -> State:
        x = as_float_array("x", x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape (B, {self.input_size}) or unbatched ({self.input_size},), "
                f"got {x.shape}"
            )
        check_finite("x", x)
        batched = x.ndim == 2
        shape = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        h0, c0 = self._state(hx, shape, shape)
        if not batched:  # the math always sees a batch axis
            x, h0, c0 = x[None], h0[None], c0[None]
        w = self._weights(self._names)
        step = step_forward(preactivations(x, h0, w), c0, w)
        self._cache = _CellCall(x, h0, c0, step, batched)
        h1, c1 = step.shown, step.c
        return (h1, c1) if batched else (h1[0], c1[0])

    def backward(self, d_state: GradStateLike | None) -> tuple[np.ndarray, State]:
        call: _CellCall = self._require_cache()
        shape = call.c_prev.shape if call.batched else (self.hidden_size,)
        dh, dc = self._grad_state(d_state, shape, shape)
        if not call.batched:  # the math always sees a batch axis
            dh, dc = (None if g is None else g[None] for g in (dh, dc))
        zeros = np.zeros_like(call.c_prev)  # a missing gradient is zero
        w = self._weights(self._names)
        step = step_backward(
            zeros if dh is None else dh, zeros if dc is None else dc, call.step, call.c_prev, w
        )
        dx, dh_prev, dweights = preactivations_backward(step.dz, call.x, call.h_prev, w)
        self._accumulate_weights(self._names, dweights)
        if call.batched:
            return dx, (dh_prev, step.dc_prev)
        return dx[0], (dh_prev[0], step.dc_prev[0])


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
        dtype: DTypeLike = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
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

    def config(self) -> dict[str, int | bool | str]:
        """The constructor arguments (JSON-able): `Linear(**linear.config())`."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": "bias" in self._params,
            "dtype": self.dtype.name,
        }

    def checked_input(self, x: ArrayLike) -> np.ndarray:
        """x as forward takes it — (…, in_features), finite, in the layer's dtype — or a
        ValueError/TypeError naming `x` (also what a fused caller of the layer checks)."""
        x = as_float_array("x", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}), got {x.shape}")
        check_finite("x", x)
        return x

    def forward(self, x: ArrayLike) -> np.ndarray:
        x = self._x = self.checked_input(x)
        # the library's thread model and kernels, the bias added in the same pass: see
        # kernels.products
        return linear(x, self._params["weight"], self._params.get("bias"))

    def backward(self, dy: ArrayLike) -> np.ndarray:
        if self._x is None:
            raise ValueError("Linear.backward() called before forward()")
        x = self._x
        dy = checked_input("dy", dy, self.dtype, (*x.shape[:-1], self.out_features))
        dy_flat, x_flat = dy.reshape(-1, self.out_features), x.reshape(-1, self.in_features)
        grads = {"weight": matmul(dy_flat.T, x_flat)}
        if "bias" in self._params:
            grads["bias"] = dy_flat.sum(axis=0)
        self._accumulate(grads)
        return linear_input_grad(dy, self._params["weight"])

    def __repr__(self) -> str:
        bias = "" if "bias" in self._params else ", bias=False"
        return f"Linear({self.in_features}, {self.out_features}{bias}, dtype={self.dtype.name})"


class Embedding(Module):
    """A lookup table, like `torch.nn.Embedding`: `weight` (num_embeddings, embedding_dim),
    initialised N(0, 1) as torch does.

    idx (…) integers in [0, num_embeddings) → (…, embedding_dim). `embedding.backward(dy)`
    scatters dy into the rows that were looked up (repeated indices add up) and returns None:
    indices have no gradient.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        dtype: DTypeLike = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_int("embedding_dim", embedding_dim)
        self.dtype = resolve_dtype(dtype)
        weight = resolve_rng(rng).standard_normal((self.num_embeddings, self.embedding_dim))
        self.register_parameter("weight", weight.astype(self.dtype))
        self._idx: np.ndarray | None = None

    def config(self) -> dict[str, int | bool | str]:
        """The constructor arguments (JSON-able): `Embedding(**embedding.config())`."""
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "dtype": self.dtype.name,
        }

    def forward(self, idx: ArrayLike) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"idx: expected integer indices, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(
                f"idx: indices must be in [0, {self.num_embeddings}), "
                f"got min {idx.min()} and max {idx.max()}"
            )
        self._idx = idx
        return self._params["weight"][idx]

    def backward(self, dy: ArrayLike) -> None:
        if self._idx is None:
            raise ValueError("Embedding.backward() called before forward()")
        dy = checked_input("dy", dy, self.dtype, (*self._idx.shape, self.embedding_dim))
        # Straight into the accumulated gradient, row by row in order (as torch's index_add_):
        # no (num_embeddings, embedding_dim) temporary, and a compiled loop when fast.
        scatter_add_rows(self._grads["weight"], self._idx, dy.reshape(-1, self.embedding_dim))

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype.name})"
