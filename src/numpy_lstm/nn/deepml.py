"""The Deep-ML problem #59 LSTM class, exactly as the problem states it, as a view on our core.

Deep-ML keeps one weight matrix per gate over the concatenation ``[h, x]`` (h first) and column
vectors for everything::

    Wf, Wi, Wc, Wo: (H, H + I)     bf, bi, bc, bo: (H, 1)
    f = σ(Wf·[h; x] + bf)   the Eraser        i = σ(Wi·[h; x] + bi)   the Filter
    c̃ = tanh(Wc·[h; x] + bc) the Writer       o = σ(Wo·[h; x] + bo)   the Presenter

Mapping to PyTorch's layout (gate order i, f, g, o, g being Deep-ML's c)::

    weight_ih = [Wi[:, H:]; Wf[:, H:]; Wc[:, H:]; Wo[:, H:]]     (4H, I)  — the x columns
    weight_hh = [Wi[:, :H]; Wf[:, :H]; Wc[:, :H]; Wo[:, :H]]     (4H, H)  — the h columns
    bias_ih   = [bi; bf; bc; bo] flattened                      (4H,)
    bias_hh   = 0                                               (4H,)

`forward` reads the attributes on every call and runs the same pure functions as
:class:`numpy_lstm.LSTM`, so setting ``lstm.Wf = ...`` changes the computation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.cell import LSTMWeights
from ..core.sequence import lstm_forward
from ..core.validation import check_finite, check_int, resolve_rng

_WEIGHTS = ("Wi", "Wf", "Wc", "Wo")  # in PyTorch's gate order i, f, g, o
_BIASES = ("bi", "bf", "bc", "bo")


def _real_array(name: str, value: npt.ArrayLike) -> np.ndarray:
    """Deep-ML passes plain lists of numbers: accept any real numbers, compute in float64."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    check_finite(name, array)
    return array


def _as_column(name: str, value: npt.ArrayLike, size: int) -> np.ndarray:
    """A state given as (H, 1) — Deep-ML's shape — or (H,) → (H, 1)."""
    array = _real_array(name, value)
    if array.shape not in ((size, 1), (size,)):
        raise ValueError(f"{name}: expected shape ({size}, 1), got {array.shape}")
    return array.reshape(size, 1)


class LSTM:
    """Deep-ML #59: ``LSTM(input_size, hidden_size)`` with ``forward(x, h0, c0)``.

    x: (T, I) — one row per time step (a (T, I, 1) stack of columns is accepted too);
    initial_hidden_state, initial_cell_state: (H, 1).
    Returns outputs (T, H, 1) (h after every step), final_h (H, 1), final_c (H, 1).

    Weights start as Deep-ML's do: standard normal weights, zero biases (from `rng`, a
    Generator or seed — never the global RNG).
    """

    input_size: int
    hidden_size: int
    Wf: np.ndarray
    Wi: np.ndarray
    Wc: np.ndarray
    Wo: np.ndarray
    bf: np.ndarray
    bi: np.ndarray
    bc: np.ndarray
    bo: np.ndarray

    def __init__(
        self, input_size: int, hidden_size: int, *, rng: np.random.Generator | int | None = None
    ) -> None:
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        rng = resolve_rng(rng)
        for name in ("Wf", "Wi", "Wc", "Wo"):  # Deep-ML's order of initialisation
            setattr(self, name, rng.standard_normal((hidden_size, hidden_size + input_size)))
        for name in ("bf", "bi", "bc", "bo"):
            setattr(self, name, np.zeros((hidden_size, 1)))

    def __setattr__(self, name: str, value: Any) -> None:  # any attribute, so any value
        # The gate parameters are checked when set, so a wrong shape fails here, not mid-forward.
        if name in _WEIGHTS or name in _BIASES:
            H, I = self.hidden_size, self.input_size  # set first by __init__
            value = _real_array(name, value)
            expected = (H, H + I) if name in _WEIGHTS else (H, 1)
            if value.shape != expected:
                raise ValueError(f"{name}: expected shape {expected}, got {value.shape}")
        object.__setattr__(self, name, value)

    def torch_weights(self) -> LSTMWeights:
        """The current attributes in PyTorch's layout (see the module docstring)."""
        H = self.hidden_size
        gate_weights = [getattr(self, name) for name in _WEIGHTS]
        bias = np.concatenate([getattr(self, name)[:, 0] for name in _BIASES])
        return LSTMWeights(
            weight_ih=np.concatenate([w[:, H:] for w in gate_weights]),
            weight_hh=np.concatenate([w[:, :H] for w in gate_weights]),
            bias_ih=bias,
            bias_hh=np.zeros_like(bias),
        )

    def torch_state_dict(self) -> dict[str, np.ndarray]:
        """A state dict that `torch.nn.LSTM(input_size, hidden_size)` (or ours) loads as is."""
        weights = self.torch_weights()._asdict().items()
        return {f"{name}_l0": array for name, array in weights if array is not None}

    def forward(
        self,
        x: npt.ArrayLike,
        initial_hidden_state: npt.ArrayLike,
        initial_cell_state: npt.ArrayLike,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        H, I = self.hidden_size, self.input_size
        x = _real_array("x", x)
        if x.ndim == 3 and x.shape[2] == 1:
            x = x[:, :, 0]
        if x.ndim != 2 or x.shape[1] != I or x.shape[0] == 0:
            raise ValueError(f"x: expected shape (T, {I}) with T ≥ 1, got {x.shape}")
        h0 = _as_column("initial_hidden_state", initial_hidden_state, H)
        c0 = _as_column("initial_cell_state", initial_cell_state, H)
        outputs, h_n, c_n, _ = lstm_forward(x[:, None, :], h0.T, c0.T, self.torch_weights())
        return outputs.reshape(-1, H, 1), h_n.T, c_n.T
