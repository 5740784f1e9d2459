"""What a trainable task is: the contract between a learning problem and the :class:`Trainer`.

A :class:`Task` owns its model, its data and everything that makes a run reproducible (random
generators, the position in the data, carried state). The trainer only asks it for one training
step at a time, for an evaluation, and for its state to checkpoint. Every concrete task class with
a `name` is registered here, so that a checkpoint can name the task it resumes.

A task's options are one frozen dataclass (a :class:`TaskOptions`), the single typed source of
their names, types, defaults, one-line help texts and checks: the constructor takes its fields
(:func:`takes_options`), `config()` returns them, and `numpy-lstm train TASK` builds its
`--options` and their `--help` from them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

import numpy as np

from ..core.validation import check_int, check_probability, resolve_dtype
from ..nn.module import Module

Arrays = dict[str, np.ndarray]
REGISTRY: dict[str, type[Task]] = {}  # task name → class, filled as task classes are defined

T = TypeVar("T")
P = ParamSpec("P")
OptionsT = TypeVar("OptionsT", bound="TaskOptions")
TaskT = TypeVar("TaskT", bound="Task")

# (option name, value) → the value, normalised (e.g. a NumPy integer → int); raises ValueError
# (or TypeError) with a message that starts with the option's name.
Check = Callable[[str, Any], Any]


# -- the checks an option can declare --------------------------------------------------------------
def positive_int(name: str, value: Any) -> int:
    return check_int(name, value, minimum=1)


def non_negative_int(name: str, value: Any) -> int:
    return check_int(name, value, minimum=0)


def _number(name: str, value: Any, interval: str, inside: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a number in {interval}, got {value!r}")
    if not inside(float(value)):
        raise ValueError(f"{name}: expected a number in {interval}, got {value}")
    return float(value)


def fraction(name: str, value: Any) -> float:
    """A share strictly between 0 and 1 (e.g. of the data held out)."""
    return _number(name, value, "(0, 1)", lambda v: 0 < v < 1)


def finite_number(name: str, value: Any) -> float:
    """Any finite number (e.g. a bias to start from)."""
    return _number(name, value, "(-inf, inf)", math.isfinite)


def probability(name: str, value: Any) -> float:
    """A probability in [0, 1) (e.g. dropout: 1 would drop everything)."""
    return check_probability(name, value)


def float_dtype(name: str, value: Any) -> str:
    """The name, JSON-able, of float32 or float64 given in any spelling NumPy accepts."""
    return resolve_dtype(value).name


def optional(check: Check) -> Check:
    """`check`, letting None through (an option whose None means "not given")."""

    def checked(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    return checked


def option(default: T, help: str, check: Check | None = None) -> T:
    """A field of a task's options: its default, its one-line help (`numpy-lstm train TASK
    --help` shows it) and the check every value must pass."""
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """Base of every task's options: frozen, JSON-able fields made with :func:`option`, each
    checked (and normalised) when the options are built. Subclasses add cross-field checks in
    `__post_init__` after calling this one."""

    # Options added after checkpoints were written whose default is not what those checkpoints'
    # models had: the value a stored config that lacks one meant (build_task fills it in).
    stored_defaults: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check = field.metadata.get("check")
            if check is not None:
                # frozen: the normalised value replaces the given one once, here
                object.__setattr__(self, field.name, check(field.name, getattr(self, field.name)))


def takes_options(
    options: Callable[P, OptionsT],
) -> Callable[[Callable[[TaskT, OptionsT], None]], Callable[Concatenate[TaskT, P], None]]:
    """Make a task's `__init__(self, options)` take the fields of its options instead, typed:
    `AddingTask(T=50)` runs `__init__(self, AddingOptions(T=50))`, and a misspelt or mistyped
    argument is an error for the type checker and at run time alike."""

    def decorate(init: Callable[[TaskT, OptionsT], None]) -> Callable[Concatenate[TaskT, P], None]:
        @functools.wraps(init)
        def build(self: TaskT, /, *args: P.args, **kwargs: P.kwargs) -> None:
            init(self, options(*args, **kwargs))

        fields = inspect.signature(options).parameters.values()
        self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        build.__signature__ = inspect.Signature([self_, *fields])  # type: ignore[attr-defined]
        return build

    return decorate


class Task(ABC):
    """One learning problem: a model, its data and its loss.

    Subclasses set `name`, build `self.model` (a Module), and implement the abstract methods
    below. A task with options sets `Options` (its :class:`TaskOptions` dataclass), builds itself
    from an instance of it in an `__init__` decorated with :func:`takes_options`, and keeps it as
    `self.options`; `config()` then returns its fields, so `type(task)(**task.config())` rebuilds
    the same task (fresh weights) — checkpoints store it. A task without options overrides
    `config()`.
    """

    name: ClassVar[str]
    Options: ClassVar[type[TaskOptions]]
    item_name: ClassVar[str] = "sequences"  # what the throughput counts
    # what the task trains on when no data file is given (a changed-data error names it)
    default_data: ClassVar[str] = "data"
    model: Module
    options: TaskOptions
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

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: the fields of `self.options`."""
        return dataclasses.asdict(self.options)

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

    @classmethod
    def data_files(cls, config: dict[str, Any]) -> dict[str, str]:
        """Option name → path of each file a task with `config` reads its data from (checked
        and size-compared before a resumed task reads it); none by default."""
        return {}

    def data_digest(self) -> str | None:
        """SHA-256 (hex) of the data the task trains and evaluates on, recorded in checkpoints
        so that a resume refuses changed data; None for data generated from the seed."""
        return None


class DataChangedError(ValueError):
    """A resumed task's data differs from what its checkpoint recorded (the message starts with
    the option that names the data, e.g. "text: …")."""


def check_regular_file(option: str, path: str | os.PathLike[str]) -> int:
    """The size in bytes of the data file a task option names, which must be a regular file
    (not a device, a FIFO or a folder, which could be endless); else an error naming the
    option."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{option}: no such file {os.fspath(path)!r}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{option}: {os.fspath(path)!r} is not a regular file")
    return info.st_size


def read_data_file(option: str, path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file a task option names (see :func:`check_regular_file`)."""
    check_regular_file(option, path)
    with open(path, "rb") as file:
        return file.read()


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
    task = REGISTRY[name]
    try:
        return task(**(task.Options.stored_defaults | config))
    except TypeError as err:
        raise ValueError(f"config of task {name!r} rejected: {err}") from None
