"""Trainable tasks, each usable from Python and from `numpy-lstm train NAME`; each task's
options are one dataclass (`Task.Options`), which the command line reads too."""

from __future__ import annotations

from ..nn.models import SequenceToOne
from ..train.task import Task, build_task
from .charlm import CharLMOptions, CharLMTask
from .classify import DigitsOptions, DigitsTask, SequenceClassificationTask
from .forecast import ForecastOptions, ForecastTask
from .synthetic import AddingOptions, AddingTask, CopyOptions, CopyTask

TASKS: dict[str, type[Task]] = {
    task.name: task for task in (CharLMTask, AddingTask, CopyTask, ForecastTask, DigitsTask)
}


__all__ = [
    "TASKS",
    "AddingOptions",
    "AddingTask",
    "CharLMOptions",
    "CharLMTask",
    "CopyOptions",
    "CopyTask",
    "DigitsOptions",
    "DigitsTask",
    "ForecastOptions",
    "ForecastTask",
    "SequenceClassificationTask",
    "SequenceToOne",
    "Task",
    "build_task",
]
