"""`numpy-lstm demo --task adding`: an LSTM learns the adding problem, then shows its gates doing
it.

The adding problem (Hochreiter & Schmidhuber, 1997; modern form): each sequence has T steps with
two channels — a value U(0, 1) and a marker that is 1 at exactly two steps (one in each half) —
and the target is the sum of the two marked values. The network must open its Filter (input gate)
at the marked steps only, keep the sum with its Eraser (forget gate) near 1, and read it out at
the end. Always predicting 1.0 (the mean target) scores MSE = Var(U₁ + U₂) = 1/6 ≈ 0.167.

Everything is the library's: the task (:class:`~numpy_lstm.tasks.synthetic.AddingTask`), the
:class:`~numpy_lstm.train.trainer.Trainer`, the gate trace and
:func:`~numpy_lstm.tasks.synthetic.adding_gate_evidence`; this module picks the sizes and words
the report, which it writes to any text stream, and — given a folder — the gate explorer page of
the test sequence it prints (explorer.html): each step's two inputs, the memory unit's story and
the printed table explained in plain words with this run's numbers.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from ..inspect.explorer import InputRow, write_explorer
from ..inspect.trace import Trace, trace
from ..nn.models import SequenceToOne
from ..nn.module import evaluating
from ..tasks.synthetic import AddingTask, adding_gate_evidence
from ..train.losses import mse_loss
from ..train.optim import Adam
from ..train.trainer import Trainer, TrainerConfig

# What the report states about the unit it shows (adding_gate_evidence's names, at that unit).
UNIT_EVIDENCE = (
    "filter_marked",
    "filter_unmarked",
    "eraser_between",
    "writer_value_corr",
    "presenter_last",
    "memory_target_corr",
)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and training settings of the demo (chosen to run in seconds on 2 CPU cores)."""

    seq_len: int = 25
    hidden_size: int = 24
    batch_size: int = 64
    steps: int = 1500
    lr: float = 1e-2
    log_every: int = 100
    test_size: int = 1000


class AddingWithBaselines(AddingTask):
    """The adding task that also keeps, for each training batch, the MSE of always predicting
    1.0 — the report's comparison column, on the very batches the model trains on. (No `name`
    of its own: it is not a task that checkpoints could name.)"""

    batch_baselines: list[float]

    def loss(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        self.batch_baselines.append(mse_loss(np.ones_like(target), target)[0])
        return super().loss(prediction, target)


def readings(model: SequenceToOne, tr: Trace) -> np.ndarray:
    """(T, B): the head's reading of h after every step of the trace — what the model would
    answer if the sequence ended there (the last one is its prediction)."""
    reading: np.ndarray = tr.layer().h @ model.head.weight[0] + model.head.bias[0]
    return reading


def unit_evidence(tr: Trace, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The unit whose Filter (i) tells marked from unmarked steps best, and its evidence (see
    :func:`adding_gate_evidence`), from a trace on x (T, B, 2) with targets y (B, 1)."""
    evidence = adding_gate_evidence(tr, x, y)
    unit = int(np.argmax(np.abs(evidence["filter_marked"] - evidence["filter_unmarked"])))
    return {"unit": unit, **{name: float(evidence[name][unit]) for name in UNIT_EVIDENCE}}


def format_table(x: np.ndarray, tr: Trace, reading: np.ndarray, unit: int) -> list[str]:
    """Per-step table for one sequence: x (T, 2), tr traced on it alone (B = 1), reading (T,)
    the head's reading after each step; the gates, memory c and output h of `unit`."""
    header = (
        f"{'t':>3} {'value':>6} {'mark':>4} {'pred':>6} │ {'i Filter':>8} {'f kept':>8} "
        f"{'g Writer':>8} {'o Presenter':>11} {'c':>7} {'h':>7}"
    )
    i, f, g, o = (tr.gate(name)[:, 0, unit] for name in "ifgo")
    record = tr.layer()
    c, h = record.c[:, 0, unit], record.h[:, 0, unit]
    lines = [header, "─" * len(header)]
    for t in range(x.shape[0]):
        lines.append(
            f"{t:>3} {x[t, 0]:>6.3f} {int(x[t, 1]):>4} {reading[t]:>6.3f} │ {i[t]:>8.3f} "
            f"{f[t]:>8.3f} {g[t]:>8.3f} {o[t]:>11.3f} {c[t]:>7.3f} {h[t]:>7.3f}"
            + ("  ◀ marked" if x[t, 1] else "")
        )
    return lines


def explain(stats: dict[str, float]) -> list[str]:
    """A few lines in the gate vocabulary, each stating a measured number from `stats`; the
    verdicts depend on the numbers, so a barely trained model is not credited with a mechanism."""
    filter_contrast = stats["filter_marked"] - stats["filter_unmarked"]
    writer, eraser = abs(stats["writer_value_corr"]), stats["eraser_between"]
    return [
        f"Unit {stats['unit']}, over the test set:",
        f"  Filter (i) averages {stats['filter_marked']:.2f} at the marked steps and "
        f"{stats['filter_unmarked']:.2f} elsewhere: "
        + _verdict(
            filter_contrast,
            [(0.5, "it lets in only the values to add.")],
            "it does not single out the marked steps yet.",
        ),
        f"  Writer (g) at the marked steps follows the value with correlation "
        f"{stats['writer_value_corr']:+.3f}: "
        + _verdict(
            writer,
            [(0.9, "it writes the value (up to sign)."), (0.5, "a rough copy of the value.")],
            "it does not track the value yet.",
        ),
        f"  Eraser (1 − f) averages {1 - eraser:.3f} between the marks (the forget gate f "
        f"keeps {eraser:.3f}): "
        + _verdict(
            eraser,
            [(0.9, "the memory c is kept, not erased."), (0.5, "the memory c fades.")],
            "the memory c is mostly erased at every step.",
        ),
        f"  Presenter (o) is {stats['presenter_last']:.2f} at the last step; the final memory c "
        f"follows the target with correlation {stats['memory_target_corr']:+.3f}"
        + _verdict(abs(stats["memory_target_corr"]), [(0.9, ": this unit holds the sum.")], "."),
    ]


# The page's text: one glyph per step, the marked steps standing out.
MARKED_GLYPH, UNMARKED_GLYPH = "▲", "·"


@dataclass(frozen=True)
class SequenceStory:
    """One test sequence as the page tells it: its inputs x (T, 2), its trace (B = 1), the
    head's reading after each step (T,), its target, and the shown unit's facts: `stats`
    (:func:`unit_evidence`), the Writer's straight-line fit g ≈ slope·value + offset at the
    marked steps of the test set, and the head's weight on the unit."""

    x: np.ndarray
    trace: Trace
    reading: np.ndarray
    target: float
    stats: dict[str, float]
    writer_slope: float
    writer_offset: float
    head_weight: float
    test_size: int


def writer_fit(tr: Trace, x: np.ndarray, unit: int) -> tuple[float, float]:
    """(slope, offset) of the least-squares line g ≈ slope·value + offset of `unit`'s Writer at
    the marked steps of x (T, B, 2), traced in tr: the value "up to sign and offset"."""
    marked = x[..., 1] > 0.5
    values, written = x[..., 0][marked].astype(np.float64), tr.gate("g")[..., unit][marked]
    slope, offset = np.polyfit(values, written.astype(np.float64), 1)
    return float(slope), float(offset)


def page_notes(story: SequenceStory) -> list[str]:
    """The page's paragraphs: the task, what each column of the printed table means, and the
    story of the shown unit — Filter, Writer, Eraser, Presenter and head — with this run's
    numbers. Each claim is worded by the numbers, so an untrained model is not credited."""
    stats, x, reading = story.stats, story.x, story.reading
    unit = int(stats["unit"])
    T = x.shape[0]
    first, second = (int(t) for t in np.flatnonzero(x[:, 1] > 0.5)[:2])
    v1, v2 = float(x[first, 0]), float(x[second, 0])
    i, g, o = (story.trace.gate(name)[:, 0, unit] for name in "igo")
    record = story.trace.layer()
    c, h = record.c[:, 0, unit], record.h[:, 0, unit]
    c_before = record.c_before[:, 0, unit]
    others = np.ones(T, dtype=bool)
    others[[first, second]] = False
    filter_contrast = stats["filter_marked"] - stats["filter_unmarked"]
    writer, eraser = abs(stats["writer_value_corr"]), stats["eraser_between"]
    offset = f"{'+' if story.writer_offset >= 0 else '−'} {abs(story.writer_offset):.2f}"
    return [
        f"The task: at each of its {T} steps the network reads two inputs, a value between 0 "
        f"and 1 and a marker that is 1 at exactly two steps ({MARKED_GLYPH} in the text row, "
        f"{UNMARKED_GLYPH} elsewhere) and 0 at the others. After the last step it must answer "
        f"the sum of the two marked values. Here they are {v1:.2f} (step {first}) and "
        f"{v2:.2f} (step {second}): the target is {story.target:.3f}, and the model answers "
        f"{reading[-1]:.3f}.",
        "The table the demo prints has one row per step. t is the step; value and mark are "
        "the two inputs; pred is what the head would answer if the sequence ended after that "
        "step (it reads the output h of every unit). The other columns follow one unit, "
        f"{unit}, the memory unit picked on this page: i is its Filter (how much of the "
        "Writer's candidate gets into the memory), f kept is the share of the old memory the "
        "forget gate keeps (the Eraser wipes the rest, 1 − f), g is the Writer's candidate, o "
        "is the Presenter (how much of the memory is shown), c is the memory after the step "
        "and h = o·tanh(c) the unit's output.",
        _verdict(
            filter_contrast,
            [(0.5, "The Filter opens at the markers: ")],
            "The Filter does not single out the markers yet: ",
        )
        + f"unit {unit}'s i is {i[first]:.2f} and {i[second]:.2f} at the two marked steps and "
        f"{i[others].mean():.2f} on average at the other steps of this sequence (over "
        f"{story.test_size} test sequences: {stats['filter_marked']:.2f} at marked steps, "
        f"{stats['filter_unmarked']:.2f} elsewhere).",
        _verdict(
            writer,
            [
                (0.9, "The Writer writes the value, up to sign and offset: "),
                (0.5, "The Writer writes a rough copy of the value, up to sign and offset: "),
            ],
            "The Writer does not follow the value yet: ",
        )
        + f"the straight line through its candidates at the marked steps is g ≈ "
        f"{story.writer_slope:+.2f} × value {offset} (correlation "
        f"{stats['writer_value_corr']:+.3f} over the test set) — here {g[first]:+.2f} for "
        f"{v1:.2f} and {g[second]:+.2f} for {v2:.2f}. "
        "A scaled, flipped or shifted copy is as good as the value itself: the head undoes "
        "the scale and the sign with its weight and the shift with its bias.",
        _verdict(
            eraser,
            [(0.9, "The Eraser keeps it: "), (0.5, "The Eraser lets it fade: ")],
            "The Eraser wipes it: ",
        )
        + f"between the marks the forget gate keeps {eraser:.3f} of the memory at each step "
        f"(the Eraser wipes {1 - eraser:.3f}; over the test set). Here the memory c goes from "
        f"{c_before[first]:+.2f} to {c[first]:+.2f} at the first mark, is {c_before[second]:+.2f} "
        f"when the second arrives, becomes {c[second]:+.2f} there and ends at {c[-1]:+.2f}."
        + (
            f" Between the marks it drifts by {c_before[second] - c[first]:+.2f}: the Filter is "
            f"not quite shut (i ≈ {i[others].mean():.2f}) nor the Eraser quite idle, so each "
            "step writes or wipes a little."
            if second > first + 1 and abs(c_before[second] - c[first]) >= 0.05
            else ""
        ),
        f"The Presenter and the head read it out: at the last step the Presenter shows "
        f"o = {o[-1]:.2f} of the memory, so the unit's output is h = {h[-1]:+.2f}. The head "
        f"multiplies each unit's output by its weight (for unit {unit}: "
        f"{story.head_weight:+.2f}) and adds them up with its bias: {reading[-1]:.3f}, for a "
        f"target of {story.target:.3f}. Over the test set the final memory of unit {unit} "
        f"follows the target with correlation {stats['memory_target_corr']:+.3f}"
        + _verdict(
            abs(stats["memory_target_corr"]),
            [(0.9, ": this unit holds the sum.")],
            "; other units share the work.",
        ),
    ]


def write_page(folder: str | Path, story: SequenceStory) -> Path:
    """The explorer page of the story's sequence into folder/explorer.html: one glyph per step,
    the inputs as rows, the shown unit highlighted, :func:`page_notes` as its notes."""
    x, stats = story.x, story.stats
    text = "".join(MARKED_GLYPH if mark > 0.5 else UNMARKED_GLYPH for mark in x[:, 1])
    inputs: list[InputRow] = [
        {"label": "value", "values": [float(v) for v in x[:, 0]], "digits": 2},
        {"label": "marker", "values": [float(m) for m in x[:, 1]], "digits": 0},
    ]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unit, r = int(stats["unit"]), float(stats["memory_target_corr"])
    return write_explorer(
        folder / "explorer.html",
        text,
        story.trace,
        title=f"Adding problem · LSTM(2→{story.trace.lstm.hidden_size}) gate explorer",
        highlights={"memory unit (holds the sum)": (unit, r)},
        inputs=inputs,
        notes=page_notes(story),
    )


def _verdict(value: float, levels: list[tuple[float, str]], otherwise: str) -> str:
    """The text of the first (threshold, text) level that `value` exceeds, else `otherwise`."""
    return next((text for threshold, text in levels if value > threshold), otherwise)


def run_demo(
    steps: int | None = None,
    seed: int = 0,
    out: TextIO = sys.stdout,
    config: DemoConfig | None = None,
    folder: str | Path | None = None,
) -> dict[str, float]:
    """Train on the adding problem, report to `out`, and return the final metrics; with a
    `folder`, also write the explorer page of the printed test sequence there (explorer.html).

    `steps` overrides `config.steps`. Deterministic for a given seed (the task spawns the
    model's, the training data's and the test set's generators from it). Returns {"final_mse",
    "baseline_mse" (both on the held-out test set), "train_mse" (mean over the last logging
    window), "steps", "seed", and :func:`unit_evidence`'s keys}.
    """
    config = config or DemoConfig()
    if steps is not None:
        config = replace(config, steps=steps)
    task = AddingWithBaselines(
        T=config.seq_len,
        hidden_size=config.hidden_size,
        batch_size=config.batch_size,
        eval_size=config.test_size,
        seed=seed,
    )
    task.batch_baselines = []
    model = task.model

    def say(text: str = "") -> None:
        print(text, file=out)

    say(
        f"Adding problem: T={config.seq_len}, batch {config.batch_size}, "
        f"LSTM(2→{config.hidden_size}) + Linear(→1), float32"
    )
    say(f"Adam lr={config.lr}, {config.steps} steps, seed {seed}; loss on the last step only")
    say(f"{'step':>6} {'train MSE':>10} {'baseline (predict 1)':>21}")
    train_mse = float("nan")

    def report_window(trainer: Trainer, event: str, metrics: dict[str, float]) -> None:
        """At every log: the window's mean training MSE next to predicting 1 on its batches."""
        nonlocal train_mse
        if event == "log":
            train_mse = metrics["loss"]
            baseline = float(np.mean(task.batch_baselines))
            say(f"{trainer.step:>6} {train_mse:>10.5f} {baseline:>21.5f}")
            task.batch_baselines.clear()

    trainer_config = TrainerConfig(
        steps=config.steps,
        eval_every=config.steps,
        log_every=config.log_every,
        clip_norm=None,
        progress=False,
    )
    optimizer = Adam(model, lr=config.lr)
    # The report is the table above; the trainer's own log lines go nowhere.
    trainer = Trainer(task, optimizer, None, trainer_config, (report_window,), out=io.StringIO())
    start = time.perf_counter()
    result = trainer.fit()
    say(f"trained in {time.perf_counter() - start:.1f} s")

    final_mse, base = result["last"]["mse"], task.baseline()["mse"]
    say(f"test MSE {final_mse:.5f} vs baseline {base:.5f} on {config.test_size} new sequences")

    x_test, y_test = task.eval_x, task.eval_y
    x0 = x_test[:, :1]  # the first test sequence, keeping the batch axis: (T, 1, 2)
    with evaluating(model):
        whole = trace(model.lstm, x_test)
        stats = unit_evidence(whole, x_test, y_test)
        one = trace(model.lstm, x0)
        reading = readings(model, one)[:, 0]
    unit = int(stats["unit"])
    say()
    say(f"One test sequence: target {y_test[0, 0]:.3f}, prediction {reading[-1]:.3f}.")
    say(f"pred = the head's reading of h after step t; gates, c and h of unit {unit},")
    say("the unit whose Filter follows the marker most:")
    for line in [*format_table(x0[:, 0], one, reading, unit), *explain(stats)]:
        say(line)
    if folder is not None:
        slope, offset = writer_fit(whole, x_test, unit)
        story = SequenceStory(
            x=x0[:, 0],
            trace=one,
            reading=reading,
            target=float(y_test[0, 0]),
            stats=stats,
            writer_slope=slope,
            writer_offset=offset,
            head_weight=float(model.head.weight[0, unit]),
            test_size=config.test_size,
        )
        path = write_page(folder, story)
        say()
        say(f"wrote {path}: this sequence step by step, the table explained; open it in a browser")
    return {
        "final_mse": final_mse,
        "baseline_mse": base,
        "train_mse": train_mse,
        "steps": config.steps,
        "seed": seed,
        **stats,
    }
