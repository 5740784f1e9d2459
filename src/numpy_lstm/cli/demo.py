"""`numpy-lstm demo`, the main job: train a character language model on Python's own
documentation for a few minutes, watch its samples improve, then look inside.

It writes a report folder — the gate explorer (one offline HTML file), PNG figures (what the
units that track quotes, brackets, line position and newlines do, character by character; gate
saturation; memory spans; how far back the last character's error reaches; the training and
validation curves), a narration in the gate vocabulary of what each unit found does where its
feature begins and ends (the opening and the closing quote, the opening bracket, the newline),
and the trained checkpoint — and prints the narration and where the report is.

Deterministic for a given seed on one machine: the number of steps is fixed by `--minutes`
through a rate calibrated on a 2-core machine (not by the clock), with the clock only as a safety
cap. Another BLAS or thread count changes the last bits, and with them which unit numbers win.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..inspect.events import feature_events, first_of_each
from ..inspect.trace import Trace, trace
from ..nn.module import evaluating
from ..tasks.charlm import CharLMTask
from ..train.losses import cross_entropy
from ..train.optim import Adam
from ..train.trainer import Trainer, TrainerConfig

STEPS_PER_MINUTE = 1350  # the default model on 2 Zen 4 cores, fast kernels (~40 ms a step)


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


def write_report(
    task: CharLMTask,
    trainer: Trainer,
    settings: DemoSettings,
    say: Any,
    training_losses: Sequence[dict[str, float]] = (),
) -> Path:
    """Explorer, figures, narration and summary into `settings.out`; returns the folder.
    `training_losses`: the training loss as logged ({"step", "loss", "bpc"}), for the curves."""
    from ..inspect import explorer, features, figures

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    start = len(task.val_streams) // 3  # a passage from the validation text, unseen in training
    passage = task.vocab.decode(task.val_streams[start : start + settings.passage_chars, 0])
    tr, bpc = passage_trace(task, passage)
    ranked = features.rank_units(tr, features.text_features(passage[:-1]))
    # the page's one-click picks, each with its r on the chip
    highlights: dict[str, int | tuple[int, float]] = dict(ranked)
    explorer.write_explorer(
        out / "explorer.html",
        passage[:-1],
        tr,
        highlights=highlights,
        title="numpy-lstm demo: a char-LM reading Python's docs",
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
    say(
        f"Character LM on Python's documentation ({len(task.vocab)} characters, "
        f"{task.train_streams.size:,} for training): Embedding(32) → "
        f"LSTM({settings.hidden_size}) → Linear; {settings.steps} steps of truncated BPTT "
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
        minutes=2 * settings.minutes,
        progress=None,
        checkpoint=str(Path(settings.out) / "charlm.ckpt"),
    )
    warmup = min(20, settings.steps // 10)
    schedule = {"name": "cosine", "total_steps": settings.steps, "warmup_steps": warmup}
    trainer = Trainer(task, Adam(task.model, lr=4e-3), schedule, config, (show_sample,), out)
    started = time.perf_counter()
    result = trainer.fit()
    say(
        f"trained {result['step']} steps in {time.perf_counter() - started:.0f} s; "
        f"validation {result['last']['bpc']:.3f} bits per character"
    )
    folder = write_report(task, trainer, settings, say, training_losses)
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
        "charlm.ckpt",
    ):
        say(f"  {name}")
    say("Open explorer.html in a browser; `numpy-lstm sample` continues text from charlm.ckpt.")
    return {**result, "report": str(folder)}
