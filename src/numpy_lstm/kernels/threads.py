"""How many threads the compiled kernels may use: one setting for the whole library."""

from __future__ import annotations

import os

_threads: int | None = None


def set_num_threads(n: int | None) -> int | None:
    """Use at most n threads in the fast kernels (None: $NUMPY_LSTM_NUM_THREADS, else all
    cores); returns the previous setting. Each call still picks how many it uses from its
    shape: small ones run on one."""
    global _threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected a positive integer or None, got {n!r}")
    previous, _threads = _threads, n
    return previous


def get_num_threads() -> int:
    """The thread limit in force (see :func:`set_num_threads`)."""
    if _threads is not None:
        return _threads
    if env := os.environ.get("NUMPY_LSTM_NUM_THREADS", "").strip():
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"$NUMPY_LSTM_NUM_THREADS: expected a positive integer, got {env!r}")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
