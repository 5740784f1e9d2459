"""`numpy-lstm bench` (numpy_lstm.cli.bench) runs end to end on tiny shapes and reports honestly:
every implementation timed, the fast path really used for "ours" and the reference for
"reference", GEMM bounds and ratios computed from the same numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from numpy_lstm import cli, kernels
from numpy_lstm.cli import bench

pytest.importorskip("onnxruntime")
pytest.importorskip("threadpoolctl")


def test_bench_quick_run_writes_json_and_markdown(tmp_path: Path, capsys) -> None:
    json_path, md_path = tmp_path / "out.json", tmp_path / "out.md"
    before = kernels.counts.copy()
    options = ["--quick", "--threads", "1", "--repeats", "2", "--min-sample", "0"]
    status = cli.main(["bench", *options, "--json", str(json_path), "--markdown", str(md_path)])
    assert status == 0
    report = json.loads(json_path.read_text())
    assert {r["mode"] for r in report["results"]} == {"inference", "training"}
    plain = next(r for r in report["results"] if r["mode"] == "inference")
    assert set(plain["timings"]) == {"ours", "reference", "torch", "onnxruntime"}
    for row in report["results"]:
        assert row["gemm_bound_ms"] > 0 and row["gflop"] > 0
        for timing in row["timings"].values():
            assert 0 < timing["min_ms"] <= timing["median_ms"]
    if kernels.fast_enabled():
        assert kernels.counts["fast"] > before["fast"]
    assert kernels.counts["reference"] > before["reference"]
    table = md_path.read_text()
    assert "| 20,4,8,16 | inference |" in table and "**1 thread**" in table
    assert table.strip() in capsys.readouterr().out


def test_gemm_shapes_count_every_product() -> None:
    case = bench.Case("x", T=10, B=2, I=3, H=4, layers=2, bidirectional=True)
    forward, training = bench.gemm_shapes(case)
    # per layer-direction: the input product and T recurrent ones
    assert forward == [(1, 20, 3, 16), (10, 2, 4, 16)] * 2 + [(1, 20, 8, 16), (10, 2, 4, 16)] * 2
    assert bench.flops(forward) == 2 * (2 * 20 * 3 * 16 + 2 * 20 * 8 * 16 + 4 * 10 * 2 * 4 * 16)
    assert len(training) == len(forward) + 4 * 4


def test_measure_interleaves_and_reports_median_and_min() -> None:
    calls = []
    timings = bench.measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, 0)
    assert calls[-6:] == ["a", "b"] * 3  # interleaved rounds after the warm-up
    assert set(timings) == {"a", "b"}
    assert all(np.isfinite(t["median_ms"]) for t in timings.values())
