"""`numpy-lstm demo`, the main job, end to end on a tiny budget: it trains, samples, writes the
whole report, and does so deterministically for a seed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

import numpy_lstm
from numpy_lstm.cli import main
from numpy_lstm.cli.demo import DemoSettings, narrate_events, run
from numpy_lstm.io.native import load_tensors
from numpy_lstm.tasks.charlm import load_for_sampling

TINY = {"minutes": 0.1, "hidden_size": 24, "passage_chars": 300}


def test_demo_writes_the_whole_report(tmp_path: Path) -> None:
    out = io.StringIO()
    result = run(DemoSettings(out=str(tmp_path / "report"), **TINY), out=out)
    folder = Path(result["report"])
    for name in (
        "explorer.html",
        "gates.png",
        "saturation.png",
        "memory_span.png",
        "gradient_through_time.png",
        "training.png",
        "narration.txt",
        "charlm.ckpt",
        "summary.json",
    ):
        assert (folder / name).stat().st_size > 0, name
    printed = out.getvalue()
    assert printed.count("— sample at step") == 5  # a sample at every evaluation
    assert f"Report written to {folder.resolve()}/" in printed
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["steps"] == DemoSettings(**TINY).steps == result["step"]
    assert summary["training"][-1]["step"] == result["step"]  # the training curve, for the figure
    narration = (folder / "narration.txt").read_text()
    # every named unit is narrated (and printed), each at its feature's events: the character
    # in brackets is the event's own, and the Eraser's number is what it erased
    assert summary["units"]  # a tiny model still tracks the position in the line
    for feature, (unit, r) in summary["units"].items():
        header = f"Unit {unit} tracks “{feature}” (correlation {r:+.2f} with its memory)."
        assert header in narration and header in printed
    marks = {"opening quote": '["]', "closing quote": '["]', "newline": "[↵]"}
    marks |= {"opening bracket": "[(]|[[]|[{]", "closing bracket": "[)]|[]]|[}]"}
    told = [line.split() for line in narration.splitlines() if line.startswith("  ")]
    assert told
    for words in told:
        kind = " ".join(words[:2]) if words[0] in ("opening", "closing") else words[0]
        assert kind in marks, words  # an event, not the fallback "largest change"
        assert any(mark in " ".join(words) for mark in marks[kind].split("|")), words
        assert "the Eraser wiped" in " ".join(words)
    html = (folder / "explorer.html").read_text()
    assert "http://" not in html and "https://" not in html
    model, vocab = load_for_sampling(folder / "charlm.ckpt")  # the checkpoint is usable
    assert len(vocab) == model.head.out_features


def test_narration_is_at_the_feature_events_with_the_trace_numbers(
    rng: np.random.Generator,
) -> None:
    """Each narrated step is an event of the feature (its quote, its newline), and says what
    Trace.explain says there: the Eraser's 1 − f from the trace's own forget gate."""
    text = 'a = "x" + f(y)\nb = "zz"\n'
    lstm = numpy_lstm.LSTM(3, 6, dtype=np.float64, rng=rng)
    tr = numpy_lstm.trace(lstm, rng.standard_normal((len(text), 1, 3)))
    quotes = narrate_events(tr, text, "inside quotes", unit=4)
    assert [line.split()[:2] for line in quotes] == [
        ["opening", "quote"],
        ["closing", "quote"],
        ["opening", "quote"],
        ["closing", "quote"],
    ]
    for line, step in zip(quotes, (4, 6, 19, 22), strict=True):
        assert text[step] == '"' and line.endswith(tr.explain(step, 4))
        erased = 100 - round(100 * float(tr.gate("f")[step, 0, 4]))
        assert f"step {step}, unit 4: the Eraser wiped {erased}% of the memory" in line
    newlines = narrate_events(tr, text, "after newline", unit=1)
    assert [int(line.split("step ")[1].split(",")[0]) for line in newlines] == [14, 23]
    brackets = narrate_events(tr, text, "inside brackets", unit=0)
    assert [line.split()[:2] for line in brackets] == [
        ["opening", "bracket"],
        ["closing", "bracket"],
    ]


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        run(DemoSettings(out=str(tmp_path / name), seed=3, **TINY), out=io.StringIO())
    a, b = (load_tensors(tmp_path / n / "charlm.ckpt")[0] for n in "ab")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert (tmp_path / "a" / "narration.txt").read_text() == (
        tmp_path / "b" / "narration.txt"
    ).read_text()


def test_cli_demo_runs_the_main_job(tmp_path: Path) -> None:
    out = tmp_path / "cli-report"
    assert main(["demo", "--minutes", "0.08", "--out", str(out), "--seed", "1"]) == 0
    assert (out / "explorer.html").exists() and (out / "charlm.ckpt").exists()
