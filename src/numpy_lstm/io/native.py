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
dtypes exactly (and be finite) — any mismatch is a ValueError naming the file and the field.
Writes are atomic (:func:`atomic_path`: temporary file in the same folder, fsync, `os.replace`),
so a crash never leaves a half-written model under the target name.

:func:`save_tensors`, :func:`load_tensors`, :func:`model_metadata` and
:func:`model_from_file_parts` are the building blocks for files that hold more than a model
(training checkpoints).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..nn.layers import Linear, LSTMCell
from ..nn.lstm import LSTM
from ..nn.models import SequenceModel
from ..nn.module import Module

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
        raise ValueError(f"{source}: format: expected {name!r}, got {header['format']!r}")
    if header["format_version"] != version:
        raise ValueError(
            f"{source}: format_version: expected {version!r} (this numpy-lstm reads only that), "
            f"got {header['format_version']!r}"
        )


def build_model(metadata: Mapping[str, str], source: str = "metadata") -> Module:
    """The model (freshly initialised) that the header fields describe, after checking each."""
    if not isinstance(metadata, Mapping):
        raise ValueError(f"{source}: no numpy-lstm metadata in the header (got {metadata!r})")
    missing = [key for key in METADATA_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"{source}: header metadata lacks {missing}; it has {sorted(metadata)}")
    check_format(source, metadata, FORMAT, FORMAT_VERSION)
    cls = ARCHITECTURES.get(metadata["architecture"])
    if cls is None:
        raise ValueError(
            f"{source}: architecture: expected one of {sorted(ARCHITECTURES)}, "
            f"got {metadata['architecture']!r}"
        )
    try:
        config = json.loads(metadata["config"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: config: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source}: config: expected a JSON object, got {config!r}")
    try:
        if cls is SequenceModel:
            return SequenceModel.from_config(config)
        return cls(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: config rejected by {cls.__name__}: {err}") from None


def model_from_file_parts(
    metadata: Mapping[str, str], tensors: Mapping[str, np.ndarray], source: str = "file"
) -> Module:
    """Build the model the metadata describes and load `tensors` into it, strictly."""
    model = build_model(metadata, source)
    try:
        model.load_state_dict(tensors, strict=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: tensors do not fit the architecture: {err}") from None
    return model


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (its name ends like `path`'s, for writers that look at
    the extension) to write to; on success it is fsync'ed and renamed over `path` in one step,
    on failure removed. A crash therefore never leaves a half-written file under `path`."""
    path = Path(path)
    temp = path.parent / f".tmp-{secrets.token_hex(6)}-{path.name}"
    temp.open("xb").close()  # exclusive create, with the permissions any new file gets
    try:
        yield temp
        with open(temp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


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


def save_tensors(
    path: PathLike, tensors: Mapping[str, np.ndarray], metadata: dict[str, str]
) -> Path:
    """Write name → array and string metadata as a safetensors file, atomically."""
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def load_tensors(path: PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file → (name → array, header metadata). Malformed files raise
    ValueError naming the file; the parser (the `safetensors` package) checks the header's
    JSON, dtypes, shapes and byte offsets before any tensor is read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="numpy") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    except SafetensorError as err:
        raise ValueError(f"{path}: not a valid safetensors file ({err})") from None
    return tensors, dict(metadata)


def save_model(model: Module, path: PathLike) -> Path:
    """Save an LSTM, LSTMCell, Linear or SequenceModel as one safetensors file (atomically)."""
    return save_tensors(path, model.state_dict(), model_metadata(model))


def load_model(path: PathLike) -> Module:
    """Load a model saved by :func:`save_model`, validating the header, config and tensors."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"path: no such file {os.fspath(path)!r}")
    tensors, metadata = load_tensors(path)
    unexpected = sorted(set(metadata) - set(METADATA_KEYS))
    if unexpected:
        raise ValueError(f"{os.fspath(path)}: unexpected header metadata {unexpected}")
    return model_from_file_parts(metadata, tensors, source=os.fspath(path))
