"""Initialisation schemes for LSTM parameters, by torch parameter name.

- "torch": every parameter ~ U(−1/√H, 1/√H) (torch.nn.LSTM's `reset_parameters`).
- "keras": Keras 3's LSTM defaults — glorot_uniform input kernel, orthogonal recurrent kernel,
  zero biases with `unit_forget_bias` (the forget block of the bias is 1). Keras keeps one bias;
  we put it in `bias_ih` and leave `bias_hh` zero, so the sum is the same. The projection
  `weight_hr` (which Keras lacks) gets glorot_uniform.
- a callable `init(name, shape, rng) -> array`, called once per parameter in torch's order.

A separate `forget_bias` (Jozefowicz et al. 2015 recommend 1) is applied afterwards by the layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

Initializer = Callable[[str, tuple[int, ...], np.random.Generator], ArrayLike]
SCHEMES = ("torch", "keras")


def check_scheme(init: Any) -> str | Initializer:
    if callable(init) or init in SCHEMES:
        return init
    raise ValueError(
        f"init: expected one of {SCHEMES} or a callable(name, shape, rng), got {init!r}"
    )


def glorot_uniform(
    rng: np.random.Generator, fan_in: int, fan_out: int, shape: tuple[int, ...]
) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (whichever is fewer), uniformly
    distributed: QR of a Gaussian matrix with the signs of R's diagonal folded into Q."""
    flip = rows < cols
    a = rng.standard_normal((cols, rows) if flip else (rows, cols))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return q.T if flip else q


def initial_value(
    scheme: str | Initializer,
    name: str,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    hidden_size: int,
    dtype: np.dtype,
) -> np.ndarray:
    """The initial value of the parameter `name` (torch's name, e.g. 'weight_hh_l1_reverse')."""
    if callable(scheme):
        value = np.asarray(scheme(name, shape, rng))
        if value.shape != shape or value.dtype.kind != "f":
            raise ValueError(
                f"init: returned {value.dtype} array of shape {value.shape} for {name}, "
                f"expected a float array of shape {shape}"
            )
        return value.astype(dtype)
    kind = re.sub(r"_l\d+(_reverse)?$", "", name)  # 'weight_hh_l1_reverse' → 'weight_hh'
    if kind.startswith("ln_weight"):  # layer-norm gains start at 1 and biases at 0
        return np.ones(shape, dtype=dtype)
    if kind.startswith("ln_bias"):
        return np.zeros(shape, dtype=dtype)
    if scheme == "torch":
        bound = 1.0 / np.sqrt(hidden_size)
        return rng.uniform(-bound, bound, size=shape).astype(dtype)
    # Keras: kernels are stored transposed relative to torch, (in, 4H) and (H_out, 4H).
    if kind == "weight_ih":
        return glorot_uniform(rng, shape[1], shape[0], shape).astype(dtype)
    if kind == "weight_hh":
        return orthogonal(rng, shape[1], shape[0]).T.astype(dtype)
    if kind == "weight_hr":
        return glorot_uniform(rng, shape[1], shape[0], shape).astype(dtype)
    if kind == "weight_peephole":
        return np.zeros(shape, dtype=dtype)
    bias = np.zeros(shape, dtype=dtype)
    if kind == "bias_ih":  # unit_forget_bias
        bias[hidden_size : 2 * hidden_size] = 1
    return bias
