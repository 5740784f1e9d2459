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
the report, which it writes to any text stream.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass, replace
from typing import TextIO

import numpy as np

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


def _verdict(value: float, levels: list[tuple[float, str]], otherwise: str) -> str:
    """The text of the first (threshold, text) level that `value` exceeds, else `otherwise`."""
    return next((text for threshold, text in levels if value > threshold), otherwise)


def run_demo(
    steps: int | None = None,
    seed: int = 0,
    out: TextIO = sys.stdout,
    config: DemoConfig | None = None,
) -> dict[str, float]:
    """Train on the adding problem, report to `out`, and return the final metrics.

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
        stats = unit_evidence(trace(model.lstm, x_test), x_test, y_test)
        one = trace(model.lstm, x0)
        reading = readings(model, one)[:, 0]
    unit = int(stats["unit"])
    say()
    say(f"One test sequence: target {y_test[0, 0]:.3f}, prediction {reading[-1]:.3f}.")
    say(f"pred = the head's reading of h after step t; gates, c and h of unit {unit},")
    say("the unit whose Filter follows the marker most:")
    for line in [*format_table(x0[:, 0], one, reading, unit), *explain(stats)]:
        say(line)
    return {
        "final_mse": final_mse,
        "baseline_mse": base,
        "train_mse": train_mse,
        "steps": config.steps,
        "seed": seed,
        **stats,
    }
