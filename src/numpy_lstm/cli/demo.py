"""`numpy-lstm demo`, the main job: train a character language model on Python's standard
library source (≈ 31 MB, in every CPython: :func:`~numpy_lstm.tasks.charlm.default_corpus`) for a
few minutes, watch its samples improve, then look inside.

Four minutes read ≈ 11 M characters, less than half of the training text, so the model cannot
memorise it: the held-out modules are predicted as well as the ones trained on, and the
report measures both the same way (:func:`held_out_and_trained_bpc`).

It writes a report folder — the gate explorer (one offline HTML file), PNG figures (what the
units that track strings, comments, brackets, indentation, line position and newlines do,
character by character; gate saturation; memory spans; how far back the last character's error
reaches; the training and validation curves), a narration in the gate vocabulary of what each
unit found does where its feature begins and ends (the opening and the closing quote, the #
and the newline, the opening bracket, the indent), summary.json, and the trained checkpoint —
and prints the narration and where the report is.

Deterministic for a given seed on one machine: the number of steps is fixed by `--minutes`
through a rate calibrated on a 2-core machine (not by the clock), with the clock only as a safety
cap (CLOCK_CAP times `--minutes`). Another BLAS or thread count changes the last bits, and with
them which unit numbers win.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..inspect.events import feature_events, first_of_each
from ..inspect.features import scan_strings
from ..inspect.predict import next_characters
from ..inspect.trace import Trace, trace
from ..nn.module import evaluating
from ..tasks.charlm import CharLMTask
from ..train.losses import cross_entropy
from ..train.optim import Adam
from ..train.trainer import Trainer, TrainerConfig

STEPS_PER_MINUTE = 1350  # the default model on 2 Zen 4 cores, fast kernels (~40 ms a step)
# The clock stops a run only past this many times `--minutes`: 2 Zen 3 (EPYC) cores shared with
# other jobs took ~100 ms a step, 5,400 steps in ~10 minutes — a run cut there by the clock
# would no longer be the seed's run.
CLOCK_CAP = 3.0
# Evaluation reads EVAL_PIECES stretches of EVAL_PIECE_CHARS characters spread evenly over the
# held-out text (side by side, as streams): ~128 modules rather than the ~13 that the same
# 320,000 characters in one piece would cover, so the score does not hinge on which modules
# those are (one file's difficulty varies by ±0.5 bits per character); the whole 3 MB held
# out would cost a minute an evaluation.
EVAL_PIECES, EVAL_PIECE_CHARS = 128, 2500


@dataclass(frozen=True)
class DemoSettings:
    minutes: float = 4.0
    seed: int = 0
    out: str = "demo-report"
    hidden_size: int = 256
    passage_chars: int = 2000
    sample_chars: int = 160

    @property
    def steps(self) -> int:
        return max(20, round(self.minutes * STEPS_PER_MINUTE))


def passage_trace(task: CharLMTask, text: str, last_only: bool = False) -> tuple[Trace, float]:
    """Trace the model reading `text` (eval mode) with the gradient of the next-character loss
    flowing back through time — of every step's loss, or (`last_only`) of the last step's, which
    shows how far back a single error reaches. Returns the trace and the loss in bits/char."""
    model = task.model
    ids = task.vocab.encode(text)
    with evaluating(model):
        tr = trace(model.lstm, model.embedding(ids[:-1, None]))
        logits = model.head(tr.layer().h)  # (T, 1, V)
        counted = np.zeros(len(ids) - 1, dtype=bool)
        counted[-1 if last_only else 0 :] = True
        loss, dlogits = cross_entropy(logits, ids[1:, None], mask=counted[:, None])
        tr.backward(model.head.backward(dlogits))
    return tr, loss / np.log(2)


def spread_pieces(ids: np.ndarray, pieces: int, length: int) -> np.ndarray:
    """ids (N,) → (length, pieces) time-major streams: `pieces` stretches of `length`
    characters spread evenly over the text, from its start to its end; fewer and shorter ones
    when N < pieces · length (at least one of ≥ 1 character; N ≥ 2 needed)."""
    if len(ids) < 2:
        raise ValueError(f"ids: expected at least 2 characters, got {len(ids)}")
    pieces = max(1, min(pieces, len(ids) // 2))
    length = min(length, len(ids) // pieces)
    starts = np.linspace(0, len(ids) - length, pieces).round().astype(np.int64)
    return np.stack([ids[start : start + length] for start in starts], axis=1)


def trained_text(task: CharLMTask) -> np.ndarray:
    """(N,) the training characters the model has read so far (all of them after a first
    pass), each stream's part in text order."""
    read = task.position + task.bptt - task.stride + 1  # the last window reached this row
    rows = len(task.train_streams) if task.epoch > 0 else min(read, len(task.train_streams))
    return task.train_streams[:rows].T.reshape(-1)


def evaluate_on(task: CharLMTask, streams: np.ndarray) -> dict[str, float]:
    """`task.evaluate()` — the loss streamed over (L, B) streams with the state carried, in
    eval mode — on `streams` instead of the task's validation streams."""
    held_out = task.val_streams
    task.val_streams = streams
    try:
        with evaluating(task.model):
            return task.evaluate()
    finally:
        task.val_streams = held_out


def held_out_and_trained_bpc(task: CharLMTask) -> dict[str, float]:
    """Validation and training bits per character measured the same way: `task.evaluate` on
    the task's (spread) validation streams, and on as many characters, spread the same way, of
    the training text the model has read. Their difference (the gap) is what memorising the
    training text would show."""
    length, pieces = task.val_streams.shape
    trained = spread_pieces(trained_text(task), pieces, length)
    validation, training = evaluate_on(task, task.val_streams), evaluate_on(task, trained)
    return {
        "validation_bpc": validation["bpc"],
        "training_bpc": training["bpc"],
        "gap_bpc": validation["bpc"] - training["bpc"],
        "validation_chars": int(task.val_streams.size),
        "training_chars": int(trained.size),
    }


def code_passage(held_out: str, chars: int) -> str:
    """`chars` characters of the held-out text starting at a top-level `def` or `class` (from a
    third of the way in, else anywhere) that is code, not text inside a string: the
    features' reading of strings and comments starts outside any, so it is exact there."""
    start = len(held_out) // 3
    candidates = [m.start() for m in re.finditer(r"^(?:def|class) \w", held_out, re.MULTILINE)]
    for at in sorted(candidates, key=lambda at: (at < start, at)):
        header = held_out.rfind("# file: ", 0, at)  # the file's first line: outside any string
        in_string, in_comment = scan_strings(held_out[max(header, 0) : at + 1])
        if not (in_string[-1] or in_comment[-1]) and at + chars <= len(held_out):
            return held_out[at : at + chars]
    return held_out[start : start + chars]


def write_report(
    task: CharLMTask,
    trainer: Trainer,
    settings: DemoSettings,
    say: Any,
    training_losses: Sequence[dict[str, float]] = (),
    passage: str | None = None,
    final: dict[str, float] | None = None,
) -> Path:
    """Explorer, figures, narration and summary into `settings.out`; returns the folder.
    `training_losses`: the training loss as logged ({"step", "loss", "bpc"}), for the curves;
    `passage`: the text to look inside (default: from the validation streams, unseen in
    training); `final`: the closing measurements (:func:`held_out_and_trained_bpc`)."""
    from ..inspect import explorer, features, figures

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    if passage is None:
        start = len(task.val_streams) // 3
        passage = task.vocab.decode(task.val_streams[start : start + settings.passage_chars, 0])
    tr, bpc = passage_trace(task, passage)
    ranked = features.rank_units(tr, features.text_features(passage[:-1]))
    # the page's one-click picks, each with its r on the chip
    highlights: dict[str, int | tuple[int, float]] = dict(ranked)
    model, ids = task.model, task.vocab.encode(passage[:-1])
    with evaluating(model):  # what the model expects next at each step, and what drove it
        alphabet = [task.vocab.decode([k]) for k in range(len(task.vocab))]
        predictions = next_characters(model.embedding, model.lstm, model.head, ids, alphabet)
    explorer.write_explorer(
        out / "explorer.html",
        passage[:-1],
        tr,
        highlights=highlights,
        title="numpy-lstm demo: a char-LM reading Python's standard library",
        predictions=predictions,
    )
    names = figures.unit_names(ranked)  # unit → "inside quotes, r = +0.62"
    window = passage[:120]
    short, _ = passage_trace(task, window)
    figures.unit_rows(short, out / "gates.png", list(window[:-1]), names)
    figures.saturation_scatter(tr, out / "saturation.png", names=names)
    figures.memory_span_histogram(tr, out / "memory_span.png", names=names)
    reach, _ = passage_trace(task, passage[:400], last_only=True)
    figures.gradient_through_time(
        reach, out / "gradient_through_time.png", loss="the last character's loss"
    )
    figures.training_curves(
        trainer.history,
        out / "training.png",
        training=training_losses,
        baseline=task.baseline()["bpc"],
        baseline_label="unigram baseline",
        metric="bpc",
    )
    lines = [f"Passage bits per character: {bpc:.3f}"]
    lines += [f"Units found: {len(ranked)} of {len(features.text_features(''))} features"]
    for name, (unit, corr) in ranked.items():  # a unit tracking two features is told twice
        lines += ["", f"Unit {unit} tracks “{name}” (correlation {corr:+.2f} with its memory)."]
        lines += narrate_events(tr, passage[:-1], name, unit)
    (out / "narration.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {
        "steps": trainer.step,
        "history": trainer.history,
        "training": list(training_losses),
        "units": ranked,
        "passage_bpc": bpc,
        "baseline_bpc": task.baseline()["bpc"],
        **(final or {}),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float), "utf-8")
    for line in lines:
        say(line)
    return out


def narrate_events(tr: Trace, text: str, feature: str, unit: int, per_kind: int = 2) -> list[str]:
    """What the unit's gates did where `feature` begins and ends in `text` (the first `per_kind`
    events of each kind); for a feature without such events, at the steps where its memory
    changed most, said as such."""
    events = first_of_each(feature_events(text, feature), per_kind)
    if not events:
        steps = _interesting_steps(tr, unit, 3)
        return [f"  largest change  {_context(text, t)}  {tr.explain(t, unit)}" for t in steps]
    width = max(len(event.what) for event in events)
    return [
        f"  {event.what:<{width}}  {_context(text, event.step)}  {tr.explain(event.step, unit)}"
        for event in events
    ]


def _interesting_steps(tr: Trace, unit: int, count: int) -> list[int]:
    """The steps where the unit's memory changed the most."""
    record = tr.layer()
    change = np.abs(record.c[:, 0, unit] - record.c_before[:, 0, unit])
    return sorted(np.argsort(-change)[:count].tolist())


def _context(text: str, step: int) -> str:
    before = text[max(0, step - 12) : step].replace("\n", "↵")
    return f"…{before}[{text[step].replace(chr(10), '↵')}]"


def run(settings: DemoSettings, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Train, sample at every evaluation, write the report; return a summary."""

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    task = CharLMTask(hidden_size=settings.hidden_size, batch_size=32, bptt=64, seed=settings.seed)
    held_out = task.vocab.decode(task.val_streams.T.reshape(-1))  # the validation text, in order
    passage = code_passage(held_out, settings.passage_chars)
    # evaluations read a spread sample of it (EVAL_PIECES), not all 3 MB
    task.val_streams = spread_pieces(
        task.val_streams.T.reshape(-1), EVAL_PIECES, EVAL_PIECE_CHARS + 1
    )
    share = settings.steps * task.items_per_step / task.train_streams.size
    say(
        f"Character LM on Python's standard library source: {task.train_streams.size:,} "
        f"characters to train on, of which {settings.steps} steps read {share:.0%}; "
        f"{len(held_out):,} held out; {len(task.vocab)} distinct characters. "
        f"Embedding(32) → LSTM({settings.hidden_size}) → Linear, truncated BPTT "
        "(64 characters × 32 streams)"
    )
    say(f"unigram baseline: {task.baseline()['bpc']:.2f} bits per character")

    training_losses: list[dict[str, float]] = []  # the trainer's history has evaluations only

    def show_sample(trainer: Trainer, event: str, metrics: dict[str, float]) -> None:
        if event == "log":
            loss = metrics["loss"]
            training_losses.append({"step": trainer.step, "loss": loss, "bpc": loss / np.log(2)})
        if event == "eval":
            text = task.sample("\n", settings.sample_chars, temperature=0.7, seed=settings.seed)
            say(f"— sample at step {trainer.step} ({metrics['bpc']:.2f} bpc) —\n{text}\n")

    Path(settings.out).mkdir(parents=True, exist_ok=True)
    config = TrainerConfig(
        steps=settings.steps,
        eval_every=max(1, settings.steps // 5),
        log_every=50,
        clip_norm=1.0,
        minutes=CLOCK_CAP * settings.minutes,
        progress=None,
        checkpoint=str(Path(settings.out) / "charlm.ckpt"),
    )
    warmup = min(20, settings.steps // 10)
    schedule = {"name": "cosine", "total_steps": settings.steps, "warmup_steps": warmup}
    trainer = Trainer(task, Adam(task.model, lr=4e-3), schedule, config, (show_sample,), out)
    started = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - started
    final = held_out_and_trained_bpc(task) | {
        "train_seconds": seconds,
        "training_text_chars": int(task.train_streams.size),
        "share_of_training_text_read": trainer.step * task.items_per_step / task.train_streams.size,
    }
    if result["stopped"] == "time budget":
        say(
            f"stopped by the clock after {result['step']} of {settings.steps} steps (the limit is "
            f"{CLOCK_CAP:g} × --minutes): this machine is slower or busier than the 2 cores the "
            "rate was calibrated on; the report below is of the shorter run"
        )
    say(
        f"trained {result['step']} steps in {seconds:.0f} s; held-out validation "
        f"{final['validation_bpc']:.3f} bits per character, trained-on text "
        f"{final['training_bpc']:.3f} (measured the same way, eval mode, "
        f"{final['training_chars']:,} characters each): gap {final['gap_bpc']:+.3f}"
    )
    folder = write_report(task, trainer, settings, say, training_losses, passage, final)
    say("")
    say(f"Report written to {folder.resolve()}/")
    for name in (
        "explorer.html",
        "gates.png",
        "saturation.png",
        "memory_span.png",
        "gradient_through_time.png",
        "training.png",
        "narration.txt",
        "summary.json",
        "charlm.ckpt",
    ):
        say(f"  {name}")
    say("Open explorer.html in a browser; `numpy-lstm sample` continues text from charlm.ckpt.")
    return {**result, "report": str(folder)}
