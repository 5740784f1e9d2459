"""`numpy-lstm explore CHECKPOINT --text ...`: the gate explorer page of a char-LM on a text."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import check_writable, non_negative_count, positive_count, read_text

Subparsers = argparse._SubParsersAction


def explore(
    checkpoint: str | Path,
    text: str,
    out: str | Path,
    *,
    layer: int = 0,
    direction: int = 0,
    max_chars: int | None = None,
) -> Path:
    """Trace a char-LM checkpoint on `text` (eval mode) and write its explorer page to `out`,
    with the units that best track the text's features (memory c, |Pearson r|) as highlights."""
    from ..inspect import rank_units, text_features, write_explorer
    from ..inspect.trace import trace
    from ..tasks.charlm import load_for_sampling

    model, vocab = load_for_sampling(checkpoint)
    text = text if max_chars is None else text[:max_chars]
    ids = vocab.encode(text)
    if not len(ids):
        raise ValueError("text: expected at least one character")
    model.eval()
    tr = trace(model.lstm, model.embedding(ids[:, None]))  # (T, 1, E): one sequence
    ranked = rank_units(tr, text_features(text), "c", layer=layer, direction=direction)
    highlights = {f"{name} (r = {r:+.2f})": unit for name, (unit, r) in ranked.items()}
    return write_explorer(
        out,
        text,
        tr,
        layer=layer,
        direction=direction,
        highlights=highlights,
        title=f"Gate explorer · {Path(checkpoint).name}",
    )


def _run_explore(args: argparse.Namespace) -> int:
    text = args.text if args.text is not None else read_text(args.text_file, "--text-file")
    check_writable(args.out, "--out")
    path = explore(args.checkpoint, text, args.out, layer=args.layer, max_chars=args.max_chars)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it in any browser")
    return 0


def add_explore(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "explore",
        help="write an HTML page to explore a char-LM's gates on a text",
        description="Run a char-LM checkpoint on a text, recording every gate, and write one "
        "self-contained HTML file (no network needed): the text coloured by any unit's memory, "
        "output or gate, hover details with the narration, and units × steps heatmaps.",
    )
    parser.add_argument("checkpoint", help="a checkpoint written by `numpy-lstm train charlm`")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to run the model on")
    source.add_argument("--text-file", metavar="FILE", help="read the text from a UTF-8 file")
    parser.add_argument("--out", default="explorer.html", help="the page (default: %(default)s)")
    parser.add_argument(
        "--layer",
        type=non_negative_count("layer"),
        default=0,
        help="the layer to show (default: 0)",
    )
    parser.add_argument(
        "--max-chars",
        type=positive_count("max_chars"),
        default=None,
        help="show only the first characters of the text",
    )
    parser.set_defaults(handler=_run_explore)
