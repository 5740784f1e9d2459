"""Prepared copies of weights — packed panels, [W_hh, W_ih] side by side, transposes — kept
across calls while the weights' version (:mod:`numpy_lstm.kernels.versions`) and the source
arrays are unchanged: a streaming call (B = 1, one step) would otherwise spend most of its time
preparing them, and a large Linear head a tenth of its product.

Only read-only sources are cached: parameters are read-only arrays whose every change moves the
version on, but a writable array (weights a caller hands the kernels directly) could change in
place without anyone knowing, so for it the copy is made afresh on every call.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import numpy as np

from .versions import weights_version

# At most this many copies are kept (a 2-layer bidirectional model uses 16, a Linear head two),
# the least recently used dropped first.
ENTRIES = 32
_entries: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = OrderedDict()
_lock = threading.Lock()
_died: list[tuple[Any, ...]] = []  # keys whose source array was freed: dropped at the next use
Prepared = TypeVar("Prepared")


def reused(
    how: tuple[Any, ...], sources: Sequence[np.ndarray | None], make: Callable[[], Prepared]
) -> Prepared:
    """make(), or what it returned for the same `how` and sources while nothing changed them.

    The key holds the sources' ids; an id names the same array only while that array lives, so
    each source is held by a weak reference whose callback retires the key when the array is
    freed (a cached copy never keeps a model alive). An entry found is therefore always valid,
    with no per-call check of the sources — a streaming call looks up two of them. A writable
    source is never cached (see above)."""
    if any(a is not None and a.flags.writeable for a in sources):
        return make()
    key = (*how, weights_version(), *map(id, sources))  # the version is read before make()
    with _lock:
        _drop_died()
        entry = _entries.get(key)
        if entry is not None:
            _entries.move_to_end(key)
            return cast(Prepared, entry[1])
    value = make()
    # The callback may run on any thread, even inside the locked block (a collection): it only
    # appends to a list, which needs no lock.
    refs = tuple(weakref.ref(a, _retirer(key)) for a in sources if a is not None)
    with _lock:
        _drop_died()
        _entries[key] = (refs, value)
        while len(_entries) > ENTRIES:
            _entries.popitem(last=False)
    return value


def _retirer(key: tuple[Any, ...]) -> Callable[[weakref.ReferenceType[Any]], None]:
    """The weak-reference callback that retires `key` when its source array is freed."""
    return lambda _: _died.append(key)


def _drop_died() -> None:
    """Forget the entries of freed source arrays (call with the lock held)."""
    while _died:
        _entries.pop(_died.pop(), None)
