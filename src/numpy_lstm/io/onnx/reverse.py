"""ONNX's `direction="reverse"` LSTM: the forward recurrence run over each sequence's valid steps
from the last to the first, its outputs in the input's own time order.

A stack of reverse layers is the forward stack on the reversed sequence, reversed back: the
reversals between two layers cancel (each reverses only the valid steps 0 … L_b − 1, and past
L_b both sides are zeros). So :class:`ReverseTime` wraps a numpy-lstm model instead of needing
a reverse-only option in LSTM itself; a Linear head, applied per step, commutes with it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ...core.validation import valid_steps
from ...nn.layers import GradStateLike, State, StateLike
from ...nn.lstm import LSTM
from ...nn.models import SequenceModel
from ...nn.module import Module


class ReverseTime(Module):
    """A stack of ONNX `direction="reverse"` LSTM nodes: `inner` (a unidirectional LSTM, or a
    SequenceModel on one) run on each sequence's valid steps in reverse order, with its output
    put back in the original order — y[t] has read steps L_b − 1, …, t; zeros past L_b.

    `y, (h_n, c_n) = model(x, hx=None, lengths=None)`: shapes as the inner model's; h_n, c_n are
    the states after step 0 (ONNX's Y_h, Y_c). `model.backward(dy, d_state)` reverses dx back.
    The native format cannot hold it (save `model.inner` and reverse the input yourself).
    """

    def __init__(self, inner: LSTM | SequenceModel) -> None:
        super().__init__()
        lstm = inner if isinstance(inner, LSTM) else inner.lstm
        if not isinstance(lstm, LSTM) or lstm.bidirectional or lstm.mask_output != "zero":
            # "carry" would put the carried h at the wrong end of a reversed sequence.
            raise ValueError(
                f"inner: expected a unidirectional LSTM model with mask_output='zero', "
                f"got {inner!r}"
            )
        self.inner = inner
        self._index: np.ndarray | None = None

    @property
    def dtype(self) -> np.dtype:
        return self.inner.dtype

    @property
    def lstm(self) -> LSTM:
        return self.inner if isinstance(self.inner, LSTM) else self.inner.lstm

    def forward(
        self, x: ArrayLike, hx: StateLike | None = None, *, lengths: ArrayLike | None = None
    ) -> tuple[np.ndarray, State]:
        x = np.asarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"x: expected a 3-D batch or an unbatched (T, I) x, got {x.shape}")
        batched = x.ndim == 3
        time_axis = 1 if batched and self.lstm.batch_first else 0
        steps = x.shape[time_axis]
        batch = x.shape[1 - time_axis] if batched else None
        valid = valid_steps(lengths, None, batch, steps)
        counts = np.full(batch or (), steps) if valid is None else valid.sum(-1)
        t = np.arange(steps)[:, None] if batched else np.arange(steps)
        # (T, B) or (T,): where step t of the reversed sequence comes from (an involution).
        self._index = np.where(t < counts, counts - 1 - t, t)
        y, state = self.inner(self._reorder(x, time_axis), hx, lengths=lengths)
        return self._reorder(y, time_axis), state

    def backward(
        self, dy: ArrayLike | None = None, d_state: GradStateLike | None = None
    ) -> tuple[np.ndarray, State]:
        """The inner model's backward on dy reordered as its y was, dx reordered back."""
        if self._index is None:
            raise RuntimeError("backward: call forward first")
        time_axis = 1 if self._index.ndim == 2 and self.lstm.batch_first else 0
        inner_dy = None if dy is None else self._reorder(np.asarray(dy), time_axis)
        dx, d_state0 = self.inner.backward(inner_dy, d_state)
        return self._reorder(dx, time_axis), d_state0

    def _reorder(self, a: np.ndarray, time_axis: int) -> np.ndarray:
        """a (…, T, …, F) with each sequence's valid steps reversed along `time_axis`."""
        assert self._index is not None
        steps_first = np.moveaxis(a, time_axis, 0)
        if self._index.ndim == 2:
            reordered = steps_first[self._index, np.arange(self._index.shape[1])]
        else:
            reordered = steps_first[self._index]
        return np.ascontiguousarray(np.moveaxis(reordered, 0, time_axis))

    def __repr__(self) -> str:
        return f"ReverseTime({self.inner!r})"
