"""The training loop: steps, evaluation, early stopping, progress, checkpoints, bit-exact resume.

    trainer = Trainer(task, Adam(task.model, lr=3e-3), schedule={"name": "cosine", ...},
                      config=TrainerConfig(steps=2000, eval_every=200, checkpoint="run.ckpt"))
    result = trainer.fit()
    ...
    trainer = Trainer.resume("run.ckpt")          # continues exactly where it stopped
    trainer.fit()

A step that produces a non-finite loss or gradient stops the run with :class:`NonFiniteError`
naming the step and the parameter, *before* the optimizer touches the weights; checkpoints are
only ever replaced atomically, so the last good one stays intact.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from ..core.validation import check_int
from ..io.errors import FileFormatError
from ..io.native import PathLike
from ..kernels.select import fast_enabled
from ..kernels.threads import blas_threads
from ..nn.module import evaluating
from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .gradients import NonFiniteError, check_and_clip_grads
from .optim import SGD, Adam, AdamW, Optimizer, RMSprop
from .schedules import make_schedule
from .task import REGISTRY, DataChangedError, Task, build_task, check_regular_file

__all__ = ["NonFiniteError", "Trainer", "TrainerConfig"]  # NonFiniteError lives in .optim
OPTIMIZERS: dict[str, type[Optimizer]] = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop)}
Callback = Callable[["Trainer", str, dict[str, float]], None]  # (trainer, event, metrics)


def one_blas_thread_if_fast() -> AbstractContextManager[None]:
    """A context that holds BLAS to one thread while the fast kernels are on (see `fit`)."""
    return blas_threads(1 if fast_enabled() else None)


@dataclass
class TrainerConfig:
    steps: int = 1000  # total optimizer steps of the run (a resumed run counts from its step)
    epochs: float | None = None  # instead of steps: this many passes over the training data
    eval_every: int = 100
    log_every: int = 20
    clip_norm: float | None = 1.0  # global gradient-norm clipping (torch semantics); None: off
    patience: int | None = None  # stop after this many evaluations without improvement
    minutes: float | None = None  # wall-clock budget for this call of fit()
    checkpoint: str | None = None  # written at every evaluation and at the end
    progress: bool | None = None  # a tqdm bar; None: only when stderr is a terminal

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every", "log_every"):
            check_int(name, getattr(self, name), minimum=1)
        if self.patience is not None:
            check_int("patience", self.patience, minimum=1)
        for name in ("clip_norm", "epochs", "minutes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}: expected a positive number or None, got {value}")


def in_steps(config: TrainerConfig, task: Task) -> TrainerConfig:
    """`config` with `epochs` turned into `steps` for this task (unchanged without epochs)."""
    if config.epochs is None:
        return config
    if task.steps_per_epoch is None:
        raise ValueError(
            f"epochs: the {task.name!r} task draws fresh data at every step and has no epochs; "
            "give steps instead"
        )
    steps = max(1, round(config.epochs * task.steps_per_epoch))
    return dataclasses.replace(config, steps=steps, epochs=None)


class Trainer:
    """Runs a :class:`~numpy_lstm.train.task.Task` with an optimizer and an optional schedule."""

    def __init__(
        self,
        task: Task,
        optimizer: Optimizer,
        schedule: dict[str, Any] | None = None,
        config: TrainerConfig | None = None,
        callbacks: tuple[Callback, ...] = (),
        out: TextIO | None = None,
    ) -> None:
        if optimizer.module is not task.model:
            raise ValueError("optimizer: must optimize task.model")
        self.task, self.optimizer = task, optimizer
        self.schedule_spec = schedule
        self.scheduler = make_schedule(optimizer, schedule)
        self.config = in_steps(config or TrainerConfig(), task)
        self.callbacks = callbacks
        self.out = out or sys.stderr
        self.step = 0
        self.best = math.inf
        self.bad_evals = 0
        self.history: list[dict[str, float]] = []

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train until `config.steps`, the time budget, or early stopping; return a summary.

        With the fast kernels, BLAS is held to one thread meanwhile: the kernels run their own
        threads, and OpenBLAS's threads keep spinning for ~0.1 s after each of its calls, which
        starved them (measured on 2 cores: 60 → 37 ms per char-LM step)."""
        with one_blas_thread_if_fast():
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        config, start = self.config, time.perf_counter()
        bar = self._progress_bar()
        reason, metrics = "steps", {}
        window: list[float] = []
        window_start = time.perf_counter()
        while self.step < config.steps:
            window.append(self.train_step())
            if bar is not None:
                bar.update(1)
            if self.step % config.log_every == 0 or self.step == config.steps:
                rate = len(window) * self.task.items_per_step / (time.perf_counter() - window_start)
                self._log({"loss": float(np.mean(window)), "items_per_s": rate}, bar)
                window, window_start = [], time.perf_counter()
            if self.step % config.eval_every == 0 or self.step == config.steps:
                metrics = self.evaluate()
                if config.patience is not None and self.bad_evals >= config.patience:
                    reason = "early stopping"
                    break
            if config.minutes is not None and time.perf_counter() - start > 60 * config.minutes:
                reason = "time budget"
                metrics = self.evaluate()
                break
        if bar is not None:
            bar.close()
        self._emit("end", metrics)
        return {"step": self.step, "stopped": reason, "best_loss": self.best, "last": metrics}

    def train_step(self) -> float:
        """One optimizer step: zero the gradients, let the task run forward and backward, check
        everything is finite, clip, update, advance the schedule."""
        self.optimizer.zero_grad()
        loss = self.task.train_step()
        step = self.step + 1
        if not math.isfinite(loss):
            raise NonFiniteError(f"step {step}: the loss is {loss}; weights left unchanged")
        # One pass over the gradients: their norm for clipping, and the finiteness check.
        check_and_clip_grads(self.task.model, self.config.clip_norm, step=step)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step = step
        return loss

    def evaluate(self) -> dict[str, float]:
        """Evaluate (in eval mode), update best/patience, checkpoint, notify callbacks."""
        with evaluating(self.task.model):
            metrics = {"step": self.step, **self.task.evaluate()}
        if self.task.steps_per_epoch is not None:
            metrics["epoch"] = self.step / self.task.steps_per_epoch
        if metrics["loss"] < self.best:
            self.best, self.bad_evals = metrics["loss"], 0
        else:
            self.bad_evals += 1
        self.history.append(metrics)
        if self.config.checkpoint:
            self.save(self.config.checkpoint)
        self._emit("eval", metrics)
        return metrics

    # -- reporting ----------------------------------------------------------------------------
    def _progress_bar(self) -> Any:
        show = self.config.progress
        if show is None:
            show = hasattr(self.out, "isatty") and self.out.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.steps, initial=self.step, file=self.out, unit="step")

    def _log(self, metrics: dict[str, float], bar: Any) -> None:
        if bar is not None:
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", rate=f"{metrics['items_per_s']:.0f}/s")
        else:
            print(
                f"step {self.step:>6}  loss {metrics['loss']:.4f}  "
                f"{metrics['items_per_s']:,.0f} {self.task.item_name}/s",
                file=self.out,
                flush=True,
            )
        self._emit("log", metrics)

    def _emit(self, event: str, metrics: dict[str, float]) -> None:
        if event == "eval":
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "step")
            print(f"step {self.step:>6}  eval  {shown}", file=self.out, flush=True)
        for callback in self.callbacks:
            callback(self, event, metrics)

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Checkpoint everything a bit-exact resume needs (atomically), with a fingerprint of
        the task's data (its SHA-256 and the size of each data file)."""
        values, arrays = self.task.state()
        files = type(self.task).data_files(self.task.config())
        meta = {
            "task": {
                "name": self.task.name,
                "config": self.task.config(),
                "state": values,
                "data": {
                    "sha256": self.task.data_digest(),
                    "files": {option: os.stat(path).st_size for option, path in files.items()},
                },
            },
            "step": self.step,
            "schedule": {
                "spec": self.schedule_spec,
                "state": None if self.scheduler is None else self.scheduler.state_dict(),
            },
            "trainer": {
                "config": dataclasses.asdict(self.config),
                "best": self.best if math.isfinite(self.best) else None,
                "bad_evals": self.bad_evals,
                "history": self.history,
            },
        }
        write_checkpoint(path, meta, self.task.model.state_dict(), self.optimizer, arrays)

    @classmethod
    def resume(cls, path: PathLike, config: TrainerConfig | None = None, **kwargs: Any) -> Trainer:
        """Rebuild task, model, optimizer, schedule and trainer from a checkpoint. `config`
        replaces the saved TrainerConfig (e.g. to train for more steps; see
        :meth:`from_checkpoint` for what that does to the schedule)."""
        return cls.from_checkpoint(read_checkpoint(path), path, config, **kwargs)

    @classmethod
    def from_checkpoint(
        cls, saved: Checkpoint, path: PathLike, config: TrainerConfig | None = None, **kwargs: Any
    ) -> Trainer:
        """:meth:`resume` from a checkpoint already read (by :func:`read_checkpoint`) from `path`.

        The task's data must be what the checkpoint recorded: each data file must be a regular
        file of the recorded size (checked before it is read) and the data's SHA-256 must match;
        else a ValueError naming the option. A malformed checkpoint is a FileFormatError.

        A different `config.steps` (or epochs) changes the run's length. A cosine schedule whose
        horizon was the checkpoint's run length (as `numpy-lstm train` sizes it) then gets the
        new length as its horizon: from the resumed step on, the learning rate is exactly that
        of a straight run of the new length (so a longer run never trains at lr 0 — the steps
        before were taken on the old, shorter curve). Any other schedule continues unchanged.
        """
        source = os.fspath(path)
        meta = saved.meta
        _check_data_files(meta["task"])
        try:
            check_declared_sizes(meta["task"]["config"], saved.model)
            task = build_task(meta["task"]["name"], meta["task"]["config"])
        except FileNotFoundError:
            raise
        except (ValueError, TypeError, KeyError) as err:
            raise FileFormatError(source, str(err)) from None
        _check_data_digest(meta["task"], task)
        try:
            # The task's state first: a char-LM compares its vocabulary, a changed text's
            # clearer error than the shapes that follow from it.
            task.load_state(meta["task"]["state"], saved.task_arrays)
            task.model.load_state_dict(saved.model)
            optimizer_class = OPTIMIZERS.get(meta["optimizer"]["class"])
            if optimizer_class is None:
                raise ValueError(f"optimizer class must be one of {sorted(OPTIMIZERS)}")
            optimizer = optimizer_class(task.model)
            optimizer.load_state_dict(saved.optimizer)
            trainer_meta = meta["trainer"]
            saved_config = TrainerConfig(**trainer_meta["config"])
        except DataChangedError:  # the data's fault, not the checkpoint's
            raise
        except (ValueError, TypeError, KeyError) as err:
            raise FileFormatError(source, str(err)) from None
        config = in_steps(config or saved_config, task)
        schedule = _resized_schedule(meta["schedule"]["spec"], saved_config.steps, config.steps)
        trainer = cls(task, optimizer, schedule, config, **kwargs)
        try:
            if trainer.scheduler is not None:
                trainer.scheduler.load_state_dict(meta["schedule"]["state"])
        except (ValueError, TypeError, AttributeError) as err:
            raise FileFormatError(source, f"schedule: {err}") from None
        trainer.step = meta["step"]
        trainer.best = math.inf if trainer_meta["best"] is None else trainer_meta["best"]
        trainer.bad_evals = trainer_meta["bad_evals"]
        trainer.history = list(trainer_meta["history"])
        return trainer


def _resized_schedule(
    spec: dict[str, Any] | None, saved_steps: int, steps: int
) -> dict[str, Any] | None:
    """The schedule spec of a resumed run of `steps` steps (see :meth:`Trainer.from_checkpoint`)."""
    if (
        spec is not None
        and spec.get("name") == "cosine"
        and spec.get("total_steps") == saved_steps
        and steps != saved_steps
    ):
        warmup = spec.get("warmup_steps", 0)
        if isinstance(warmup, int) and warmup >= steps:
            raise ValueError(f"steps: expected more than the {warmup} warmup steps, got {steps}")
        return {**spec, "total_steps": steps}
    return spec


def _check_data_files(task: dict[str, Any]) -> None:
    """Each data file the task will read is a regular file of the size the checkpoint recorded
    (checked before anything reads it: a checkpoint can name any path)."""
    cls = REGISTRY.get(task["name"])
    if cls is None:
        return  # build_task names the unknown task
    recorded = task.get("data", {}).get("files", {})
    for option, path in cls.data_files(task["config"]).items():
        size = check_regular_file(option, path)
        if option in recorded and size != recorded[option]:
            raise DataChangedError(
                f"{option}: {path!r} has changed since the checkpoint was written "
                f"({size:,} bytes now, {recorded[option]:,} then)"
            )


def _check_data_digest(meta: dict[str, Any], task: Task) -> None:
    """The task's data must hash to what the checkpoint recorded (older checkpoints have no
    record; a char-LM's vocabulary is compared in any case)."""
    expected = meta.get("data", {}).get("sha256")
    actual = task.data_digest()
    if expected is not None and actual != expected:
        files = type(task).data_files(task.config())
        what = ", ".join(f"{option} {path!r}" for option, path in files.items())
        name = next(iter(files), "data")
        what = what or task.default_data
        raise DataChangedError(
            f"{name}: the training data ({what}) has changed since the checkpoint was written "
            f"(sha256 {actual} now, {expected} then)"
        )


def check_declared_sizes(config: dict[str, Any], model: dict[str, np.ndarray]) -> None:
    """Refuse, before the task allocates its model, a config whose sizes need far more
    parameters than the checkpoint holds: L stacked LSTM layers of H units have at least
    4·L·H² weights (L·H² for a plain RNN, `cell="rnn"`), and every embedding or hidden width is
    at most the parameter count."""
    present = sum(int(array.size) for array in model.values())
    sizes = {k: v for k, v in config.items() if k in ("hidden_size", "embedding_dim", "num_layers")}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in sizes.values()):
        return  # the task's own checks name the bad value
    for key, value in sizes.items():
        if value > present:
            raise ValueError(f"{key}: {value} is more than the {present:,} parameters present")
    hidden, layers = sizes.get("hidden_size", 0), sizes.get("num_layers", 1)
    blocks = 1 if config.get("cell") == "rnn" else 4  # an LSTM's W_hh has four gate blocks
    if blocks * layers * hidden * hidden > present:
        raise ValueError(
            f"hidden_size: {layers} layer(s) of {hidden} units need at least "
            f"{blocks * layers * hidden * hidden:,} parameters; the checkpoint holds {present:,}"
        )
