"""The compiled kernels are cached on disk and never stale: a change to any source of the
kernels package — not only the file a kernel is written in — compiles its kernels afresh.

numba keys a cached function by its own file only, while the code it holds includes what it
calls from other files; the oracle here is numba itself, run in fresh processes on a copy of
the package whose sources the test edits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core import caching

import numpy_lstm
from numpy_lstm.kernels import disk_cache

pytestmark = pytest.mark.skipif(
    disk_cache._locators() is None, reason="this numba has no list of cache locators"
)

# Two kernels in two files of the package, the first calling the second: numba links the
# callee's code into the caller's, and LLVM inlines it.
CALLER = """
from .disk_cache import cached_jit
from ._probe_callee import value


@cached_jit()
def caller():
    return value() + 0.5
"""
CALLEE = """
from .disk_cache import cached_jit


@cached_jit()
def value():
    return {value}
"""


def package_copy(root: Path) -> Path:
    """numpy_lstm copied under root, without compiled caches, with the two probe kernels."""
    source = Path(numpy_lstm.__file__).parent
    shutil.copytree(source, root / "numpy_lstm", ignore=shutil.ignore_patterns("__pycache__"))
    kernels = root / "numpy_lstm" / "kernels"
    (kernels / "_probe_caller.py").write_text(CALLER)
    (kernels / "_probe_callee.py").write_text(CALLEE.format(value=1.0))
    return kernels


def caller_in_a_new_process(root: Path) -> str:
    """caller() of the copy under root, and whether it came from the disk cache."""
    script = (
        "from numpy_lstm.kernels._probe_caller import caller\n"
        "print(caller(), sum(caller.stats.cache_hits.values()))"
    )
    env = {**os.environ, "PYTHONPATH": str(root), "NUMBA_CACHE_DIR": str(root / "numba-cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_change_to_a_called_kernels_file_recompiles_its_callers(tmp_path: Path) -> None:
    kernels = package_copy(tmp_path)
    assert caller_in_a_new_process(tmp_path) == "1.5 0"  # compiled, then saved
    assert caller_in_a_new_process(tmp_path) == "1.5 1"  # loaded from the disk cache
    # Only the callee's file changes: numba alone would load the caller with 1.0 inside.
    (kernels / "_probe_callee.py").write_text(CALLEE.format(value=2.0))
    assert caller_in_a_new_process(tmp_path) == "2.5 0"
    assert caller_in_a_new_process(tmp_path) == "2.5 1"


def test_kernels_from_elsewhere_keep_numbas_own_cache_keys(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.py").write_text(
        CALLEE.replace("from .disk_cache", "from numpy_lstm.kernels.disk_cache").format(value=3.0)
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import elsewhere  # type: ignore[import-not-found]  # written above

        assert elsewhere.value() == 3.0
        locator = elsewhere.value._cache._impl.locator
        assert type(locator).__name__ and not isinstance(locator, disk_cache._PackageStamped)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("elsewhere", None)


def test_where_numba_has_no_locator_list_kernels_are_compiled_but_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(caching.CacheImpl, "_locator_classes")
    disk_cache._installed.cache_clear()
    try:
        kernel = disk_cache.cached_jit()(lambda: 4.0)
        assert kernel() == 4.0
        assert isinstance(kernel._cache, caching.NullCache)
    finally:
        monkeypatch.undo()
        disk_cache._installed.cache_clear()  # asked again: the list is back, ours still in it


def test_numbas_older_spellings_with_a_leading_underscore_are_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CacheImpl", "UserProvidedCacheLocator", "InTreeCacheLocator"):
        monkeypatch.setattr(caching, "_" + name, getattr(caching, name), raising=False)
        monkeypatch.delattr(caching, name)
    ours = disk_cache._locators()
    assert ours is not None and len(ours) == 3
    assert issubclass(ours[1], caching._InTreeCacheLocator)  # type: ignore[attr-defined]
