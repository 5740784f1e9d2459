"""The path for scale, demonstrated (examples/ddp_continue.py, examples/ort_serving.py).

- A model trained in numpy-lstm continues in torch DistributedDataParallel on 2 CPU processes
  (gloo, loopback) and comes back with `from_torch` holding the weights of a single-process torch
  run on the whole global batch with its mean loss (same data, SGD, steps). The reference is
  plain torch written here (nn.LSTM + nn.Linear loaded from the state dict), not the bridge.
- One exported ONNX graph answers a padded batch of variable-length requests in ONNX Runtime
  exactly as numpy-lstm and plain torch answer each request alone; padding, even huge, never
  leaks, and the same session serves another batch shape.
- Both examples run as `python examples/<name>.py` from the repository root.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

from numpy_lstm.nn.models import SequenceModel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RTOL, ATOL = 1e-5, 1e-6  # float32; measured: 3e-8 (DDP), 9e-8 (ONNX Runtime)


@pytest.fixture(scope="module")
def examples() -> Iterator[dict[str, ModuleType]]:
    """The two example modules, imported by name from examples/ (on sys.path while the tests
    run, so that the spawned DDP processes can import `ddp_continue` too)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield {name: importlib.import_module(name) for name in ("ddp_continue", "ort_serving")}
    finally:
        sys.path.remove(str(EXAMPLES))


def plain_torch(model: SequenceModel) -> tuple[nn.LSTM, nn.Linear]:
    """torch modules built and loaded by hand from `model`'s state dict (no numpy_lstm.io)."""
    lstm, head = model.lstm, model.head
    assert head is not None
    theirs = nn.LSTM(
        lstm.input_size, lstm.hidden_size, num_layers=lstm.num_layers, batch_first=True
    )
    linear = nn.Linear(head.in_features, head.out_features)
    state = {k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()}
    theirs.load_state_dict({k.removeprefix("lstm."): v for k, v in state.items() if "lstm." in k})
    linear.load_state_dict({k.removeprefix("head."): v for k, v in state.items() if "head." in k})
    return theirs, linear


def sgd_reference(
    model: SequenceModel, x: np.ndarray, target: np.ndarray, steps: int, lr: float, momentum: float
) -> tuple[dict[str, np.ndarray], list[float]]:
    """One process, the given batch, mean MSE, torch SGD: the final state dict and the losses."""
    lstm, head = plain_torch(model)
    params = [*lstm.parameters(), *head.parameters()]
    sgd = torch.optim.SGD(params, lr=lr, momentum=momentum)
    losses = []
    for _ in range(steps):
        sgd.zero_grad()
        loss = nn.functional.mse_loss(head(lstm(torch.from_numpy(x))[0]), torch.from_numpy(target))
        loss.backward()
        sgd.step()
        losses.append(loss.item())
    state = {f"lstm.{k}": v.numpy() for k, v in lstm.state_dict().items()}
    state |= {f"head.{k}": v.numpy() for k, v in head.state_dict().items()}
    return state, losses


def test_ddp_on_two_processes_equals_one_process_on_the_global_batch(
    examples: dict[str, ModuleType],
) -> None:
    ex = examples["ddp_continue"]
    x, target = ex.make_data(seed=3)
    model = ex.pretrain(x, target, steps=5)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    steps = 6
    result = ex.continue_with_ddp(model, x, target, steps=steps)
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())

    expected, losses = sgd_reference(model, x, target, steps, ex.LR, ex.MOMENTUM)
    assert len(result.models) == 2
    for rank, trained in enumerate(result.models):
        assert isinstance(trained, SequenceModel)
        state = trained.state_dict()
        assert state.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_allclose(
                state[name], value, rtol=RTOL, atol=ATOL, err_msg=f"{rank}: {name}"
            )
    for name, value in result.models[0].state_dict().items():  # DDP keeps the replicas equal
        np.testing.assert_array_equal(value, result.models[1].state_dict()[name], err_msg=name)
    np.testing.assert_allclose(result.losses, losses, rtol=RTOL, atol=ATOL)

    # The model that came back computes, in NumPy, what the torch reference computes.
    lstm, head = plain_torch(result.models[0])
    with torch.no_grad():
        theirs = head(lstm(torch.from_numpy(x))[0]).numpy()
    np.testing.assert_allclose(result.models[0](x)[0], theirs, rtol=RTOL, atol=ATOL)

    # The comparison has power: training moved the weights far beyond the tolerance, and one
    # process on half the batch (what a rank alone, without DDP's averaging, would do) lands
    # elsewhere.
    share = len(x) // 2
    half, _ = sgd_reference(model, x[:share], target[:share], steps, ex.LR, ex.MOMENTUM)
    for other in (before, half):
        gap = max(float(np.max(np.abs(other[k] - v))) for k, v in expected.items())
        assert gap > 1e-3


def test_one_onnx_graph_answers_each_request_as_if_alone(
    examples: dict[str, ModuleType], tmp_path: Path
) -> None:
    ex = examples["ort_serving"]
    model = ex.build_model()
    session = ex.open_session(model, tmp_path / "model.onnx")
    lstm, head = plain_torch(model)
    for lengths, seed in (([7, 1, 13, 4, 13], 5), ([2, 30, 11], 6), ([8], 7)):
        requests = ex.requests_of(lengths, seed)
        answers = ex.serve(session, requests, fill=1e3)  # huge padding must not leak
        assert len(answers) == len(requests)
        for request, answer in zip(requests, answers, strict=True):
            y, (h_n, c_n) = model(request[None])
            with torch.no_grad():
                out_t, (h_t, c_t) = lstm(torch.from_numpy(request[None]))
                y_t = head(out_t)
            assert answer.y.shape == (len(request), ex.CLASSES)
            for got, ours, theirs in (
                (answer.y, y[0], y_t[0]),
                (answer.h_n, h_n[:, 0], h_t[:, 0]),
                (answer.c_n, c_n[:, 0], c_t[:, 0]),
            ):
                np.testing.assert_allclose(got, ours, rtol=RTOL, atol=ATOL)
                np.testing.assert_allclose(got, theirs.numpy(), rtol=RTOL, atol=ATOL)

    # Without the lengths the padding would change the short requests' final states: the check
    # above could fail.
    requests = ex.requests_of([3, 12], 8)
    x, _ = ex.pad(requests)
    _, (h_padded, _) = model(x)
    _, (h_alone, _) = model(requests[0][None])
    assert np.max(np.abs(h_padded[:, 0] - h_alone[:, 0])) > 1e-2


def test_examples_run_from_the_repository_root() -> None:
    """`python examples/<name>.py` as the README says; both at once, their printed gaps small."""
    runs = {
        name: subprocess.Popen(
            [sys.executable, f"examples/{name}.py"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("ddp_continue", "ort_serving")
    }
    printed = {}
    for name, run in runs.items():
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, f"{name}: {err}"
        printed[name] = out
    ddp = re.search(
        r"max \|difference\| from the single-process run: (\S+)", printed["ddp_continue"]
    )
    assert ddp is not None, printed["ddp_continue"]
    assert float(ddp.group(1)) < 1e-5
    gaps = re.findall(r"max \|ONNX Runtime − numpy-lstm alone\| = (\S+)", printed["ort_serving"])
    assert len(gaps) == 2, printed["ort_serving"]
    assert all(float(g) < 1e-5 for g in gaps)
