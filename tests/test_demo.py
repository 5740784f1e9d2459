"""`numpy-lstm demo`, the main job, end to end on a tiny budget: it trains, samples, writes the
whole report, and does so deterministically for a seed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from numpy_lstm.cli import main
from numpy_lstm.cli.demo import DemoSettings, run
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
    for feature in ("inside quotes", "inside brackets", "position in line", "after newline"):
        assert f"“{feature}”" in narration
    assert "the Eraser kept" in narration
    html = (folder / "explorer.html").read_text()
    assert "http://" not in html and "https://" not in html
    model, vocab = load_for_sampling(folder / "charlm.ckpt")  # the checkpoint is usable
    assert len(vocab) == model.head.out_features


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
