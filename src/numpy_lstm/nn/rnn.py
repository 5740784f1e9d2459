"""`RNN`: the plain (Elman) recurrent layer, like `torch.nn.RNN`, over the pure functions of
:mod:`numpy_lstm.core.rnn` — the baseline that shows what the LSTM's memory is for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..core.rnn import NONLINEARITIES, Nonlinearity, RNNCache, RNNGrads, RNNWeights
from ..core.rnn import rnn_backward as _rnn_backward
from ..core.rnn import rnn_forward as _rnn_forward
from ..core.validation import (
    as_float_array,
    check_finite,
    check_int,
    checked_input,
    resolve_dtype,
    resolve_rng,
)
from .layers import uniform_init
from .module import Module


@dataclass(frozen=True)
class _RNNCall:
    """One forward pass: a cache per layer and how the user's arrays were laid out."""

    caches: list[RNNCache]
    batched: bool
    out_shape: tuple[int, ...]
    h_shape: tuple[int, ...]


class RNN(Module):
    """A multi-layer Elman RNN, like `torch.nn.RNN`: h_t = φ(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ
    + b_hh), φ = tanh (default) or relu.

    Parameters per layer k: `weight_ih_l{k}` (H, I_k), `weight_hh_l{k}` (H, H), `bias_ih_l{k}`,
    `bias_hh_l{k}` (H,); I_0 = input_size, I_k = H. Initialised U(±1/√H) like torch.

    `out, h_n = rnn(x, h0=None)`: x (T, B, I), or (B, T, I) with batch_first, or unbatched
    (T, I); h0, h_n (num_layers, B, H) (no B axis if unbatched); out the last layer's h at
    every step, laid out like x with H features.
    `dx, dh0 = rnn.backward(d_out, dh_n=None)`: either upstream gradient may be None; parameter
    gradients accumulate in `rnn.grads`. `rnn.backward_pass(..., record=True)` returns the
    per-layer :class:`~numpy_lstm.core.rnn.RNNGrads` (with every step's dh) without touching
    `grads`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: Nonlinearity = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        *,
        dtype: DTypeLike = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity: expected one of {NONLINEARITIES}, got {nonlinearity!r}"
            )
        self.nonlinearity: Nonlinearity = nonlinearity
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dtype = resolve_dtype(dtype)
        generator = resolve_rng(rng)
        H, bound = self.hidden_size, 1.0 / np.sqrt(self.hidden_size)
        for k in range(self.num_layers):
            shapes: dict[str, tuple[int, ...]] = {
                "weight_ih": (H, self.input_size if k == 0 else H),
                "weight_hh": (H, H),
            }
            if self.bias:
                shapes |= {"bias_ih": (H,), "bias_hh": (H,)}
            for field, shape in shapes.items():  # torch's order, so one seed draws alike
                self.register_parameter(
                    f"{field}_l{k}", uniform_init(generator, bound, shape, self.dtype)
                )
        self._cache: _RNNCall | None = None

    def layer_weights(self, layer: int = 0) -> RNNWeights:
        """The live parameters of one layer, as the pure functions take them."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer: expected 0 ≤ layer < {self.num_layers}, got {layer}")
        fields = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return RNNWeights(**{f: self._params.get(f"{f}_l{layer}") for f in fields})

    def config(self) -> dict[str, int | bool | str]:
        """The constructor arguments (JSON-able): `RNN(**rnn.config())`."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "nonlinearity": self.nonlinearity,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dtype": self.dtype.name,
        }

    # -- layout -------------------------------------------------------------------------------
    def _to_time_major(self, a: np.ndarray, batched: bool) -> np.ndarray:
        if not batched:
            return a[:, None]
        return a.transpose(1, 0, 2) if self.batch_first else a

    def _from_time_major(self, a: np.ndarray, batched: bool) -> np.ndarray:
        if not batched:
            return a[:, 0]
        return a.transpose(1, 0, 2) if self.batch_first else a

    # -- forward / backward -------------------------------------------------------------------
    def forward(self, x: ArrayLike, h0: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """See the class docstring."""
        x = as_float_array("x", x, self.dtype)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(
                f"x: expected shape {layout} or unbatched (T, I) with I = {self.input_size}, "
                f"got {x.shape}"
            )
        check_finite("x", x)
        batched = x.ndim == 3
        x_tm = self._to_time_major(x, batched)
        T, B = x_tm.shape[:2]
        if T == 0:
            raise ValueError(f"x: the sequence is empty (T = 0), shape {x.shape}")
        h_shape = (
            (self.num_layers, B, self.hidden_size)
            if batched
            else (
                self.num_layers,
                self.hidden_size,
            )
        )
        if h0 is None:
            h0_b = np.zeros((self.num_layers, B, self.hidden_size), dtype=self.dtype)
        else:
            h0_checked = checked_input("h0", h0, self.dtype, h_shape)
            h0_b = h0_checked if batched else h0_checked[:, None]
        caches, h_n = [], []
        layer_input = x_tm
        for k in range(self.num_layers):
            layer_input, h_last, cache = _rnn_forward(
                layer_input, h0_b[k], self.layer_weights(k), self.nonlinearity
            )
            caches.append(cache)
            h_n.append(h_last)
        out = self._from_time_major(layer_input, batched)
        self._cache = _RNNCall(caches, batched, out.shape, h_shape)
        h_n_b = np.stack(h_n)
        return out, (h_n_b if batched else h_n_b[:, 0])

    def backward(
        self, d_out: ArrayLike | None = None, dh_n: ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """→ dx (like x), dh0 (like h0); parameter gradients accumulate in `grads`."""
        dx, dh0, grads = self.backward_pass(d_out, dh_n)
        for k, g in enumerate(grads):
            d = g.dweights
            self._accumulate(
                {
                    f"{field}_l{k}": value
                    for field, value in vars(d).items()
                    if value is not None and f"{field}_l{k}" in self._params
                }
            )
        return dx, dh0

    def backward_pass(
        self,
        d_out: ArrayLike | None = None,
        dh_n: ArrayLike | None = None,
        *,
        record: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, list[RNNGrads]]:
        """BPTT through the last forward without touching `grads`: dx, dh0 and every layer's
        :class:`~numpy_lstm.core.rnn.RNNGrads` (with `record`, every step's dh (T, B, H))."""
        if self._cache is None:
            raise ValueError(
                "RNN.backward() called before forward(): there is no forward pass to differentiate"
            )
        call = self._cache
        d_layer_output = None
        if d_out is not None:
            d_out = checked_input("d_out", d_out, self.dtype, call.out_shape)
            d_layer_output = self._to_time_major(d_out, call.batched)
        dh_n_b = None
        if dh_n is not None:
            dh_n_c = checked_input("dh_n", dh_n, self.dtype, call.h_shape)
            dh_n_b = dh_n_c if call.batched else dh_n_c[:, None]
        grads: list[RNNGrads] = []
        for k in reversed(range(self.num_layers)):
            g = _rnn_backward(
                d_layer_output,
                None if dh_n_b is None else dh_n_b[k],
                call.caches[k],
                self.layer_weights(k),
                record=record,
            )
            grads.insert(0, g)
            d_layer_output = g.dx
        assert d_layer_output is not None  # the first layer's loop set it
        dh0 = np.stack([g.dh0 for g in grads])
        dx = self._from_time_major(d_layer_output, call.batched)
        return dx, (dh0 if call.batched else dh0[:, 0]), grads

    def extra_repr(self) -> str:
        shown = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            shown.append(f"num_layers={self.num_layers}")
        if self.nonlinearity != "tanh":
            shown.append(f"nonlinearity={self.nonlinearity!r}")
        if not self.bias:
            shown.append("bias=False")
        if self.batch_first:
            shown.append("batch_first=True")
        return ", ".join(shown)

    def __repr__(self) -> str:
        return f"RNN({self.extra_repr()}, dtype={self.dtype.name})"
