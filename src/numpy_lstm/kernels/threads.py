"""How many threads the compiled kernels may use (one setting for the whole library), the pool
they run on, and BLAS held to one thread beside them."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..core.validation import check_int

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

_threads: int | None = None


def set_num_threads(n: int | None) -> int | None:
    """Use at most n threads in the fast kernels (None: $NUMPY_LSTM_NUM_THREADS, else all
    cores); returns the previous setting. Each call still picks how many it uses from its
    shape: small ones run on one."""
    global _threads
    previous, _threads = _threads, None if n is None else check_int("n", n)
    return previous


def get_num_threads() -> int:
    """The thread limit in force (see :func:`set_num_threads`)."""
    if _threads is not None:
        return _threads
    if env := os.environ.get("NUMPY_LSTM_NUM_THREADS", "").strip():
        return check_int("$NUMPY_LSTM_NUM_THREADS", int(env) if env.isdigit() else env)
    return cores()


def cores() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Hold BLAS (NumPy's matrix products) to at most n threads inside the block; None leaves it
    as it is. The previous limits come back after it, even on an error.

    Why it matters: OpenBLAS keeps its threads spinning ~0.1 s after every call, each taking a
    core from our own threads — measured, a two-thread forward right after a threaded product ran
    no faster than one thread."""
    if n is None:
        yield
        return
    with _blas_controller().limit(limits=check_int("n", n), user_api="blas"):
        yield


_controller: ThreadpoolController | None = None
_modules_when_made = 0


def _blas_controller() -> ThreadpoolController:
    """One controller for the process (making one inspects every loaded library, ~ms), made
    again only when modules were imported since: a new extension may have loaded a BLAS of its
    own (SciPy's OpenBLAS beside NumPy's), which a controller made before would not hold."""
    global _controller, _modules_when_made
    if _controller is None or len(sys.modules) != _modules_when_made:
        from threadpoolctl import ThreadpoolController  # imported when first needed

        _controller = ThreadpoolController()
        _modules_when_made = len(sys.modules)
    return _controller


_pool: ThreadPoolExecutor | None = None
_pool_threads = 0


def run_parallel(work: Callable[[int, int], None], chunks: list[tuple[int, int]]) -> None:
    """work(start, stop) for every range in `chunks`: all but the first on the library's pool
    (threads that sleep when idle; work that releases the GIL — compiled kernels, BLAS — runs
    truly in parallel), the first on this thread. Returns when all are done; the first error
    raised is raised here."""
    global _pool, _pool_threads
    if len(chunks) == 1:
        work(*chunks[0])
        return
    if _pool is None or _pool_threads < len(chunks) - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool_threads = len(chunks) - 1
        _pool = ThreadPoolExecutor(_pool_threads, thread_name_prefix="numpy_lstm")
    futures = [_pool.submit(work, start, stop) for start, stop in chunks[1:]]
    work(*chunks[0])
    for future in futures:
        future.result()
