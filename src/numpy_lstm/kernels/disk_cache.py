"""The compiled kernels' cache on disk, keyed by every source of this package, never stale.

numba caches a compiled function under a hash of its own source file only. But a compiled
function holds the code of what it calls from other files too (numba links it in, and LLVM
inlines it): numba_kernels' loops hold simd's micro-kernel, unit_split's hold numba_kernels'
cell. After a change to simd.py alone — an upgrade that touches one file, a branch checked
out — numba would load numba_kernels' loops from its cache with the old micro-kernel inside
and compute with it, without a word (seen while developing: errors of 0.5 after changing a
block size in simd.py, gone once the cache was cleared).

So every function compiled by :func:`cached_jit` is keyed by a hash of all the package's
sources: a change to any of them recompiles all of its kernels (once, a minute or two). This
uses numba's list of cache locators, which is not public API; where a numba lacks it the
kernels are not cached on disk at all — slower to start, never wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

from numba import njit
from numba.core import caching

PACKAGE = Path(__file__).resolve().parent  # numpy_lstm/kernels


def sources_stamp(paths: Iterable[Path]) -> bytes:
    """A hash of these files' names and contents, in name order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


def package_stamp() -> bytes:
    """:func:`sources_stamp` of this package's sources as they are on disk now."""
    stats = tuple((p.name, p.stat()) for p in sorted(PACKAGE.glob("*.py")))
    return _stamp_of(tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats))


@cache
def _stamp_of(stats: tuple[tuple[str, int, int], ...]) -> bytes:
    """Hashed again only when a file's time or size changes (numba asks once per function)."""
    return sources_stamp(PACKAGE / name for name, _, _ in stats)


class _PackageStamped:
    """A cache locator for this package's functions only, stamped with all of its sources."""

    def get_source_stamp(self) -> bytes:
        return package_stamp()

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        if Path(py_file).resolve().parent != PACKAGE:
            return None  # someone else's function: numba's own locators
        return super().from_function(py_func, py_file)  # type: ignore[misc]


def _numba(name: str) -> Any:
    """numba.core.caching's `name`, as numba spells it now or with the leading underscore of
    older releases; None if neither."""
    return getattr(caching, name, None) or getattr(caching, "_" + name, None)


def _locators() -> list[type] | None:
    """Ours, one per numba locator that finds a cache directory for a source file
    ($NUMBA_CACHE_DIR, beside the file, the user's cache), or None where this numba has no
    such list."""
    names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    bases = [_numba(name) for name in names]
    if not isinstance(getattr(_numba("CacheImpl"), "_locator_classes", None), list):
        return None
    if not all(isinstance(base, type) for base in bases):
        return None
    return [type(f"PackageStamped{base.__name__}", (_PackageStamped, base), {}) for base in bases]


@cache
def _installed() -> bool:
    """Put our locators first in numba's list (once); whether that was possible."""
    ours = _locators()
    if ours is None:
        return False
    classes: list[Any] = _numba("CacheImpl")._locator_classes
    if not any(issubclass(cls, _PackageStamped) for cls in classes):
        classes[:0] = ours
    return True


def cached_jit(**options: Any) -> Callable[..., Any]:
    """numba's `njit(**options)`, cached on disk keyed by all of this package's sources — or not
    cached where that key cannot be had (see the module's docstring)."""
    return njit(cache=_installed(), **options)
