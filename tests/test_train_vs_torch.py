"""benchmarks/train_vs_torch.py runs as the README's command runs it (a script, from the
repository root) and reports a sane char-LM race: a smoke test on a tiny text for a second a
side, not a measurement."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")

ROOT = Path(__file__).resolve().parents[1]


def test_charlm_race_on_a_small_text_writes_sane_json(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    line = "The quick brown fox jumps over the lazy dog, {n} times; then it rests.\n"
    text.write_text("".join(line.format(n=n) for n in range(400)), encoding="utf-8")
    out = tmp_path / "race.json"
    options = ["--seconds", "1", "--threads", "1", "--hidden", "32", "--val-chars", "800"]
    options += ["--text", str(text), "--json", str(out), "--order", "ours-first"]
    options += ["--eval-every", "0.4"]
    done = subprocess.run(
        [sys.executable, "benchmarks/train_vs_torch.py", "charlm", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert json.loads(done.stdout) == report  # printed and written alike
    assert report["order"] == "ours-first" and report["threads"] == 1
    assert report["val_chars"] == 800  # the same 800 held-out characters on both sides
    assert report["model"]["vocab"] == len(set(text.read_text()))
    assert "CPU" in report["isa"] and report["cpu"]
    for side in ("numpy-lstm", "torch"):
        result = report[side]
        assert result["steps"] >= 1 and result["seconds"] >= 1
        assert result["chars_per_s"] == pytest.approx(
            result["steps"] * 32 * 100 / result["seconds"]
        )
        # a few steps from random weights: near log2(V), below the baseline's reach only later
        assert 0 < result["val_bpc"] < 2 * math.log2(report["model"]["vocab"])
        # validated at 0.4 and 0.8 s of training (off the clock), and at the end
        curve = result["val_curve"]
        assert len(curve) == 3 and 0.4 <= curve[0]["seconds"] < 0.8 <= curve[1]["seconds"] < 1
        assert [point["steps"] for point in curve] == sorted(point["steps"] for point in curve)
        assert curve[-1] == {
            "seconds": result["seconds"], "steps": result["steps"], "val_bpc": result["val_bpc"]
        }  # fmt: skip
        assert result["best_val_bpc"] == min(point["val_bpc"] for point in curve)
    ours, theirs = report["numpy-lstm"], report["torch"]
    assert report["chars_per_s_ratio"] == pytest.approx(ours["chars_per_s"] / theirs["chars_per_s"])
    assert report["bpc_difference"] == pytest.approx(ours["val_bpc"] - theirs["val_bpc"])
    assert report["best_bpc_difference"] == pytest.approx(
        ours["best_val_bpc"] - theirs["best_val_bpc"]
    )
    assert 0 < report["unigram_baseline_bpc"] < math.log2(report["model"]["vocab"])
