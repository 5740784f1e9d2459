"""What a trainable task is: the contract between a learning problem and the :class:`Trainer`.

A :class:`Task` owns its model, its data and everything that makes a run reproducible (random
generators, the position in the data, carried state). The trainer only asks it for one training
step at a time, for an evaluation, and for its state to checkpoint. Every concrete task class with
a `name` is registered here, so that a checkpoint can name the task it resumes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ..nn.module import Module

Arrays = dict[str, np.ndarray]
REGISTRY: dict[str, type[Task]] = {}  # task name → class, filled as task classes are defined


class Task(ABC):
    """One learning problem: a model, its data and its loss.

    Subclasses set `name`, build `self.model` (a Module), and implement the four methods below.
    `config()` must hold every constructor argument, so `type(task)(**task.config())` rebuilds the
    same task (fresh weights); checkpoints store it.
    """

    name: ClassVar[str]
    item_name: ClassVar[str] = "sequences"  # what the throughput counts
    model: Module
    items_per_step: int = 1
    train_items: int | None = None  # the size of one epoch in items; None: endless generated data

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a concrete, named task: checkpoints can name it
            REGISTRY[cls.name] = cls

    @property
    def steps_per_epoch(self) -> int | None:
        """Steps that see about as many items as the training data holds (None: no epochs)."""
        if self.train_items is None:
            return None
        return max(1, -(-self.train_items // self.items_per_step))  # ceiling division

    @abstractmethod
    def train_step(self) -> float:
        """Draw the next training batch, run forward and backward (gradients accumulate in
        `self.model.grads`), and return the batch's loss."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Metrics on held-out data (must include "loss"; the trainer minimises it)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""

    def state(self) -> tuple[dict[str, Any], Arrays]:
        """Everything beyond the model's parameters that a bit-exact resume needs:
        JSON-able values (RNG states, data position) and arrays (carried LSTM state)."""
        return {"rngs": {k: g.bit_generator.state for k, g in self.generators().items()}}, {}

    def load_state(self, values: dict[str, Any], arrays: Arrays) -> None:
        rngs = values.get("rngs", {})
        generators = self.generators()
        if set(rngs) != set(generators):
            raise ValueError(f"rngs: expected generators {sorted(generators)}, got {sorted(rngs)}")
        for key, generator in generators.items():
            generator.bit_generator.state = rngs[key]

    def generators(self) -> dict[str, np.random.Generator]:
        """Every random generator the run draws from, by name (data and model)."""
        modules = self.model.named_modules("model")
        return {name: module.rng for name, module in modules if hasattr(module, "rng")}

    def baseline(self) -> dict[str, float]:
        """The trivial baseline's metrics on the evaluation data, for honest comparisons."""
        return {}


def build_task(name: str, config: dict[str, Any]) -> Task:
    """The registered task `name` rebuilt from its `config()` (fresh weights), or a clear
    error."""
    if name not in REGISTRY:
        raise ValueError(
            f"task: expected one of {sorted(REGISTRY)}, got {name!r} (a task of your own must be "
            "imported before a checkpoint of it is resumed)"
        )
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a JSON object, got {config!r}")
    try:
        return REGISTRY[name](**config)
    except TypeError as err:
        raise ValueError(f"config of task {name!r} rejected: {err}") from None
