"""Trainable tasks, each usable from Python and from `numpy-lstm train NAME`."""

from __future__ import annotations

from ..nn.models import SequenceToOne
from ..train.task import Task, build_task
from .charlm import CharLMTask
from .classify import DigitsTask, SequenceClassificationTask
from .forecast import ForecastTask
from .synthetic import AddingTask, CopyTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (CharLMTask, AddingTask, CopyTask, ForecastTask, DigitsTask)
}


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
