"""The `numpy-lstm` command line.

Each subcommand is one `_add_<name>(subparsers)` function that declares its arguments and sets
`handler`, a function of the parsed namespace returning the exit status; `main` only dispatches.
Later subcommands (train, sample, explain, convert, bench) slot in as one more such function.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from ..io.convert import FORMATS
from ..version import __version__
from .demo_adding import DemoConfig, run_demo
from .errors import (
    CommandError,
    CommandLineParser,
    check_writable,
    describe,
    make_folder,
    non_negative_count,
    positive_count,
    positive_number,
)
from .explore import add_explore
from .train import add_sample, add_train


def _run_demo(args: argparse.Namespace) -> int:
    if args.task == "adding":
        make_folder(args.out, "--out")  # the page's folder, before training
        check_writable(os.path.join(args.out, "explorer.html"), "--out")
        run_demo(steps=args.steps, seed=args.seed, out=sys.stdout, folder=args.out)
        return 0
    from .demo import DemoSettings, run

    make_folder(args.out, "--out")  # the report folder, and its checkpoint, before training
    check_writable(os.path.join(args.out, "charlm.ckpt"), "--out")
    run(DemoSettings(minutes=args.minutes, seed=args.seed, out=args.out), out=sys.stdout)
    return 0


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: train a char-LM for a few minutes, then look inside its gates",
        description="Train a character language model on Python's own documentation with a "
        "progress bar and samples as they improve, then write a report folder: the gate "
        "explorer (offline HTML), figures, a narration in the gate vocabulary — Filter (i), "
        "Eraser (1 − f), Writer (g), Presenter (o) — and the checkpoint. `--task adding` runs the "
        "quick adding-problem demo instead (a per-step gate table and an explorer page of one "
        "test sequence, seconds).",
    )
    parser.add_argument("--task", choices=["charlm", "adding"], default="charlm")
    parser.add_argument(
        "--minutes",
        type=positive_number("minutes"),
        default=4.0,
        help="training length (default: %(default)s)",
    )
    parser.add_argument("--out", default="demo-report", help="report folder (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=non_negative_count("seed"),
        default=0,
        help="random seed (default: %(default)s)",
    )
    parser.add_argument(
        "--steps",
        type=positive_count("steps"),
        default=DemoConfig.steps,
        help="adding demo only: number of Adam steps (default: %(default)s)",
    )
    parser.set_defaults(handler=_run_demo)


FORMAT_NAMES = sorted(FORMATS)


def _run_convert(args: argparse.Namespace) -> int:
    from ..io.convert import load, save  # lazily: each format imports its library

    options = {"batch_first": True} if args.batch_first else {}
    export = {"with_lengths": True} if args.with_lengths else {}
    like = load(args.like) if args.like else None
    model = load(args.src, args.source_format, like=like, **options)
    try:
        save(model, args.dst, args.target_format, **export)
    except TypeError as err:  # the exporters refuse a kind of model they cannot write so
        raise CommandError(f"{args.dst}: {err}") from None
    print(f"wrote {args.dst}: {model!r}")
    return 0


def _add_convert(subparsers: argparse._SubParsersAction) -> None:
    formats = (
        "safetensors (native), torch (.pt/.pth state dict), keras (.keras), "
        "keras-weights (.weights.h5), onnx"
    )
    parser = subparsers.add_parser(
        "convert",
        help="convert a model between .safetensors, torch .pt, Keras and ONNX files",
        description="Convert a model file, exactly or not at all: a model that the target "
        f"format cannot represent is refused with the reason. Formats: {formats}; inferred "
        "from the extensions unless given.",
    )
    parser.add_argument("src", help="the model file to read")
    parser.add_argument("dst", help="the file to write (replaced atomically)")
    parser.add_argument("--from", dest="source_format", choices=FORMAT_NAMES, help="format of SRC")
    parser.add_argument("--to", dest="target_format", choices=FORMAT_NAMES, help="format of DST")
    parser.add_argument(
        "--like", metavar="FILE", help="a model file whose architecture a .weights.h5 SRC has"
    )
    parser.add_argument(
        "--batch-first", action="store_true", help="a torch state dict SRC takes (B, T, I) input"
    )
    parser.add_argument(
        "--with-lengths",
        action="store_true",
        help="an ONNX DST takes a `lengths` input (B,) int32 (its sequence_lens)",
    )
    parser.set_defaults(handler=_run_convert)


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    from .bench import add_arguments, run_from_args  # torch, onnxruntime load only when run

    parser = subparsers.add_parser(
        "bench",
        help="time numpy-lstm against torch.nn.LSTM and onnxruntime, side by side",
        description="Forward (inference) and forward+backward (training) of numpy-lstm's fast "
        "and reference paths, torch.nn.LSTM and onnxruntime on the same float32 inputs and "
        "thread counts, in one process: median (min) ms, ratios, GFLOP/s and the fraction of "
        "the GEMM bound. Needs the `bench` extra.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_from_args)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = CommandLineParser(
        prog="numpy-lstm",
        description="An LSTM from scratch in NumPy, exact against PyTorch, every gate traceable.",
    )
    parser.add_argument("--version", action="version", version=f"numpy-lstm {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (add_train, add_sample, _add_demo, _add_convert, add_explore, _add_bench):
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); return the exit status: 0, 1
    for a user's error (a missing or bad file, a diverged run: one line on stderr), 2 for a usage
    error. A bug raises, with its traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors: keep main's int contract
        return exit_.code if isinstance(exit_.code, int) else 1
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = args.handler(args)
    except BrokenPipeError:
        # `numpy-lstm demo | head`: the reader left early. Point stdout at devnull so the
        # interpreter's final flush doesn't raise again (the recipe from Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        message = describe(err)
        if message is None:  # a bug: its traceback is what a report needs
            raise
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{args.command}: error: {message}", file=sys.stderr)
        return getattr(err, "status", 1)
    return status
