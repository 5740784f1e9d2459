"""`numpy-lstm explore CHECKPOINT --text ...`: the gate explorer page of a char-LM on a text."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import check_writable, non_negative_count, positive_count, read_text

Subparsers = argparse._SubParsersAction
# At 256 units a page of this many characters takes 16–19 MB (the page
# rounds its numbers beyond 10,000 characters); --max-chars asks for more, or fewer.
DEFAULT_MAX_CHARS = 50_000
STAND_INS = "?· "  # what the model reads for a character it does not know: the first it knows


def readable(text: str, known: set[str]) -> tuple[str, list[int], str]:
    """text → (the text with every character outside `known` replaced by one stand-in, the
    steps replaced, the stand-in). The stand-in is the first of STAND_INS in the vocabulary
    (else its first character), so the model reads one fixed, familiar character there."""
    stand_in = next((ch for ch in STAND_INS if ch in known), min(known))
    steps = [t for t, ch in enumerate(text) if ch not in known]
    chars = list(text)
    for t in steps:
        chars[t] = stand_in
    return "".join(chars), steps, stand_in


def explore(
    checkpoint: str | Path,
    text: str,
    out: str | Path,
    *,
    layer: int = 0,
    direction: int = 0,
    max_chars: int | None = DEFAULT_MAX_CHARS,
) -> Path:
    """Trace a char-LM checkpoint on `text` (eval mode) and write its explorer page to `out`,
    with the units whose colours best track the text's features as highlights.

    Any text works: characters outside the model's vocabulary are read as one stand-in
    character and marked on the page; a text longer than max_chars is cut there. Both are
    reported on stderr."""
    from ..inspect import next_characters, rank_units, text_features, write_explorer
    from ..inspect.explorer import EXACT_VALUES
    from ..inspect.predict import MAX_PREDICTED_STEPS
    from ..inspect.trace import trace
    from ..tasks.charlm import load_for_sampling

    model, vocab = load_for_sampling(checkpoint)
    if max_chars is not None and len(text) > max_chars:
        print(
            f"warning: the text has {len(text):,} characters; showing the first {max_chars:,} "
            "(--max-chars sets the limit; at 256 units the page takes ~0.35 MB per 1,000 "
            "characters)",
            file=sys.stderr,
        )
        text = text[:max_chars]
    if not text:
        raise ValueError("text: expected at least one character")
    unknown = "".join(sorted({text[t] for t in range(len(text)) if text[t] not in vocab.index}))
    text, replaced, stand_in = readable(text, set(vocab.index))
    if replaced:
        print(
            f"warning: {len(replaced):,} character(s) are not in the model's vocabulary "
            f"({unknown[:20]!r}); the model reads {stand_in!r} in their place, marked on the page",
            file=sys.stderr,
        )
    model.eval()
    ids = vocab.encode(text)
    tr = trace(model.lstm, model.embedding(ids[:, None]))  # (T, 1, E): one sequence
    ranked = rank_units(tr, text_features(text), "c", layer=layer, direction=direction)
    # What the model expects next at each step, and which characters drove it (the stand-ins
    # are what the model read, so they count too): every step of a page that keeps its exact
    # numbers (≤ 10,000 characters at 256 units: ≤ 15 MB, room to spare), else the first
    # MAX_PREDICTED_STEPS, so that 50,000 characters stay under 20 MB.
    exact = len(text) * model.lstm.hidden_size <= EXACT_VALUES
    predictions = next_characters(
        model.embedding,
        model.lstm,
        model.head,
        ids,
        vocab.chars,
        max_steps=max(len(text), MAX_PREDICTED_STEPS) if exact else MAX_PREDICTED_STEPS,
    )
    return write_explorer(
        out,
        text,
        tr,
        layer=layer,
        direction=direction,
        highlights=dict(ranked),
        placeholders=replaced,
        predictions=predictions,
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
        default=DEFAULT_MAX_CHARS,
        help="show only the first characters of the text (default: %(default)s: under 20 MB "
        "at 256 units; beyond 10,000 characters the page rounds its numbers)",
    )
    parser.set_defaults(handler=_run_explore)
