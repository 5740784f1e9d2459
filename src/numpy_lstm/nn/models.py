"""`SequenceModel`: an LSTM with an optional Linear head on every step — the composite that the
native format, `numpy-lstm convert` and the PyTorch, Keras and ONNX bridges know besides the
bare `LSTM` and `LSTMCell`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .layers import GradStateLike, Linear, State, StateLike
from .lstm import LSTM
from .module import Module
from .rnn import RNN


class SequenceModel(Module):
    """`y = head(lstm(x))`: the head (if any) maps every step's output, padded steps included.

    `y, (h_n, c_n) = model(x, hx=None, lengths=None, mask=None)` — x, hx, lengths and mask as for
    :class:`numpy_lstm.LSTM`; y (…, out_features), or the LSTM's output when there is no head.
    `dx, (dh0, dc0) = model.backward(dy, d_state)` after a forward. Parameters are named
    `lstm.*` and `head.*`, like a torch module with attributes `lstm` and `head`.
    """

    def __init__(self, lstm: LSTM, head: Linear | None = None) -> None:
        super().__init__()
        if not isinstance(lstm, LSTM):
            raise TypeError(f"lstm: expected a numpy_lstm.LSTM, got {type(lstm).__name__}")
        if head is not None:
            if not isinstance(head, Linear):
                raise TypeError(f"head: expected a numpy_lstm.Linear, got {type(head).__name__}")
            width = lstm.num_directions * lstm.output_size
            if head.in_features != width or head.dtype != lstm.dtype:
                raise ValueError(
                    f"head: expected Linear({width}, …) of dtype {lstm.dtype} to fit the LSTM's "
                    f"output, got {head!r}"
                )
        self.lstm = lstm  # a Module value: stored as a child, so keys read `lstm.*`
        if head is not None:
            self._children["head"] = head

    @property
    def head(self) -> Linear | None:
        """The Linear head, or None."""
        return self._children.get("head")

    @property
    def dtype(self) -> np.dtype:
        return self.lstm.dtype

    def config(self) -> dict[str, Any]:
        """JSON-able: `SequenceModel.from_config(model.config())` rebuilds the architecture."""
        return {
            "lstm": self.lstm.config(),
            "head": None if self.head is None else self.head.config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequenceModel:
        if not isinstance(config, dict) or set(config) != {"lstm", "head"}:
            raise ValueError(f"config: expected keys ['head', 'lstm'], got {config!r}")
        head = config["head"]
        return cls(LSTM(**config["lstm"]), None if head is None else Linear(**head))

    def forward(
        self,
        x: ArrayLike,
        hx: StateLike | None = None,
        *,
        lengths: ArrayLike | None = None,
        mask: ArrayLike | None = None,
    ) -> tuple[np.ndarray, State]:
        out, state = self.lstm(x, hx, lengths=lengths, mask=mask)
        return (out if self.head is None else self.head(out)), state

    def backward(
        self, dy: ArrayLike | None = None, d_state: GradStateLike | None = None
    ) -> tuple[np.ndarray, State]:
        if self.head is not None and dy is not None:
            # The head accumulates its gradients at once: check d_state (and that there was a
            # forward) first, so that a bad call changes nothing.
            call = self.lstm._require_cache()
            self.lstm._grad_state(d_state, call.h_shape, call.c_shape)
        d_out = dy if self.head is None or dy is None else self.head.backward(dy)
        return self.lstm.backward(d_out, d_state)

    def __repr__(self) -> str:
        head = "" if self.head is None else f", head={self.head!r}"
        return f"SequenceModel(lstm={self.lstm!r}{head})"


class SequenceToOne(Module):
    """A recurrent layer → its final hidden state (each sequence's last valid step; both
    directions concatenated when bidirectional) → Linear. For many-to-one regression and
    classification.

    The recurrent layer is an :class:`~numpy_lstm.LSTM` (kept as `model.lstm`, parameters
    `lstm.*`) or a plain :class:`~numpy_lstm.RNN` (kept as `model.rnn`, parameters `rnn.*`;
    no lengths or mask). `model.recurrent` is whichever it is.

    `y = model(x, lengths=None, mask=None)`: x (T, B, I) → y (B, out); `model.backward(dy)`
    → dx, (dh0, dc0) for an LSTM, dx, dh0 for an RNN.
    """

    def __init__(self, recurrent: LSTM | RNN, head: Linear) -> None:
        super().__init__()
        if not isinstance(recurrent, (LSTM, RNN)):
            raise TypeError(
                f"recurrent: expected a numpy_lstm.LSTM or RNN, got {type(recurrent).__name__}"
            )
        D, H_out = _directions_and_width(recurrent)
        if head.in_features != D * H_out:
            raise ValueError(f"head: expected in_features {D * H_out}, got {head.in_features}")
        # The child's name is the parameters' prefix: `lstm.*` as saved checkpoints have it.
        if isinstance(recurrent, LSTM):
            self.lstm = recurrent
        else:
            self.rnn = recurrent
        self.head = head

    @property
    def recurrent(self) -> LSTM | RNN:
        """The recurrent layer, LSTM or RNN."""
        layer: LSTM | RNN = self._children["lstm" if "lstm" in self._children else "rnn"]
        return layer

    def forward(
        self, x: ArrayLike, *, lengths: ArrayLike | None = None, mask: ArrayLike | None = None
    ) -> np.ndarray:
        recurrent = self.recurrent
        if isinstance(recurrent, LSTM):
            _, (h_n, _) = recurrent(x, lengths=lengths, mask=mask)
        elif lengths is not None or mask is not None:
            raise ValueError("lengths, mask: the plain RNN model takes neither (full sequences)")
        else:
            _, h_n = recurrent(x)
        self._h_n_shape = h_n.shape
        D, _ = _directions_and_width(recurrent)
        last_layer = h_n[-D:]  # (D, B, H_out): forward, then reverse
        return self.head(np.concatenate(list(last_layer), axis=-1))

    def backward(self, dy: ArrayLike) -> tuple[np.ndarray, State | np.ndarray]:
        """dy (B, out) → dx, (dh0, dc0) like :meth:`LSTM.backward` (dx, dh0 for an RNN)."""
        d_last = self.head.backward(dy)
        recurrent = self.recurrent
        D, H_out = _directions_and_width(recurrent)
        dh_n = np.zeros(self._h_n_shape, dtype=recurrent.dtype)
        for d in range(D):
            dh_n[-D + d] = d_last[..., d * H_out : (d + 1) * H_out]
        if isinstance(recurrent, LSTM):
            return recurrent.backward(None, (dh_n, None))
        return recurrent.backward(None, dh_n)


def _directions_and_width(recurrent: LSTM | RNN) -> tuple[int, int]:
    """(number of directions, width of each direction's h)."""
    if isinstance(recurrent, LSTM):
        return recurrent.num_directions, recurrent.output_size
    return 1, recurrent.hidden_size
