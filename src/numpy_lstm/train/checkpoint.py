"""Training checkpoints: one safetensors file (arrays) whose header carries JSON metadata.

Arrays: `model.<param>`, `optimizer.<buffer>.<param>`, `task.<name>` (carried state, …).
Header `__metadata__` (strings): `format` = "numpy-lstm-checkpoint", `format_version`,
`library_version`, and `checkpoint`, a JSON object with the task (name, config, state: RNG
bit-generator states and data position), the step, the optimizer (class and scalar state), the
schedule's state and the trainer's bookkeeping.

Written atomically (temp file, fsync, `os.replace`) by :func:`numpy_lstm.io.native.save_tensors`;
read by the `safetensors` parser, never by pickle; every field is validated before anything is
built (a :class:`~numpy_lstm.io.errors.FileFormatError` naming the file and the field), and the
arrays must fit the rebuilt model and optimizer exactly. `task.data` records the SHA-256 of the
task's data and the size of each data file it read, so that a resume refuses changed data.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.errors import FileFormatError
from ..io.native import PathLike, check_format, load_tensors, save_tensors
from ..version import __version__
from .optim import Optimizer

FORMAT = "numpy-lstm-checkpoint"
FORMAT_VERSION = "1"

# The checkpoint's JSON metadata: nested task configs, RNG states and histories, whose values are
# arbitrary JSON; each owner validates its own part when it loads it.
JSONObject = dict[str, Any]


@dataclass
class Checkpoint:
    """What a checkpoint file holds, already split by owner."""

    meta: JSONObject
    model: dict[str, np.ndarray]
    optimizer: dict[str, object]  # an optimizer state dict, validated by its load_state_dict
    task_arrays: dict[str, np.ndarray]


def write_checkpoint(
    path: PathLike,
    meta: JSONObject,
    model_state: dict[str, np.ndarray],
    optimizer: Optimizer,
    task_arrays: dict[str, np.ndarray],
) -> Path:
    """Atomically write a checkpoint (see the module docstring for the layout)."""
    optimizer_state = optimizer.state_dict()
    scalars = {k: v for k, v in optimizer_state.items() if not isinstance(v, np.ndarray)}
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    tensors |= {
        f"optimizer.{k}": v for k, v in optimizer_state.items() if isinstance(v, np.ndarray)
    }
    tensors |= {f"task.{k}": v for k, v in task_arrays.items()}
    meta = {**meta, "optimizer": {"class": type(optimizer).__name__, "scalars": scalars}}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "checkpoint": json.dumps(meta, sort_keys=True),
    }
    return save_tensors(path, tensors, header)


def read_checkpoint(path: PathLike) -> Checkpoint:
    """Read a checkpoint and validate every field of its header (types and ranges: step ≥ 0,
    a finite best loss, …); split its arrays by owner. Anything wrong is a
    :class:`FileFormatError` naming the file and the field."""
    source = os.fspath(path)
    tensors, header = load_tensors(path)  # FileNotFoundError / FileFormatError naming the file
    expected = {"format", "format_version", "library_version", "checkpoint"}
    if set(header) != expected:
        raise FileFormatError(
            source, f"header metadata: expected {sorted(expected)}, got {sorted(header)}"
        )
    check_format(source, header, FORMAT, FORMAT_VERSION)
    try:
        meta = json.loads(header["checkpoint"])
    except (json.JSONDecodeError, RecursionError) as err:
        raise FileFormatError(source, f"checkpoint metadata is not valid JSON ({err})") from None
    required = {"task", "step", "optimizer", "schedule", "trainer"}
    if not isinstance(meta, dict) or not required <= set(meta):
        keys = sorted(meta) if isinstance(meta, dict) else meta
        raise FileFormatError(source, f"checkpoint metadata needs {sorted(required)}, got {keys}")
    try:
        check_meta(meta)
    except (ValueError, TypeError) as err:
        raise FileFormatError(source, f"checkpoint metadata: {err}") from None
    groups: dict[str, dict[str, np.ndarray]] = {"model": {}, "optimizer": {}, "task": {}}
    for name, array in tensors.items():
        owner, _, key = name.partition(".")
        if owner not in groups or not key:
            raise FileFormatError(source, f"unexpected tensor {name!r}")
        groups[owner][key] = array
    optimizer = {**meta["optimizer"]["scalars"], **groups["optimizer"]}
    return Checkpoint(meta, groups["model"], optimizer, groups["task"])


def _object(
    name: str, value: object, keys: set[str], optional: frozenset[str] = frozenset()
) -> JSONObject:
    """`value` must be a JSON object with exactly `keys` (and any of `optional`)."""
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a JSON object, got {type(value).__name__}")
    if not keys <= set(value) <= keys | optional:
        raise ValueError(f"{name}: expected keys {sorted(keys)}, got {sorted(value)}")
    return value


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    return value


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def check_meta(meta: JSONObject) -> None:
    """The checkpoint metadata's structure, types and ranges (ValueError naming the field).
    What only the owners can judge (the task's config and state, the optimizer's values, the
    schedule's arguments) is checked again when they load it."""
    _object("checkpoint", meta, {"task", "step", "optimizer", "schedule", "trainer"})
    task = _object("task", meta["task"], {"name", "config", "state"}, frozenset({"data"}))
    if not isinstance(task["name"], str):
        raise ValueError(f"task.name: expected a string, got {task['name']!r}")
    for key in ("config", "state"):
        if not isinstance(task[key], dict):
            raise ValueError(f"task.{key}: expected a JSON object, got {task[key]!r}")
    if "data" in task:
        data = _object("task.data", task["data"], {"sha256", "files"})
        if data["sha256"] is not None and not (
            isinstance(data["sha256"], str) and len(data["sha256"]) == 64
        ):
            raise ValueError(f"task.data.sha256: expected 64 hex digits, got {data['sha256']!r}")
        files = data["files"]
        if not isinstance(files, dict):
            raise ValueError(f"task.data.files: expected a JSON object, got {files!r}")
        for option, size in files.items():
            _count(f"task.data.files.{option}", size)
    _count("step", meta["step"])
    optimizer = _object("optimizer", meta["optimizer"], {"class", "scalars"})
    if not isinstance(optimizer["class"], str):
        raise ValueError(f"optimizer.class: expected a string, got {optimizer['class']!r}")
    scalars = optimizer["scalars"]
    if not isinstance(scalars, dict):
        raise ValueError(f"optimizer.scalars: expected a JSON object, got {scalars!r}")
    for key, value in scalars.items():
        _finite(f"optimizer.scalars.{key}", value)
    schedule = _object("schedule", meta["schedule"], {"spec", "state"})
    for key in ("spec", "state"):
        if schedule[key] is not None and not isinstance(schedule[key], dict):
            raise ValueError(f"schedule.{key}: expected a JSON object or null")
    if (schedule["spec"] is None) != (schedule["state"] is None):
        raise ValueError("schedule: spec and state must both be given or both be null")
    trainer = _object("trainer", meta["trainer"], {"config", "best", "bad_evals", "history"})
    if not isinstance(trainer["config"], dict):
        raise ValueError(f"trainer.config: expected a JSON object, got {trainer['config']!r}")
    if trainer["best"] is not None:
        _finite("trainer.best", trainer["best"])
    _count("trainer.bad_evals", trainer["bad_evals"])
    history = trainer["history"]
    if not isinstance(history, list):
        raise ValueError(f"trainer.history: expected a list, got {type(history).__name__}")
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or "step" not in entry:
            raise ValueError(f"trainer.history[{i}]: expected an object with a step")
        _count(f"trainer.history[{i}].step", entry["step"])
        for key, value in entry.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"trainer.history[{i}].{key}: expected a number, got {value!r}")
