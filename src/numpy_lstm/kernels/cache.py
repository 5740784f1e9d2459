"""What the layers may read from a forward cache, whichever kernel made it.

The reference kernel's :class:`numpy_lstm.core.sequence.SequenceCache` and the fast path's
:class:`numpy_lstm.kernels.numba_driver.FastCache` both provide it; everything else in a cache
belongs to the kernel's own backward (:func:`numpy_lstm.kernels.select.sequence_backward`
hands each cache back to the kernel that made it).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..core.cell import LSTMWeights
from ..core.options import SequenceOptions


class Cache(Protocol):
    """One layer-direction's forward pass, in *processing* order (reversed if `reverse`)."""

    @property
    def h(self) -> np.ndarray:
        """(T+1, B, H_out): h[0] = h0, h[s+1] = the state after the s-th step processed."""
        ...

    @property
    def c(self) -> np.ndarray:
        """(T+1, B, H): the memory, laid out like `h`."""
        ...

    @property
    def gates(self) -> np.ndarray:
        """(T, B, 4H): the gate values i, f, g, o of every step."""
        ...

    def state(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(h, c) after the first `steps` steps processed, (B, H_out) and (B, H): the caller's
        own copies of h[steps] and c[steps], without copying the others."""
        ...

    @property
    def reverse(self) -> bool:
        """Whether the steps ran from the last to the first."""
        ...


# One sequence call as the kernels take it, and what they return: the arguments and results of
# numpy_lstm.core.sequence.lstm_forward (x, h0, c0, w, options → out, h_n, c_n, cache) and
# lstm_backward (d_out, dh_n, dc_n, cache).
ForwardCall = tuple[np.ndarray, np.ndarray, np.ndarray, LSTMWeights, SequenceOptions]
ForwardResult = tuple[np.ndarray, np.ndarray, np.ndarray, Cache]
BackwardCall = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, Cache]
