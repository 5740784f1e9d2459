"""Trainable tasks, each usable from Python and from `numpy-lstm train NAME`."""

from __future__ import annotations

from typing import Any

from .base import SequenceToOne, Task
from .charlm import CharLMTask
from .classify import DigitsTask, SequenceClassificationTask
from .forecast import ForecastTask
from .synthetic import AddingTask, CopyTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (CharLMTask, AddingTask, CopyTask, ForecastTask, DigitsTask)
}


def build_task(name: str, config: dict[str, Any]) -> Task:
    """The task `name` rebuilt from its `config()` (fresh weights), with a clear error."""
    if name not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {name!r}")
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a JSON object, got {config!r}")
    try:
        return TASKS[name](**config)
    except TypeError as err:
        raise ValueError(f"config of task {name!r} rejected: {err}") from None


__all__ = [
    "TASKS",
    "AddingTask",
    "CharLMTask",
    "CopyTask",
    "DigitsTask",
    "ForecastTask",
    "SequenceClassificationTask",
    "SequenceToOne",
    "Task",
    "build_task",
]
