"""Checks on a `.keras` file before Keras reads it: the archive, its `config.json` and the sizes
the config declares against the weights the file holds.

Keras builds every layer (allocating its weights) from the config before it reads any weight, so
a config declaring `units=14000` next to a few kilobytes of weights would allocate gigabytes:
here the parameter count the config declares is computed from its numbers alone and refused
when the weight file's datasets cannot hold it. Only the layers `from_keras` supports pass.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from .archives import describe, read_directory, read_member
from .errors import FileFormatError

MODELS = ("Sequential", "Functional", "Model")
LAYERS = ("InputLayer", "LSTM", "Bidirectional", "Dense", "Dropout", "Masking")
MAX_CONFIG_BYTES = 16 * 2**20  # a config is a few kilobytes per layer
MAX_DIM = 2**31 - 1


def check_keras_file(path: str | os.PathLike[str]) -> None:
    """Raise FileFormatError naming `path` unless it is a .keras archive whose config is a
    supported model whose declared weights its weight file holds."""
    members = read_directory(path, stored_only=False)
    for name in ("config.json", "model.weights.h5"):
        if name not in members:
            raise FileFormatError(path, f"not a .keras archive: it has no {name}")
    if members["config.json"].file_size > MAX_CONFIG_BYTES:
        raise FileFormatError(path, f"config.json is over {MAX_CONFIG_BYTES} bytes")
    kept: dict[str, bytes] = {}
    for name in members:  # every CRC, before Keras reads any of it
        data = read_member(path, name)
        if name in ("config.json", "model.weights.h5"):
            kept[name] = data
    try:
        config = json.loads(kept["config.json"])
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise FileFormatError(path, f"config.json is not JSON ({describe(err)})") from None
    declared = _declared_parameters(path, config)
    held = _held_elements(path, kept["model.weights.h5"])
    if declared > held:
        raise FileFormatError(
            path,
            f"config.json declares {declared} weights but model.weights.h5 holds {held}: "
            f"refused before building the model",
        )


def _declared_parameters(path: str | os.PathLike[str], config: Any) -> int:
    """The number of weights the model in `config` allocates when Keras builds it."""
    model = _dict(path, config, "config.json")
    if model.get("class_name") not in MODELS:
        raise FileFormatError(
            path,
            f"config.json: expected a model ({', '.join(MODELS)}), got "
            f"{_short(model.get('class_name'))}",
        )
    body = _dict(path, model.get("config"), "config.json: config")
    layers = body.get("layers")
    if not isinstance(layers, list) or not layers:
        raise FileFormatError(path, "config.json: the model's layers are not a non-empty list")
    width = _last_dim(path, body.get("build_input_shape"))  # the feature size flowing in
    built = model.get("build_config")
    if width is None and isinstance(built, dict):
        width = _last_dim(path, built.get("input_shape"))
    total = 0
    previous: Any = None  # the name of the layer before: a functional model must be a chain
    for index, entry in enumerate(layers):
        where = f"config.json: layer {index}"
        layer = _dict(path, entry, where)
        kind = layer.get("class_name")
        if kind not in LAYERS:
            raise FileFormatError(
                path, f"{where}: unsupported layer {_short(kind)} (supported: {', '.join(LAYERS)})"
            )
        options = _dict(path, layer.get("config"), f"{where}: config")
        if model["class_name"] != "Sequential" and kind != "InputLayer":
            sources = _sources(layer.get("inbound_nodes"))
            if sources != [previous]:
                raise FileFormatError(
                    path,
                    f"{where}: takes {_short(sources)}, not the layer before it "
                    f"({_short(previous)}): only a chain of layers is supported",
                )
        previous = layer.get("name", options.get("name"))
        built = layer.get("build_config")
        if isinstance(built, dict) and (given := _last_dim(path, built.get("input_shape"))):
            width = given  # Keras builds the layer with this input shape
        if kind == "InputLayer":
            shape = options.get("batch_shape", options.get("batch_input_shape"))
            width = _last_dim(path, shape) or width
            continue
        if kind in ("Dropout", "Masking"):
            continue
        if width is None:
            raise FileFormatError(path, f"{where}: {kind} has no declared input size")
        if kind == "Bidirectional":
            wrapped = [_dict(path, options.get("layer"), f"{where}: wrapped layer")]
            if options.get("backward_layer") is not None:
                wrapped.append(_dict(path, options["backward_layer"], f"{where}: backward layer"))
            outputs = []
            for inner in wrapped:
                if inner.get("class_name") != "LSTM":
                    raise FileFormatError(
                        path,
                        f"{where}: Bidirectional wraps {_short(inner.get('class_name'))}, not LSTM",
                    )
                lstm = _dict(path, inner.get("config"), f"{where}: LSTM config")
                outputs.append(units := _units(path, lstm, where))
                total += 4 * units * (width + units + _bias(lstm))
            if len(wrapped) == 1:  # the backward layer is a copy of the forward one
                total += 4 * outputs[0] * (width + outputs[0] + _bias(lstm))
                outputs *= 2
            width = sum(outputs)
        elif kind == "LSTM":
            units = _units(path, options, where)
            total += 4 * units * (width + units + _bias(options))
            width = units
        else:  # Dense
            units = _units(path, options, where)
            total += (width + _bias(options)) * units
            width = units
    return total


def _bias(options: dict[str, Any]) -> int:
    return 0 if options.get("use_bias", True) is False else 1


def _sources(nodes: Any) -> list[Any]:
    """The layer names a functional layer's inbound nodes read (each tensor's keras_history)."""
    found: list[Any] = []

    def visit(value: Any, depth: int) -> None:
        if depth > 20:
            return
        if isinstance(value, dict):
            history = value.get("keras_history")
            if value.get("class_name") == "__keras_tensor__" and isinstance(
                value.get("config"), dict
            ):
                history = value["config"].get("keras_history")
            if isinstance(history, list) and history:
                found.append(history[0])
                return
            for item in value.values():
                visit(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                visit(item, depth + 1)

    visit(nodes, 0)
    return found


def _held_elements(path: str | os.PathLike[str], data: bytes) -> int:
    """The number of values the HDF5 weight file's datasets hold in bytes actually stored."""
    import h5py  # type: ignore[import-untyped]  # Keras's own dependency, so present

    total = 0
    try:
        with h5py.File(io.BytesIO(data), "r") as weights:
            datasets: list[Any] = []
            weights.visititems(
                lambda _, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None
            )
            for dataset in datasets:
                size = int(dataset.size or 0)
                stored = dataset.id.get_storage_size()
                if size * dataset.dtype.itemsize > stored:  # declared but not stored (fill)
                    raise FileFormatError(
                        path,
                        f"model.weights.h5: dataset {dataset.name!r} declares shape "
                        f"{dataset.shape} but stores {stored} bytes",
                    )
                total += size
    except FileFormatError:
        raise
    except Exception as err:  # OSError, KeyError, …: h5py on a broken file
        raise FileFormatError(
            path, f"model.weights.h5 is not a readable HDF5 file ({describe(err)})"
        ) from None
    return total


def _dict(path: str | os.PathLike[str], value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FileFormatError(path, f"{where}: expected an object, got {type(value).__name__}")
    return value


def _units(path: str | os.PathLike[str], options: dict[str, Any], where: str) -> int:
    units = options.get("units")
    if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= MAX_DIM:
        raise FileFormatError(
            path, f"{where}: units must be a positive integer, got {_short(units)}"
        )
    return units


def _last_dim(path: str | os.PathLike[str], shape: Any) -> int | None:
    """The feature size (last entry) of a declared shape, None where there is none."""
    if not isinstance(shape, list) or not shape or shape[-1] is None:
        return None
    last = shape[-1]
    if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= MAX_DIM:
        raise FileFormatError(path, f"config.json: bad input size {_short(last)} in a shape")
    return last


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
