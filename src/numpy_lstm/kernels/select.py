"""Where the layers get their sequence kernels: the single switch between the pure-NumPy
reference (:mod:`numpy_lstm.core.sequence`) and the compiled fast path
(:mod:`numpy_lstm.kernels.fast`).

Every kernel takes and returns exactly what :func:`numpy_lstm.core.sequence.lstm_forward` and
:func:`numpy_lstm.core.sequence.lstm_backward` do; the reference stays the oracle that tests hold
the fast path to. The fast path runs when numba is installed, the switch is on, and the call's
options are ones it covers (the plain cell with masks, reverse, carried outputs, projection);
anything else — peepholes, layer norm, other activations, clip, recurrent dropout, zoneout —
runs the reference. The backward always runs the kernel that made the cache.

The switch: the environment variable ``NUMPY_LSTM_FAST=0`` turns the fast path off at import;
``use_fast(False)`` turns it off (and, used as ``with use_fast(False): ...``, back on after).
``counts`` tallies the forward calls each path ran.
"""

from __future__ import annotations

import os
from collections import Counter
from types import TracebackType

import numpy as np

from ..core.cell import LSTMWeights
from ..core.options import SequenceOptions
from ..core.sequence import SequenceCache, SequenceGrads, lstm_backward, lstm_forward
from . import fast
from .cache import BackwardCall, Cache, ForwardCall, ForwardResult

_enabled = os.environ.get("NUMPY_LSTM_FAST", "1").strip().lower() not in ("0", "false", "no")
counts: Counter[str] = Counter()  # forward calls per path: "fast", "reference"


class use_fast:  # lower case: it is called like a function, use_fast(False)
    """Turn the fast path on or off from now on; as a context manager, restore the previous
    setting on exit."""

    def __init__(self, enabled: bool = True) -> None:
        global _enabled
        self._previous = _enabled
        _enabled = bool(enabled)

    def __enter__(self) -> use_fast:
        return self

    def __exit__(
        self, kind: type | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        global _enabled
        _enabled = self._previous


def fast_enabled() -> bool:
    """Whether the fast path is switched on and importable (numba installed and working)."""
    return _enabled and fast.load() is not None


def sequence_forward(
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    w: LSTMWeights,
    options: SequenceOptions | None = None,
) -> ForwardResult:
    """Forward over a sequence with the best available kernel (see lstm_forward for the args)."""
    options = SequenceOptions() if options is None else options
    if _enabled and (kernels := fast.load()) is not None and kernels.supports(x, w, options):
        counts["fast"] += 1
        return kernels.forward(x, h0, c0, w, options)
    counts["reference"] += 1
    return lstm_forward(x, h0, c0, w, options)


def sequence_forward_side_by_side(calls: list[ForwardCall]) -> list[ForwardResult]:
    """[sequence_forward(*call) for call in calls], for calls that do not depend on each other
    (the two directions of a layer): on the fast path they run at the same time, each on its
    share of the kernels' threads."""
    kernels = fast.load() if _enabled else None
    if kernels is None or not all(kernels.supports(x, w, o) for x, _, _, w, o in calls):
        return [sequence_forward(*call) for call in calls]
    counts["fast"] += len(calls)
    return kernels.forward_side_by_side(calls)


def sequence_backward_side_by_side(
    calls: list[BackwardCall], record: bool = False
) -> list[SequenceGrads]:
    """[sequence_backward(*call, record) for call in calls], for calls that do not depend on
    each other: the fast path's run at the same time when their forwards did."""
    kernels = fast.load()
    if record or kernels is None or any(isinstance(c[-1], SequenceCache) for c in calls):
        return [sequence_backward(*call, record=record) for call in calls]
    return kernels.backward_side_by_side(calls)


def sequence_backward(
    d_out: np.ndarray | None,
    dh_n: np.ndarray | None,
    dc_n: np.ndarray | None,
    cache: Cache,
    record: bool = False,
) -> SequenceGrads:
    """Backward with the kernel that produced `cache` (`record`: per-step dh, dc; reference)."""
    if isinstance(cache, SequenceCache):
        return lstm_backward(d_out, dh_n, dc_n, cache, record)
    if record:  # the compiled loops keep no per-step gradients
        raise ValueError(
            "record: per-step gradients need a forward run with record=True (which uses the "
            "reference kernels); this forward ran the fast kernels"
        )
    kernels = fast.load()
    if kernels is None:  # unreachable: only a loaded fast path makes other caches
        raise TypeError(f"cache: expected a cache of a forward pass, got {type(cache).__name__}")
    return kernels.backward(d_out, dh_n, dc_n, cache)
