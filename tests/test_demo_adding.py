"""The adding demo: its data, its model's gradients (against torch autograd), that it learns,
that it is deterministic, and the command line that runs it."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import to_torch
from numpy_lstm.cli import main
from numpy_lstm.cli.demo_adding import readings, run_demo
from numpy_lstm.inspect.trace import trace
from numpy_lstm.tasks.synthetic import AddingTask, adding_batch
from numpy_lstm.train.losses import mse_loss


def test_adding_batch_follows_the_task_definition() -> None:
    T, B = 11, 300
    x, y = adding_batch(np.random.default_rng(0), B, T)
    assert x.shape == (T, B, 2) and y.shape == (B, 1)
    assert x.dtype == y.dtype == np.float32
    values, marker = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(marker)) == {0.0, 1.0}
    for b in range(B):
        first, second = np.flatnonzero(marker[:, b])  # exactly two marks
        assert first < T // 2 <= second
        assert y[b, 0] == pytest.approx(values[first, b] + values[second, b], rel=1e-6)
    # every position of each half gets marked somewhere in the batch: the positions are random
    assert (marker[: T // 2].sum(axis=1) > 0).all() and (marker[T // 2 :].sum(axis=1) > 0).all()


def test_adding_batch_is_reproducible_from_its_generator() -> None:
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    a, b = adding_batch(rng_a, 4, 6, dtype=np.float64), adding_batch(rng_b, 4, 6, np.float64)
    assert a[0].dtype == a[1].dtype == np.float64
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(adding_batch(rng_a, 4, 6)[0], adding_batch(rng_a, 4, 6)[0])


def test_model_gradients_match_torch_autograd() -> None:
    """Loss on the last step only, through h_n: the demo's model (the adding task's) vs torch."""
    T, B, H = 6, 3, 5
    x, y = adding_batch(np.random.default_rng(1), B, T, dtype=np.float64)
    model = AddingTask(T=T, hidden_size=H, eval_size=1, seed=2, dtype="float64").model

    lstm = torch.nn.LSTM(2, H, dtype=torch.float64)
    head = torch.nn.Linear(H, 1, dtype=torch.float64)
    state = model.state_dict()
    lstm.load_state_dict({k[5:]: to_torch(v) for k, v in state.items() if k.startswith("lstm.")})
    head.load_state_dict({k[5:]: to_torch(v) for k, v in state.items() if k.startswith("head.")})
    out, _ = lstm(to_torch(x))
    pred_t = head(out[-1])
    loss_t = torch.nn.functional.mse_loss(pred_t, to_torch(y))
    loss_t.backward()

    model.zero_grad()
    loss, dpred = mse_loss(model(x), y)
    model.backward(dpred)
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(model(x), pred_t.detach().numpy(), rtol=1e-12)
    torch_grads = {f"lstm.{k}": p.grad for k, p in lstm.named_parameters()}
    torch_grads |= {f"head.{k}": p.grad for k, p in head.named_parameters()}
    assert model.grads.keys() == torch_grads.keys()
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, torch_grads[name].numpy(), rtol=1e-10, atol=1e-12)

    # the gate trace is the same forward pass: its last reading is the model's prediction
    tr = trace(model.lstm, x)
    np.testing.assert_allclose(tr.layer().h, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(readings(model, tr)[-1], model(x)[:, 0], rtol=1e-12)


def _numbers(text: str) -> str:
    """The report without its only non-deterministic line, the wall-clock time."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("trained in"))


def test_run_demo_is_deterministic_per_seed() -> None:
    outs = [io.StringIO() for _ in range(3)]
    first = run_demo(steps=40, seed=0, out=outs[0])
    again = run_demo(steps=40, seed=0, out=outs[1])
    other = run_demo(steps=40, seed=1, out=outs[2])
    assert first == again
    assert _numbers(outs[0].getvalue()) == _numbers(outs[1].getvalue())
    assert other["final_mse"] != first["final_mse"]
    assert other["baseline_mse"] != first["baseline_mse"]  # a different test set too
    assert first["steps"] == 40 and first["seed"] == 0


def test_default_demo_learns_the_task_and_its_filter_follows_the_marker() -> None:
    out = io.StringIO()
    metrics = run_demo(seed=0, out=out)
    # the trivial baseline is Var(U1 + U2) = 1/6
    assert metrics["baseline_mse"] == pytest.approx(1 / 6, abs=0.02)
    assert metrics["final_mse"] < 0.01
    assert metrics["final_mse"] < metrics["baseline_mse"] / 20
    # the mechanism the report explains: the Filter opens at marks, the Eraser keeps the memory
    assert metrics["filter_marked"] > metrics["filter_unmarked"] + 0.5
    assert metrics["eraser_between"] > 0.9
    assert abs(metrics["memory_target_corr"]) > 0.9
    report = out.getvalue()
    log = [line.split() for line in report.splitlines() if line[:6].strip().isdigit()]
    losses = [float(row[1]) for row in log if len(row) == 3]
    assert len(losses) == 15 and losses[-1] < losses[0] / 20  # the printed loss falls


def test_cli_demo_prints_the_loss_and_the_gate_table_and_writes_a_page(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["demo", "--task", "adding", "--steps", "30", "--seed", "3", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "explorer.html").stat().st_size > 0
    out = capsys.readouterr().out
    assert "baseline (predict 1)" in out
    assert "30 steps, seed 3" in out
    header = next(line for line in out.splitlines() if "i Filter" in line)
    for column in ("value", "mark", "pred", "f kept", "g Writer", "o Presenter"):
        assert column in header
    rows = [line for line in out.splitlines() if line.endswith("◀ marked")]
    assert len(rows) == 2  # one row per step, the two marked ones flagged
    assert "Filter (i) averages" in out and "Eraser (1 − f) averages" in out


def test_run_demo_writes_the_explorer_page_of_its_test_sequence(tmp_path: Path) -> None:
    """One glyph per step (▲ at the marks), the two inputs as rows, the memory unit the report
    names highlighted, and notes that tell the table's story with the printed numbers."""
    out = io.StringIO()
    metrics = run_demo(steps=300, seed=0, out=out, folder=tmp_path / "report")
    page = (tmp_path / "report" / "explorer.html").read_text("utf-8")
    report = out.getvalue()
    assert f"wrote {tmp_path / 'report' / 'explorer.html'}" in report
    meta = json.loads(re.search(r'id="meta">(.*?)</script>', page).group(1))
    rows = [line.split() for line in report.splitlines() if "│" in line and line[:3].strip()]
    table = [row for row in rows if row[0].isdigit()]  # t value mark pred │ …
    assert meta["steps"] == len(table) == 25 and meta["units"] == 24
    marks = [int(row[2]) for row in table]
    assert meta["text"] == "".join("▲" if mark else "·" for mark in marks)
    value, marker = meta["inputs"]
    assert (value["label"], value["digits"], marker["label"], marker["digits"]) == (
        "value",
        2,
        "marker",
        0,
    )
    assert marker["values"] == marks
    for shown, row in zip(value["values"], table, strict=True):
        assert shown == pytest.approx(float(row[1]), abs=0.0051)  # the table prints 3 digits
    unit = int(metrics["unit"])
    assert meta["highlights"] == [
        {"label": "memory unit (holds the sum)", "unit": unit, "r": metrics["memory_target_corr"]}
    ]
    notes = "\n".join(meta["notes"])
    for role in ("Filter", "Writer", "Eraser", "Presenter", "head", "pred", "f kept"):
        assert role in notes, role
    # this run's numbers, as the report prints them
    assert f"keeps {metrics['eraser_between']:.3f} of the memory" in notes
    assert f"{metrics['filter_marked']:.2f} at marked steps" in notes
    assert f"correlation {metrics['memory_target_corr']:+.3f}" in notes
    target = re.search(r"target (\d\.\d{3}), prediction (\d\.\d{3})", report)
    assert f"the target is {target.group(1)}, and the model answers {target.group(2)}" in notes
    assert meta["predictions"] is None


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"numpy-lstm {numpy_lstm.__version__}\n"


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_cli_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "usage: numpy-lstm" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "usage"), (["demo", "--steps", "0"], "--steps"), (["demo", "--seed", "-1"], "--seed")],
)
def test_cli_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_python_dash_m_runs_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "numpy_lstm", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout == f"numpy-lstm {numpy_lstm.__version__}\n"
