"""`numpy-lstm train TASK ...` and `numpy-lstm sample CHECKPOINT ...`.

Each task's options are its constructor's keyword arguments (`--hidden-size`, `--T`, `--text`,
…), read from the signature, so a new task needs no CLI code; the training options (optimizer,
schedule, steps, time budget, checkpoints) are shared by all tasks.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from contextlib import nullcontext
from typing import Any

from ..tasks import TASKS, build_task
from ..train.trainer import OPTIMIZERS, Trainer, TrainerConfig, in_steps

Subparsers = argparse._SubParsersAction


def _option_type(annotation: str) -> type | None:
    """The argparse type for a constructor annotation such as "int | None" (None: not a CLI
    option, e.g. an array argument)."""
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if annotation.split(" | ")[0] == name:
            return kind
    return None


def _task_options(parser: argparse.ArgumentParser, task: type) -> None:
    """One `--option` per keyword argument of the task's constructor, typed by its annotation."""
    group = parser.add_argument_group(f"{task.name} options")
    for name, parameter in inspect.signature(task.__init__).parameters.items():
        kind = _option_type(str(parameter.annotation))
        if parameter.default is inspect.Parameter.empty or kind is None:
            continue
        flag, default = f"--{name.replace('_', '-')}", parameter.default
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               dest=f"task_{name}")  # fmt: skip
        else:
            group.add_argument(flag, type=kind, default=default, dest=f"task_{name}",
                               metavar=name.upper(),
                               help=f"(default: {default!r})")  # fmt: skip


def _training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    add = group.add_argument
    add("--steps", type=int, default=1000, help="optimizer steps in all (default: 1000)")
    add("--epochs", type=float, default=None, help="passes over the training data, instead")
    add("--minutes", type=float, default=None, help="stop after this wall-clock time")
    add("--optimizer", choices=sorted(OPTIMIZERS), default="Adam")
    add("--lr", type=float, default=3e-3, help="learning rate (default: 0.003)")
    add("--weight-decay", type=float, default=0.0)
    add("--schedule", choices=["constant", "cosine", "step"], default="cosine")
    add("--warmup", type=int, default=0, help="linear warmup steps (cosine schedule)")
    add("--clip", type=float, default=1.0, help="global gradient-norm clip; 0 turns it off")
    add("--eval-every", type=int, default=100)
    add("--log-every", type=int, default=20)
    add("--patience", type=int, default=None, help="early stopping after N flat evaluations")
    add("--checkpoint", default=None, help="write a checkpoint here at every evaluation")
    add("--resume", default=None, metavar="CHECKPOINT", help="continue a checkpointed run")
    add("--threads", type=int, default=None, help="BLAS threads (default: the library's)")
    add("--progress", action=argparse.BooleanOptionalAction, default=None,
        help="a progress bar (default: only on a terminal)")  # fmt: skip


def _thread_limit(threads: int | None) -> Any:
    if threads is None:
        return nullcontext()
    if threads < 1:
        raise SystemExit("--threads: expected a positive integer")
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def _run_train(args: argparse.Namespace) -> int:
    config = TrainerConfig(
        steps=args.steps, epochs=args.epochs, eval_every=args.eval_every,
        log_every=args.log_every,
        clip_norm=args.clip or None, patience=args.patience, minutes=args.minutes,
        checkpoint=args.checkpoint, progress=args.progress,
    )  # fmt: skip
    with _thread_limit(args.threads):
        if args.resume:
            trainer = Trainer.resume(args.resume, config)
            if trainer.task.name != args.task:
                raise SystemExit(f"--resume: {args.resume} is a {trainer.task.name!r} run")
        else:
            options = {k[5:]: v for k, v in vars(args).items() if k.startswith("task_")}
            task = build_task(args.task, options)
            config = in_steps(config, task)  # the schedule needs the step count
            hyper = {"lr": args.lr, "weight_decay": args.weight_decay}
            optimizer = OPTIMIZERS[args.optimizer](task.model, **hyper)
            schedule = {"name": args.schedule}
            if args.schedule == "cosine":
                schedule |= {"total_steps": config.steps, "warmup_steps": args.warmup}
            elif args.schedule == "step":
                schedule |= {"step_size": max(1, config.steps // 3), "gamma": 0.3}
            trainer = Trainer(task, optimizer, schedule, config)
        baseline = trainer.task.baseline()
        if baseline:
            print(f"baseline: {json.dumps(baseline)}", file=sys.stderr)
        result = trainer.fit()
    print(json.dumps({"task": args.task, **result, "baseline": baseline}, default=float))
    if args.task == "charlm":
        print(trainer.task.sample("\n", 300, temperature=0.8, seed=0))
    return 0


def add_train(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on a task", description="Train a model on one of the tasks."
    )
    tasks = parser.add_subparsers(title="tasks", metavar="TASK", required=True)
    for name, task in TASKS.items():
        sub = tasks.add_parser(name, help=(task.__doc__ or "").strip().splitlines()[0])
        _task_options(sub, task)
        _training_options(sub)
        sub.set_defaults(handler=_run_train, task=name)


def _run_sample(args: argparse.Namespace) -> int:
    from ..tasks.charlm import load_for_sampling, sample

    model, vocab = load_for_sampling(args.checkpoint)
    text = sample(
        model, vocab, args.prime, args.length, temperature=args.temperature,
        top_k=args.top_k, seed=args.seed,
    )  # fmt: skip
    print(args.prime + text)
    return 0


def add_sample(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="generate text from a char-LM checkpoint",
        description="Continue a priming text with a trained character language model.",
    )  # fmt: skip
    parser.add_argument("checkpoint", help="a checkpoint written by `numpy-lstm train charlm`")
    parser.add_argument("--prime", default="\n", help="the text to continue (default: newline)")
    parser.add_argument("--length", type=int, default=500, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (reproducible)")
    parser.set_defaults(handler=_run_sample)
