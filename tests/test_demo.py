"""`numpy-lstm demo`, the main job, end to end on a tiny budget: it trains, samples, writes the
whole report, and does so deterministically for a seed."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

import numpy_lstm
from numpy_lstm.cli import demo, main
from numpy_lstm.cli.demo import (
    DemoSettings,
    code_passage,
    evaluate_on,
    narrate_events,
    run,
    spread_pieces,
    trained_text,
)
from numpy_lstm.io.native import load_tensors
from numpy_lstm.nn.module import evaluating
from numpy_lstm.tasks.charlm import CharLMTask, load_for_sampling

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
    page = (folder / "explorer.html").read_text("utf-8")
    for plane in ("top_id", "top_p", "saliency"):  # the model's predictions, on the page too
        assert f'id="plane-{plane}"' in page
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
    marks = {"opening quote": "[\"]|[']", "closing quote": "[\"]|[']", "newline": "[↵]"}
    marks |= {"opening bracket": "[(]|[[]|[{]", "closing bracket": "[)]|[]]|[}]"}
    marks |= {"comment starts": "[#]", "comment ends": "[↵]", "unclosed string ends": "[↵]"}
    marks |= {"indent": "[ ]", "dedent": "]"}
    told = [line.strip() for line in narration.splitlines() if line.startswith("  ")]
    assert told
    for line in told:
        kind = next((k for k in marks if line.startswith(k + " ")), None)
        assert kind is not None, line  # an event, not the fallback "largest change"
        context = line.split("  step ")[0]
        assert any(mark in context for mark in marks[kind].split("|")), line
        assert "the Eraser wiped" in line
    # the closing measurements: held-out and trained-on text, measured alike, and their gap
    for key in ("validation_bpc", "training_bpc", "gap_bpc"):
        assert np.isfinite(summary[key]), key
    assert summary["gap_bpc"] == summary["validation_bpc"] - summary["training_bpc"]
    assert summary["validation_bpc"] == result["last"]["bpc"]  # the trainer's last evaluation
    assert "Python's standard library source" in printed
    html = (folder / "explorer.html").read_text()
    # offline: nothing loaded from the network (a namespace URI such as SVG's is no load)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:|url\(["']?https?:|@import""", html)
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
    quotes = narrate_events(tr, text, "inside a string", unit=4)
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


def test_cli_demo_runs_the_main_job_and_says_when_the_clock_cut_it_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "CLOCK_CAP", 1e-4)  # a machine far slower than the calibration
    out = tmp_path / "cli-report"
    assert main(["demo", "--minutes", "0.08", "--out", str(out), "--seed", "1"]) == 0
    assert (out / "explorer.html").exists() and (out / "charlm.ckpt").exists()
    printed = capsys.readouterr().out
    steps = DemoSettings(minutes=0.08).steps
    assert re.search(rf"stopped by the clock after \d+ of {steps} steps", printed), printed[-500:]


def test_evaluation_pieces_are_spread_over_the_whole_text() -> None:
    ids = np.arange(1000)
    pieces = spread_pieces(ids, 4, 10)  # (length, pieces), time-major like the task's streams
    assert pieces.shape == (10, 4)
    np.testing.assert_array_equal(pieces[0], [0, 330, 660, 990])  # first to last stretch
    np.testing.assert_array_equal(pieces[:, 1], np.arange(330, 340))
    short = spread_pieces(np.arange(9), 4, 10)  # too short: fewer, shorter pieces, no overlap
    assert short.shape == (2, 4) and len(set(short.reshape(-1).tolist())) == 8


def test_evaluate_on_is_the_tasks_own_evaluation_on_other_streams(tmp_path: Path) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("def f(x):\n    return (x, 'y')  # z\n" * 60, encoding="utf-8")
    task = CharLMTask(str(corpus), embedding_dim=4, hidden_size=8, batch_size=4, bptt=8)
    with evaluating(task.model):
        expected = task.evaluate()
    validation = task.val_streams
    assert evaluate_on(task, validation.copy()) == expected
    assert task.val_streams is validation  # put back
    for _ in range(3):
        task.train_step()
    # the text read so far: 3 windows of 8 (and the target after them) of each of 4 streams
    read = trained_text(task)
    assert len(read) == 4 * 25
    np.testing.assert_array_equal(read[:25], task.train_streams[:25, 0])


def test_the_passage_starts_at_top_level_code_not_inside_a_docstring() -> None:
    held_out = (
        "# file: a.py\n"
        '"""A docstring that shows code:\n\ndef not_this():\n    pass\n"""\n'
        "x = 1\n"
        "def this_one():\n    return 2\n"
    )
    assert code_passage(held_out, 10) == "def this_o"
