"""One version number for every parameter's value: what lets a kernel keep a prepared copy of
the weights (packed, aligned, side by side) across calls and know when it is stale.

Parameters are read-only arrays (nn.module keeps them so); the library's writers — assigning a
parameter, load_state_dict, an optimizer step, `with module.editing():` — make them writable
for the write and call :func:`weights_changed` after it. A kernel that prepared weights at
version v may reuse them while :func:`weights_version` is still v and the source arrays are the
same objects. Any change anywhere invalidates every prepared copy: cheap (a training step
re-prepares once) and never stale. Inside an editing block nothing prepared is reused at all.
"""

from __future__ import annotations

import itertools

_counter = itertools.count(1)
_version = 0
_open_edits = 0  # `with module.editing():` blocks open now: weights may change at any moment


def weights_changed() -> None:
    """Some parameter's value changed (or may have): every prepared copy is stale."""
    global _version
    _version = next(_counter)  # atomic under the GIL: two writers never share a version


def weights_version() -> int:
    """The current version: equal at two moments only if no parameter changed in between.
    While an editing block is open, weights may change between any two calls, so every call
    gets a new version (nothing prepared is reused)."""
    return next(_counter) if _open_edits else _version


def editing_started() -> None:
    global _open_edits
    _open_edits += 1


def editing_ended() -> None:
    global _open_edits
    _open_edits -= 1
    weights_changed()
