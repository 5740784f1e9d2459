"""`numpy-lstm train TASK ...` and `numpy-lstm sample CHECKPOINT ...`.

Each task's options (`--hidden-size`, `--T`, `--text`, …) are the fields of its options
dataclass (`task.Options`): their types, defaults, help texts and checks come from there, so a new
task needs no CLI code, and a bad value is a usage error naming the option. The training options
(optimizer, schedule, steps, time budget, checkpoints) are shared by all tasks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Callable

from ..io.errors import FileFormatError
from ..kernels.threads import blas_threads
from ..tasks import TASKS, build_task
from ..tasks.charlm import CharLMTask
from ..train.task import Check, Task, non_negative_int, positive_int
from ..train.trainer import OPTIMIZERS, Trainer, TrainerConfig, in_steps
from .errors import (
    CommandError,
    UsageError,
    check_writable,
    checked_type,
    non_negative_count,
    non_negative_number,
    positive_count,
    positive_number,
)
from .resume import GivenBooleanOptionalAction, resumed_trainer, track_given

Subparsers = argparse._SubParsersAction
COMMAND_LINE_TYPES = (bool, int, float, str)


def _command_line_type(annotation: object) -> type | None:
    """The command-line type (bool, int, float or str) of an option's type annotation, such as
    `int | None` or `str | list[str]` (a list given as "a,b"); None when it has no single one
    (an array, say: such options are left to Python)."""
    members = [m for m in typing.get_args(annotation) or (annotation,) if m is not type(None)]
    kinds = [kind for kind in COMMAND_LINE_TYPES if kind in members]
    lists = [m for m in members if typing.get_origin(m) is list]
    return kinds[0] if len(kinds) == 1 and len(kinds) + len(lists) == len(members) else None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _task_options(parser: argparse.ArgumentParser, task: type[Task]) -> None:
    """One `--option` per field of the task's options dataclass that the command line can
    express, with the field's type, default, check and help."""
    group = parser.add_argument_group(f"{task.name} options")
    annotations = typing.get_type_hints(task.Options)
    for field in dataclasses.fields(task.Options):
        kind = _command_line_type(annotations[field.name])
        if kind is None:
            continue
        flag, dest, default = _flag(field.name), f"task_{field.name}", field.default
        help_text = field.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if kind is bool:  # --relative / --no-relative
            added = group.add_argument(
                flag,
                action=GivenBooleanOptionalAction,  # records that it was given (for --resume)
                default=default,
                dest=dest,
                help=help_text,
            )
        else:
            added = group.add_argument(
                flag,
                type=checked_type(field.name, kind, field.metadata.get("check")),
                default=default,
                dest=dest,
                metavar=field.name.upper(),
                help=help_text,
            )
        if default is not None and "%(default)" not in (added.help or ""):  # some Pythons add it
            added.help = f"{added.help} (default: %(default)s)"


def _training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    add = group.add_argument

    def count(name: str, check: Check = positive_int) -> Callable[[str], object]:
        return checked_type(name, int, check)

    add("--steps", type=count("steps"), default=1000, help="optimizer steps in all (default: 1000)")
    add(
        "--epochs",
        type=positive_number("epochs"),
        default=None,
        help="passes over the training data, instead",
    )
    add(
        "--minutes",
        type=positive_number("minutes"),
        default=None,
        help="stop after this wall-clock time",
    )
    add("--optimizer", choices=sorted(OPTIMIZERS), default="Adam")
    add("--lr", type=positive_number("lr"), default=3e-3, help="learning rate (default: 0.003)")
    add("--weight-decay", type=non_negative_number("weight_decay"), default=0.0)
    add("--schedule", choices=["constant", "cosine", "step"], default="cosine")
    add(
        "--warmup",
        type=count("warmup", non_negative_int),
        default=0,
        help="linear warmup steps (cosine schedule)",
    )
    add(
        "--clip",
        type=non_negative_number("clip"),
        default=1.0,
        help="global gradient-norm clip; 0 turns it off",
    )
    add("--eval-every", type=count("eval_every"), default=100)
    add("--log-every", type=count("log_every"), default=20)
    add(
        "--patience",
        type=count("patience"),
        default=None,
        help="early stopping after N flat evaluations",
    )
    add("--checkpoint", default=None, help="write a checkpoint here at every evaluation")
    add("--resume", default=None, metavar="CHECKPOINT", help="continue a checkpointed run")
    add(
        "--threads",
        type=count("threads"),
        default=None,
        help="BLAS threads (default: the library's)",
    )
    add(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar (default: only on a terminal)",
    )


# The trainer's settings that only TrainerConfig or the task can refuse, by their flags.
TRAINING_FLAGS = {"epochs": "--epochs", "minutes": "--minutes", "clip_norm": "--clip"}


def _with_flag(message: str, flags: dict[str, str]) -> str:
    """An error message that starts with an option's name, such as "stride: …", with the
    command line's spelling of it instead: "--stride: …"."""
    name, colon, rest = message.partition(": ")
    return f"{flags[name]}: {rest}" if colon and name in flags else message


def _task_options_given(args: argparse.Namespace) -> dict[str, object]:
    return {k[5:]: v for k, v in vars(args).items() if k.startswith("task_")}


def _new_trainer(args: argparse.Namespace, config: TrainerConfig) -> Trainer:
    task = build_task(args.task, _task_options_given(args))
    config = in_steps(config, task)  # the schedule needs the step count
    hyper = {"lr": args.lr, "weight_decay": args.weight_decay}
    optimizer = OPTIMIZERS[args.optimizer](task.model, **hyper)
    schedule: dict[str, object] = {"name": args.schedule}
    if args.schedule == "cosine":
        schedule |= {"total_steps": config.steps, "warmup_steps": args.warmup}
    elif args.schedule == "step":
        schedule |= {"step_size": max(1, config.steps // 3), "gamma": 0.3}
    return Trainer(task, optimizer, schedule, config)


def _run_train(args: argparse.Namespace) -> int:
    if args.checkpoint:  # now, not after the first evaluation's worth of training
        check_writable(args.checkpoint, "--checkpoint")
    fields = dataclasses.fields(TASKS[args.task].Options)
    flags = {f.name: _flag(f.name) for f in fields} | TRAINING_FLAGS
    with blas_threads(args.threads):
        try:  # the options alone, before any file is read: a refusal is a usage error
            config = TrainerConfig(
                steps=args.steps,
                epochs=args.epochs,
                eval_every=args.eval_every,
                log_every=args.log_every,
                clip_norm=args.clip or None,
                patience=args.patience,
                minutes=args.minutes,
                checkpoint=args.checkpoint,
                progress=args.progress,
            )
            if not args.resume:
                TASKS[args.task].Options(**_task_options_given(args))
        except ValueError as err:
            raise UsageError(_with_flag(str(err), flags)) from None
        try:
            if args.resume:
                trainer = resumed_trainer(args)  # refuses options that would change the run
                if trainer.task.name != args.task:
                    raise UsageError(f"--resume: {args.resume} is a {trainer.task.name!r} run")
            else:
                trainer = _new_trainer(args, config)
        except FileFormatError:
            raise  # a file that is not what it claims (main names it; exit status 1)
        except ValueError as err:  # what the data (or a checkpoint) refuses: named by its option
            name = str(err).partition(": ")[0]
            kind = UsageError if name in TRAINING_FLAGS else CommandError
            raise kind(_with_flag(str(err), flags)) from None
        baseline = trainer.task.baseline()
        if baseline:
            print(f"baseline: {json.dumps(baseline)}", file=sys.stderr)
        result = trainer.fit()
    print(json.dumps({"task": args.task, **result, "baseline": baseline}, default=float))
    if isinstance(trainer.task, CharLMTask):
        print(trainer.task.sample("\n", 300, temperature=0.8, seed=0))
    return 0


def add_train(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on a task", description="Train a model on one of the tasks."
    )
    tasks = parser.add_subparsers(title="tasks", metavar="TASK", required=True)
    for name, task in TASKS.items():
        sub = tasks.add_parser(name, help=(task.__doc__ or "").strip().splitlines()[0])
        track_given(sub)  # --resume refuses given options that would change the run
        _task_options(sub, task)
        _training_options(sub)
        sub.set_defaults(handler=_run_train, task=name)


def _run_sample(args: argparse.Namespace) -> int:
    from ..tasks.charlm import load_for_sampling, sample

    model, vocab = load_for_sampling(args.checkpoint)
    unknown = sorted(set(args.prime) - set(vocab.chars))
    if unknown:
        raise CommandError(f"--prime: characters not in the model's vocabulary: {unknown[:10]!r}")
    text = sample(
        model,
        vocab,
        args.prime,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    print(args.prime + text)
    return 0


def add_sample(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="generate text from a char-LM checkpoint",
        description="Continue a priming text with a trained character language model.",
    )
    parser.add_argument("checkpoint", help="a checkpoint written by `numpy-lstm train charlm`")
    parser.add_argument("--prime", default="\n", help="the text to continue (default: newline)")
    parser.add_argument(
        "--length", type=positive_count("length"), default=500, help="characters to generate"
    )
    parser.add_argument("--temperature", type=positive_number("temperature"), default=0.8)
    parser.add_argument("--top-k", type=positive_count("top_k"), default=None)
    parser.add_argument(
        "--seed", type=non_negative_count("seed"), default=0, help="sampling seed (reproducible)"
    )
    parser.set_defaults(handler=_run_sample)
