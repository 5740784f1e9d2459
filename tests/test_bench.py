"""`numpy-lstm bench` (numpy_lstm.cli.bench) runs end to end on tiny shapes and reports honestly:
every implementation timed, the fast path really used for "ours" and the reference for
"reference", GEMM bounds and ratios computed from the same numbers."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from numpy_lstm import cli, kernels
from numpy_lstm.cli import bench, bench_cases

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
    names = {r["case"]["name"]: r for r in report["results"]}
    for case in ("head 20,4,8,16", "streaming 20 calls of 1,1,8,16"):  # what users do, too
        assert set(names[case]["timings"]) == {"ours", "reference", "torch", "onnxruntime"}
    assert set(names["char-LM 20,4,V12,E8,16"]["timings"]) == {"ours", "reference", "torch"}
    assert all(t["settled_ms"] > 0 for r in report["results"] for t in r["timings"].values())
    assert "CPU" in report["machine"]["isa"]
    table = md_path.read_text()
    assert "| 20,4,8,16 | inference |" in table and "**1 thread**" in table
    assert report["machine"]["isa"] in table.splitlines()[0]  # every figure names the CPU
    assert table.strip() in capsys.readouterr().out


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo")
def test_the_cpu_is_named_with_its_family_and_model() -> None:
    # Independent reading of the first processor's fields: "AMD EPYC" alone names no generation.
    first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in first.splitlines())
    )
    if "cpu family" not in fields or "model" not in fields:
        pytest.skip("this CPU reports no family and model")
    cpu = bench.machine()["cpu"]
    assert cpu.startswith(fields.get("model name", ""))
    assert f"(family {fields['cpu family']}, model {fields['model']})" in cpu


def test_gemm_shapes_count_every_product() -> None:
    case = bench.Case("x", T=10, B=2, I=3, H=4, layers=2, bidirectional=True)
    forward, training = bench.gemm_shapes(case)
    # per layer-direction: the input product and T recurrent ones
    assert forward == [(1, 20, 3, 16), (10, 2, 4, 16)] * 2 + [(1, 20, 8, 16), (10, 2, 4, 16)] * 2
    assert bench.flops(forward) == 2 * (2 * 20 * 3 * 16 + 2 * 20 * 8 * 16 + 4 * 10 * 2 * 4 * 16)
    assert len(training) == len(forward) + 4 * 4


def test_measure_alternates_blocks_back_to_back_and_settled() -> None:
    stamps: list[tuple[str, float]] = []
    fns = {name: (lambda name=name: stamps.append((name, time.perf_counter()))) for name in "ab"}
    timings = bench.measure(fns, 3, 0)
    blocks = [name for k, (name, _) in enumerate(stamps) if k == 0 or stamps[k - 1][0] != name]
    # warm-up, then per round: a and b back to back, then a and b settled
    assert blocks == ["a", "b"] * 7
    pauses = sum(b - a >= bench.SETTLE_S for (_, a), (_, b) in itertools.pairwise(stamps))
    assert pauses == 3 * 2  # one before each settled sample, none before the back-to-back ones
    for name, _ in stamps[:4]:
        assert name in "ab"
    # each back-to-back sample was led in by the same calls for LEAD_IN_S
    first_a_block = [t for name, t in stamps[4:] if name == "a"]
    assert first_a_block[-1] - first_a_block[0] >= bench.LEAD_IN_S
    assert set(timings) == {"a", "b"}
    for t in timings.values():
        assert np.isfinite([t["median_ms"], t["min_ms"], t["settled_ms"]]).all()
        assert t["min_ms"] <= t["median_ms"]


def test_charlm_case_times_the_same_training_on_both_sides() -> None:
    """The char-LM case is one real training step (our Trainer and CharLMTask: Adam, clipping,
    the state carried) on both sides: from the same weights and windows, our steps' losses
    follow torch's step after step, on the fast path and on the reference path."""
    case = next(c for c in bench_cases.QUICK_CASES if c.vocab)
    steps = 4  # each loss after the first reads weights that Adam updated
    with bench.threads(1):
        first = bench_cases.calls(case, 1, np.random.default_rng(0))["training"]
        ours = [first["ours"]() for _ in range(steps)]
        theirs = [first["torch"]() for _ in range(steps)]
        again = bench_cases.calls(case, 1, np.random.default_rng(0))["training"]
        reference = [again["reference"]() for _ in range(steps)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    np.testing.assert_allclose(reference, theirs, rtol=1e-5)
    assert len(set(np.round(theirs, 6))) == steps  # the weights moved: every loss differs
    task = bench_cases.random_text_charlm(case, np.random.default_rng(0))
    assert len(task.vocab) == case.vocab and task.bptt == case.T and task.batch_size == case.B
