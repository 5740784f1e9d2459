"""The native model format: one safetensors file whose header carries the architecture.

A file is the model's `state_dict()` (float32 or float64 tensors under torch's names) plus four
string fields in the safetensors header's `__metadata__`:

    format          "numpy-lstm"
    format_version  "1"
    architecture    "LSTM" | "LSTMCell" | "Linear" | "SequenceModel"
    config          the JSON of `model.config()` (constructor arguments)

Why in the header and not in a sidecar .json: one file cannot lose half of itself, be renamed
apart or be replaced non-atomically; and safetensors readers in every language (Rust, JS, C++,
`safetensors` in Python) read the tensors and show the metadata as they are. Nothing is ever
unpickled: a safetensors file is a JSON header and raw little-endian bytes.

Loading trusts nothing: every metadata field is checked, the config is rebuilt through the
constructors' own validation, and the tensors must match the rebuilt model's names, shapes and
dtypes exactly (and be finite) — any mismatch is a :class:`FileFormatError` naming the file and
the field. Every size the config declares is checked against the tensors present before the model
is allocated, and the header carries a SHA-256 of the tensors and the other metadata
(`content_sha256`; files without one, written by older versions or other tools, still load).
Writes are atomic (:func:`atomic_path`: temporary file in the same folder, fsync, `os.replace`),
so a crash never leaves a half-written model under the target name.

:func:`save_tensors`, :func:`load_tensors`, :func:`model_metadata` and
:func:`model_from_file_parts` are the building blocks for files that hold more than a model
(training checkpoints).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..core.options import LSTMConfig
from ..nn.layers import Linear, LSTMCell, parameter_shapes
from ..nn.lstm import LSTM
from ..nn.models import SequenceModel
from ..nn.module import Module
from .errors import FileFormatError

FORMAT = "numpy-lstm"
FORMAT_VERSION = "1"
METADATA_KEYS = ("format", "format_version", "architecture", "config")
ARCHITECTURES: dict[str, type[Module]] = {
    "LSTM": LSTM,
    "LSTMCell": LSTMCell,
    "Linear": Linear,
    "SequenceModel": SequenceModel,
}
PathLike = str | os.PathLike
# Header metadata key of the checksum of the other metadata and the tensors (see
# :func:`content_digest`). Files written before it existed, or by other tools, have none and
# still load; with one, a flipped byte anywhere in the data or the metadata is refused.
CHECKSUM_KEY = "content_sha256"
# Our temporary files: `.tmp-<12 hex>-<target name>` (see :func:`atomic_path`). A crash (kill -9)
# during a save leaves one behind; the next save into the same folder removes those older than
# STALE_SECONDS — a save in progress elsewhere rewrites its file continuously and is far younger.
TEMP_PATTERN = re.compile(r"\.tmp-[0-9a-f]{12}-.+")
STALE_SECONDS = 3600.0


def model_metadata(model: Module) -> dict[str, str]:
    """The header fields that describe `model`'s architecture (see the module docstring)."""
    name = type(model).__name__
    if ARCHITECTURES.get(name) is not type(model):
        raise TypeError(
            f"model: expected one of {sorted(ARCHITECTURES)}, got {type(model).__name__}"
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": name,
        "config": json.dumps(model.config(), sort_keys=True),
    }


def check_format(source: str, header: Mapping[str, str], name: str, version: str) -> None:
    """The header's `format` and `format_version` must be exactly `name` and `version`."""
    if header["format"] != name:
        raise FileFormatError(source, f"format: expected {name!r}, got {header['format']!r}")
    if header["format_version"] != version:
        raise FileFormatError(
            source,
            f"format_version: expected {version!r} (this numpy-lstm reads only that), "
            f"got {header['format_version']!r}",
        )


def _parsed_config(metadata: Mapping[str, str], source: str) -> tuple[type[Module], dict]:
    """The architecture class and its config object, each checked, from header fields."""
    if not isinstance(metadata, Mapping):
        raise FileFormatError(source, f"no numpy-lstm metadata in the header (got {metadata!r})")
    missing = [key for key in METADATA_KEYS if key not in metadata]
    if missing:
        raise FileFormatError(source, f"header metadata lacks {missing}; it has {sorted(metadata)}")
    check_format(source, metadata, FORMAT, FORMAT_VERSION)
    cls = ARCHITECTURES.get(metadata["architecture"])
    if cls is None:
        raise FileFormatError(
            source,
            f"architecture: expected one of {sorted(ARCHITECTURES)}, "
            f"got {metadata['architecture']!r}",
        )
    try:
        config = json.loads(metadata["config"])
    except (json.JSONDecodeError, TypeError, RecursionError) as err:
        raise FileFormatError(source, f"config: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise FileFormatError(source, f"config: expected a JSON object, got {config!r}")
    return cls, config


def declared_parameter_count(cls: type[Module], config: dict[str, Any]) -> int:
    """How many parameter values `cls(**config)` would allocate, computed from the config alone
    (nothing allocated), so that a file's declared sizes can be checked against its bytes."""
    if cls is SequenceModel:
        if set(config) != {"lstm", "head"}:
            raise ValueError(f"config: expected keys ['head', 'lstm'], got {sorted(config)}")
        head = config["head"]
        lstm = declared_parameter_count(LSTM, config["lstm"])
        return lstm + (0 if head is None else declared_parameter_count(Linear, head))
    if cls is Linear:
        n_in, n_out = _size(config, "in_features"), _size(config, "out_features")
        return n_out * n_in + (n_out if config.get("bias", True) else 0)
    if cls is LSTMCell:
        shapes = parameter_shapes(
            _size(config, "input_size"),
            _size(config, "hidden_size"),
            bias=bool(config.get("bias", True)),
        )
        return sum(int(np.prod(shape)) for shape in shapes.values())
    options = LSTMConfig(**config)  # its own validation; allocates nothing
    directions = 2 if options.bidirectional else 1
    output = options.proj_size or options.hidden_size
    total = 0
    for layer in range(options.num_layers):
        width = options.input_size if layer == 0 else directions * output
        shapes = parameter_shapes(
            width,
            options.hidden_size,
            bias=options.bias,
            proj_size=options.proj_size,
            peephole=options.peephole,
            layer_norm=options.layer_norm,
        )
        total += directions * sum(int(np.prod(shape)) for shape in shapes.values())
    return total


def _size(config: Mapping[str, Any], key: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: expected a positive integer, got {value!r}")
    return value


def build_model(
    metadata: Mapping[str, str], source: str = "metadata", available: int | None = None
) -> Module:
    """The model (freshly initialised) that the header fields describe, after checking each.
    With `available` (the number of parameter values the file holds), a config that declares
    any other number is refused before anything is allocated."""
    cls, config = _parsed_config(metadata, source)
    try:
        declared = declared_parameter_count(cls, config)
        if available is not None and declared != available:
            raise FileFormatError(
                source,
                f"config declares {declared:,} parameter values but the file holds {available:,}",
            )
        if cls is SequenceModel:
            return SequenceModel.from_config(config)
        return cls(**config)
    except FileFormatError:
        raise
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise FileFormatError(source, f"config rejected by {cls.__name__}: {err}") from None


def model_from_file_parts(
    metadata: Mapping[str, str], tensors: Mapping[str, np.ndarray], source: str = "file"
) -> Module:
    """Build the model the metadata describes and load `tensors` into it, strictly. The config's
    sizes are checked against the tensors present before the model is allocated."""
    available = sum(int(np.asarray(t).size) for t in tensors.values())
    model = build_model(metadata, source, available)
    try:
        model.load_state_dict(tensors, strict=True)
    except (TypeError, ValueError) as err:
        raise FileFormatError(source, f"tensors do not fit the architecture: {err}") from None
    return model


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (its name ends like `path`'s, for writers that look at
    the extension) to write to; on success it is fsync'ed and renamed over `path` in one step,
    on failure removed. A crash therefore never leaves a half-written file under `path`; the
    temporary file a kill leaves behind is removed by a later save (:func:`remove_stale_temps`)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        # A rename would replace a device or a pipe (as root, even /dev/null) with our file.
        raise FileExistsError(
            errno.EEXIST, "exists and is not a regular file; not replacing it", str(path)
        )
    remove_stale_temps(path.parent)
    temp = path.parent / f".tmp-{secrets.token_hex(6)}-{path.name}"
    try:
        temp.open("xb").close()  # exclusive create, with the permissions any new file gets
        yield temp
        with open(temp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as err:
        temp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename in (None, os.fspath(temp)):
            err.filename = os.fspath(path)  # the user's path (a full disk names none), not ours
        raise
    _fsync_directory(path.parent)


def remove_stale_temps(folder: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove our own leftover temporary files (exactly :data:`TEMP_PATTERN`, regular files, not
    modified for `older_than` seconds) from `folder`; return them. Anything else is untouched,
    and a file that cannot be removed is left (another user's, say)."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not TEMP_PATTERN.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def content_digest(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """SHA-256 over the metadata (but the checksum itself) and every tensor's name, dtype, shape
    and little-endian bytes, in a fixed order: stored in the header as :data:`CHECKSUM_KEY`, so
    that a changed byte in the data or in a metadata value (a config, say) is detected."""
    digest = hashlib.sha256()
    fields = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    digest.update(json.dumps(fields, sort_keys=True).encode())
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(json.dumps([name, little.dtype.str, list(array.shape)]).encode())
        digest.update(np.ascontiguousarray(little).tobytes())
    return digest.hexdigest()


def save_tensors(
    path: PathLike, tensors: Mapping[str, np.ndarray], metadata: dict[str, str]
) -> Path:
    """Write name → array and string metadata (plus their checksum) as a safetensors
    file, atomically. Non-finite floating-point values are refused before anything is written:
    no loader of ours would read them back."""
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{name}: contains NaN or Inf; refusing to save {os.fspath(path)}")
    data = save(arrays, metadata={**metadata, CHECKSUM_KEY: content_digest(arrays, metadata)})
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def load_tensors(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file → (name → array, header metadata without the checksum).

    Only a regular file is read. The parser (the `safetensors` package) checks the header's
    JSON, dtypes, shapes and byte offsets against the file's length before any tensor is read,
    so no tensor is larger than the bytes present; the checksum, where the header has one, must
    match the tensors. Anything wrong is a :class:`FileFormatError` naming the file."""
    from safetensors import SafetensorError, safe_open

    source = os.fspath(path)
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"path: no such file {source!r}") from None
    if not stat.S_ISREG(mode):
        raise FileFormatError(source, "not a regular file")
    try:
        with safe_open(source, framework="numpy") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    except (SafetensorError, ValueError, TypeError, OverflowError, MemoryError) as err:
        raise FileFormatError(source, f"not a valid safetensors file ({err})") from None
    metadata = dict(metadata)
    if not all(isinstance(v, str) for v in metadata.values()):
        raise FileFormatError(source, "header metadata: expected string values")
    expected = metadata.pop(CHECKSUM_KEY, None)
    if expected is not None and expected != content_digest(tensors, metadata):
        raise FileFormatError(
            source, f"the contents do not match the header's {CHECKSUM_KEY} (corrupted)"
        )
    return tensors, metadata


def save_model(model: Module, path: PathLike) -> Path:
    """Save an LSTM, LSTMCell, Linear or SequenceModel as one safetensors file (atomically).
    Non-finite weights are refused (a ValueError naming the parameter) before anything is
    written."""
    return save_tensors(path, model.state_dict(), model_metadata(model))


def load_model(path: PathLike) -> Module:
    """Load a model saved by :func:`save_model`, validating the header, config and tensors."""
    tensors, metadata = load_tensors(path)
    unexpected = sorted(set(metadata) - set(METADATA_KEYS))
    if unexpected:
        raise FileFormatError(path, f"unexpected header metadata {unexpected}")
    return model_from_file_parts(metadata, tensors, source=os.fspath(path))
