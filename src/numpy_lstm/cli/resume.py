"""`numpy-lstm train TASK --resume CHECKPOINT [options]`: which options a resumed run honours.

A resumed run continues the checkpoint's run, so what defines that run cannot change:

- task options (`--T`, `--hidden-size`, `--text`, …) and the optimizer and schedule options
  (`--optimizer`, `--lr`, `--weight-decay`, `--schedule`, `--warmup`): each one given on the
  command line must equal the checkpoint's value, or the run is refused naming the option;
- trainer options (`--steps`, `--epochs`, `--eval-every`, `--log-every`, `--clip`,
  `--patience`, `--minutes`, `--checkpoint`, `--progress`): given ones replace the checkpoint's,
  the others keep the checkpoint's values. A different `--steps` resizes a cosine schedule (see
  :meth:`numpy_lstm.train.trainer.Trainer.from_checkpoint`).

"Given" means written on the command line, even with the default's value: the parser records
the options it sees (:func:`track_given`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ..io.errors import FileFormatError
from ..tasks import TASKS
from ..train.checkpoint import read_checkpoint
from ..train.trainer import Trainer, TrainerConfig
from .errors import UsageError

GIVEN = "options_given"  # the namespace attribute: the dests the command line set
# Trainer options that a resume honours: their dest → TrainerConfig field.
TRAINER_OPTIONS = {
    "steps": "steps",
    "epochs": "epochs",
    "eval_every": "eval_every",
    "log_every": "log_every",
    "clip": "clip_norm",
    "patience": "patience",
    "minutes": "minutes",
    "checkpoint": "checkpoint",
    "progress": "progress",
}


def _note(namespace: argparse.Namespace, dest: str) -> None:
    setattr(namespace, GIVEN, {*getattr(namespace, GIVEN, ()), dest})


class _RecordsGiven(argparse.Action):
    """Mixin for an argparse action: after storing the value, record that the option was given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        _note(namespace, self.dest)


class GivenStore(_RecordsGiven, argparse._StoreAction):
    """argparse's `store`, recording that the option was given."""


class GivenBooleanOptionalAction(_RecordsGiven, argparse.BooleanOptionalAction):
    """argparse's `--x / --no-x`, recording that the option was given."""


def track_given(parser: argparse.ArgumentParser) -> None:
    """Make `parser`'s plain options (added after this call) record when they are given."""
    parser.register("action", None, GivenStore)
    parser.register("action", "store", GivenStore)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _as_json(value: object) -> object:
    return json.loads(json.dumps(value))


def _refuse_changed(flag: str, saved: object, given: object, what: str) -> None:
    if _as_json(saved) != _as_json(given):
        raise UsageError(
            f"{flag}: the checkpoint's run has {saved!r}, got {given!r}; {what} cannot change on "
            "resume (start a new run instead)"
        )


def resumed_trainer(args: argparse.Namespace) -> Trainer:
    """The Trainer that continues `args.resume`, after refusing every given option that would
    change the run and applying the given trainer options (see the module docstring)."""
    saved = read_checkpoint(args.resume)
    meta = saved.meta
    if meta["task"]["name"] != args.task:
        raise UsageError(f"--resume: {args.resume} is a {meta['task']['name']!r} run")
    given: set[str] = getattr(args, GIVEN, set())
    # A config stored before an option existed meant that option's old value (stored_defaults).
    config = TASKS[args.task].Options.stored_defaults | meta["task"]["config"]
    options = {k[5:]: getattr(args, k) for k in given if k.startswith("task_")}
    if options:
        try:  # normalised as the run's own options were ("f4" → "float32", …)
            merged = dataclasses.asdict(TASKS[args.task].Options(**{**config, **options}))
        except (TypeError, ValueError) as err:
            raise UsageError(f"--resume: {err}") from None
        for name in sorted(options):
            _refuse_changed(_flag(name), config.get(name), merged[name], "task options")
    optimizer, schedule = meta["optimizer"], meta["schedule"]
    spec = schedule["spec"] or {"name": "constant"}
    base_lr = (schedule["state"] or {}).get("base_lr", optimizer["scalars"].get("lr"))
    fixed = {
        "optimizer": optimizer["class"],
        "lr": base_lr,
        "weight_decay": optimizer["scalars"].get("weight_decay", 0.0),
        "schedule": spec.get("name"),
        "warmup": spec.get("warmup_steps", 0),
    }
    for name in sorted(given & set(fixed)):
        _refuse_changed(_flag(name), fixed[name], getattr(args, name), "optimizer options")
    changes: dict[str, Any] = {}
    for dest in sorted(given & set(TRAINER_OPTIONS)):
        value = getattr(args, dest)
        changes[TRAINER_OPTIONS[dest]] = (value or None) if dest == "clip" else value
    if "steps" in changes and "epochs" not in changes:
        changes["epochs"] = None  # --steps replaces the run's length in epochs
    try:
        trainer_config = TrainerConfig(**meta["trainer"]["config"])
    except (TypeError, ValueError) as err:
        raise FileFormatError(args.resume, f"trainer.config: {err}") from None
    config = dataclasses.replace(trainer_config, **changes)  # a bad value names its option
    return Trainer.from_checkpoint(saved, args.resume, config)
