"""Training: losses, optimizers, schedules, the task contract, the trainer and its checkpoints.

`from numpy_lstm.train import Trainer, TrainerConfig` keeps working: the trainer's names are
re-exported here.
"""

from .task import Task
from .trainer import (
    OPTIMIZERS,
    NonFiniteError,
    Trainer,
    TrainerConfig,
    in_steps,
    one_blas_thread_if_fast,
)

__all__ = [
    "OPTIMIZERS",
    "NonFiniteError",
    "Task",
    "Trainer",
    "TrainerConfig",
    "in_steps",
    "one_blas_thread_if_fast",
]
