"""Training checkpoints: one safetensors file (arrays) whose header carries JSON metadata.

Arrays: `model.<param>`, `optimizer.<buffer>.<param>`, `task.<name>` (carried state, …).
Header `__metadata__` (strings): `format` = "numpy-lstm-checkpoint", `format_version`,
`library_version`, and `checkpoint`, a JSON object with the task (name, config, state: RNG
bit-generator states and data position), the step, the optimizer (class and scalar state), the
schedule's state and the trainer's bookkeeping.

Written atomically (temp file, fsync, `os.replace`) by :func:`numpy_lstm.io.native.save_tensors`;
read by the `safetensors` parser, never by pickle; every field is validated before anything is
built, and the arrays must fit the rebuilt model and optimizer exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
    """Read and validate a checkpoint's header; split its arrays by owner."""
    source = os.fspath(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint: no such file {source!r}")
    tensors, header = load_tensors(path)
    expected = {"format", "format_version", "library_version", "checkpoint"}
    if set(header) != expected:
        raise ValueError(
            f"{source}: header metadata: expected {sorted(expected)}, got {sorted(header)}"
        )
    check_format(source, header, FORMAT, FORMAT_VERSION)
    try:
        meta = json.loads(header["checkpoint"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: checkpoint metadata is not valid JSON ({err})") from None
    required = {"task", "step", "optimizer", "schedule", "trainer"}
    if not isinstance(meta, dict) or not required <= set(meta):
        keys = sorted(meta) if isinstance(meta, dict) else meta
        raise ValueError(f"{source}: checkpoint metadata needs {sorted(required)}, got {keys}")
    groups: dict[str, dict[str, np.ndarray]] = {"model": {}, "optimizer": {}, "task": {}}
    for name, array in tensors.items():
        owner, _, key = name.partition(".")
        if owner not in groups or not key:
            raise ValueError(f"{source}: unexpected tensor {name!r}")
        groups[owner][key] = array
    optimizer = {**meta["optimizer"].get("scalars", {}), **groups["optimizer"]}
    return Checkpoint(meta, groups["model"], optimizer, groups["task"])
