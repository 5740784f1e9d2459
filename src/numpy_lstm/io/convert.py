"""Read and write every supported file format — the engine of `numpy-lstm convert`.

    format          extensions          holds                                   needs
    safetensors     .safetensors        architecture + weights (native)         —
    torch           .pt .pth            a state dict (read with weights_only)   numpy-lstm[torch]
    keras           .keras              architecture + weights                  numpy-lstm[keras]
    keras-weights   .weights.h5         weights only (read needs `like`)        numpy-lstm[keras]
    onnx            .onnx               an inference graph                      numpy-lstm[onnx]

A format is inferred from the extension unless given. Every reader validates what it reads and
every writer refuses a model its format cannot represent: a conversion either is exact or fails
with a message saying why. Writes are atomic.
"""

from __future__ import annotations

import importlib
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..nn.module import Module
from .archives import describe, read_directory, read_member
from .errors import FileFormatError
from .native import atomic_path, load_model, save_model

__all__ = ["FORMATS", "infer_format", "load", "save"]

FORMATS = {
    "safetensors": (".safetensors",),
    "torch": (".pt", ".pth"),
    "keras": (".keras",),
    "keras-weights": (".weights.h5",),
    "onnx": (".onnx",),
}
EXTRAS = {"torch": "torch", "keras": "keras", "onnx": "onnx"}  # library → extra


def infer_format(path: str | os.PathLike, given: str | None = None) -> str:
    """The format of `path`: `given` if not None (checked), else from its extension."""
    if given is not None:
        if given not in FORMATS:
            raise ValueError(f"format: expected one of {sorted(FORMATS)}, got {given!r}")
        return given
    name = Path(path).name.lower()
    for format_, extensions in FORMATS.items():
        if name.endswith(extensions):
            return format_
    known = ", ".join(e for extensions in FORMATS.values() for e in extensions)
    raise ValueError(f"{os.fspath(path)}: unknown extension (known: {known}); name the format")


def _bridge(library: str) -> Any:
    """numpy_lstm.io.<library>, or an ImportError that names the extra to install."""
    try:
        return importlib.import_module(f"numpy_lstm.io.{library}")
    except ImportError as err:
        if err.name is None or not err.name.startswith(library):
            raise
        raise ImportError(
            f"this format needs {library}: pip install 'numpy-lstm[{EXTRAS[library]}]'"
        ) from err


def load(
    path: str | os.PathLike,
    format: str | None = None,
    *,
    like: Module | None = None,
    **options: Any,
) -> Module:
    """Read a model from `path`. `like` gives the architecture for a .weights.h5 file;
    `options` (batch_first, dropout, …) complete an LSTM read from a torch state dict."""
    format = infer_format(path, format)
    if not Path(path).is_file():
        raise FileNotFoundError(f"path: no such file {os.fspath(path)!r}")
    if options and format != "torch":
        raise ValueError(f"options: only a torch state dict takes options, got {sorted(options)}")
    if format == "safetensors":
        return load_model(path)
    if format == "torch":
        return _load_torch(path, options)
    if format in ("keras", "keras-weights"):
        return _bridge("keras").load_keras(path, like=like)
    return _bridge("onnx").import_onnx(path)


def _load_torch(path: str | os.PathLike, options: dict[str, Any]) -> Module:
    bridge = _bridge("torch")
    import pickle

    import torch

    # torch.save's zip format only: its records' sizes are checked against the bytes present
    # before torch allocates them (the legacy format allocates what it declares, then reads).
    if not zipfile.is_zipfile(path):
        raise FileFormatError(
            path,
            "not a torch.save zip archive (the format torch ≥ 1.6 writes; legacy and other "
            "files are refused); save one with torch.save(module.state_dict(), path)",
        )
    for name in read_directory(path, stored_only=True):
        read_member(path, name)  # every CRC: a flipped byte must fail, not load other numbers
    try:
        # weights_only: the restricted unpickler, which only rebuilds tensors and containers —
        # never arbitrary objects, so a .pt file cannot run code when read.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise FileFormatError(
            path,
            f"not a plain state dict — torch.load(weights_only=True) refused it "
            f"({str(err).splitlines()[0] if str(err) else 'no reason given'}); save one with "
            f"torch.save(module.state_dict(), path)",
        ) from None
    except Exception as err:  # RuntimeError, EOFError, …: torch reading a corrupt archive
        raise FileFormatError(path, f"torch.load cannot read it ({describe(err)})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        kind = type(state).__name__
        keys = sorted(map(str, state))[:6] if isinstance(state, Mapping) else []
        raise FileFormatError(
            path,
            f"expected a state dict (name → tensor), got a {kind}"
            + (f" with keys {keys}" if isinstance(state, Mapping) else ""),
        )
    try:
        return bridge.model_from_state_dict(dict(state), **options)
    except (TypeError, ValueError, RuntimeError) as err:  # RuntimeError: e.g. a sparse tensor
        raise FileFormatError(path, str(err)) from None


def save(model: Module, path: str | os.PathLike, format: str | None = None, **options: Any) -> Path:
    """Write `model` to `path` (atomically). `options` go to the ONNX exporter
    (with_lengths, initial_state, opset)."""
    format = infer_format(path, format)
    if options and format != "onnx":
        raise ValueError(f"options: only the onnx format takes options, got {sorted(options)}")
    if format == "safetensors":
        return save_model(model, path)
    if format == "torch":
        torch_module = _bridge("torch").to_torch(model)
        import torch

        with atomic_path(path) as temp:
            torch.save(torch_module.state_dict(), temp)
    elif format in ("keras", "keras-weights"):
        bridge = _bridge("keras")
        with atomic_path(path) as temp:
            bridge.save_keras(model, temp)
    else:
        proto = _bridge("onnx").export_onnx(model, **options)
        import onnx

        with atomic_path(path) as temp:
            onnx.save(proto, os.fspath(temp))
    return Path(path)
