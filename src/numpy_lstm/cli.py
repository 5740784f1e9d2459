"""The `numpy-lstm` command line.

Each subcommand is one `_add_<name>(subparsers)` function that declares its arguments and sets
`handler`, a function of the parsed namespace returning the exit status; `main` only dispatches.
Later subcommands (train, sample, explain, convert, bench) slot in as one more such function.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from .demo import DemoConfig, run_demo


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _run_demo(args: argparse.Namespace) -> int:
    run_demo(steps=args.steps, seed=args.seed, out=sys.stdout)
    return 0


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train a tiny LSTM on the adding problem and show its gates",
        description="Train LSTM + Linear on the adding problem (target = the sum of the two "
        "marked values), print the loss falling next to the predict-1 baseline, then a "
        "per-step table of one unit's gates: Filter (i), Eraser (f), Writer (g), Presenter (o).",
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0, help="random seed (default: %(default)s)"
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        default=DemoConfig.steps,
        help="number of Adam steps (default: %(default)s)",
    )
    parser.set_defaults(handler=_run_demo)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="numpy-lstm",
        description="An LSTM from scratch in NumPy, exact against PyTorch, every gate traceable.",
    )
    parser.add_argument("--version", action="version", version=f"numpy-lstm {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (_add_demo,):
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors: keep main's int contract
        return exit_.code if isinstance(exit_.code, int) else 1
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except BrokenPipeError:
        # `numpy-lstm demo | head`: the reader left early. Point stdout at devnull so the
        # interpreter's final flush doesn't raise again (the recipe from Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
