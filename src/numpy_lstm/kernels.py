"""Where the layers get their sequence kernels: the single switch between the pure-NumPy
reference (:mod:`numpy_lstm.sequence`) and any faster implementation.

Every kernel takes and returns exactly what :func:`numpy_lstm.sequence.lstm_forward` and
:func:`numpy_lstm.sequence.lstm_backward` do; the reference stays the oracle that tests hold a
fast path to.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .sequence import SequenceGrads, lstm_backward, lstm_forward


def sequence_forward(
    x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w: Any, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Forward over a sequence with the best available kernel (see lstm_forward for the args)."""
    return lstm_forward(x, h0, c0, w, **options)


def sequence_backward(
    d_out: np.ndarray | None, dh_n: np.ndarray | None, dc_n: np.ndarray | None, cache: Any
) -> SequenceGrads:
    """Backward with the kernel that produced `cache`."""
    return lstm_backward(d_out, dh_n, dc_n, cache)
