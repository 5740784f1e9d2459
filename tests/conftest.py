"""Shared oracles and fixtures for the test suite.

PyTorch is the independent reference implementation; finite differences are the independent
reference for gradients. Nothing here computes an expected value with numpy_lstm itself.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import numpy_lstm
from browser import CHROMEDRIVER, CHROMIUM, FLAGS, TEXT, char_lm_trace, ensure_browser
from numpy_lstm import LSTM, Linear, Module
from numpy_lstm.inspect import rank_units, text_features, write_explorer
from numpy_lstm.train.optim import Optimizer

torch.set_num_threads(1)

TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


class TorchLSTMWithHead(torch.nn.Module):
    """nn.LSTM, optionally with a Linear head, returning (output, h_n, c_n): the model the ONNX
    exporter tests hand to torch's own exporters."""

    def __init__(self, input_size: int, hidden_size: int, head: bool, **options: Any) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, hidden_size, **options)
        width = hidden_size * (2 if options.get("bidirectional") else 1)
        self.head = torch.nn.Linear(width, 2) if head else None

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, c0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, (h_n, c_n) = self.lstm(x, None if h0 is None else (h0, c0))
        return (y if self.head is None else self.head(y)), h_n, c_n


# Each gate gets its own scale and bias offset, so swapping any two gate blocks changes the result.
GATE_SCALES = (0.6, 1.1, 1.4, 0.8)
GATE_OFFSETS = (-0.4, 0.9, 0.15, -0.25)


def distinct_gate_state(
    rng: np.random.Generator,
    input_size: int,
    hidden_size: int,
    dtype: type,
    bias: bool = True,
    suffix: str = "_l0",
) -> dict[str, np.ndarray]:
    """Random torch-layout LSTM parameters in which every gate block differs in scale and sign."""
    H = hidden_size
    scale = np.repeat(GATE_SCALES, H)[:, None]
    offset = np.repeat(GATE_OFFSETS, H)
    state = {
        f"weight_ih{suffix}": rng.uniform(-1, 1, (4 * H, input_size)) * scale,
        f"weight_hh{suffix}": rng.uniform(-1, 1, (4 * H, H)) * scale / np.sqrt(H),
    }
    if bias:
        state[f"bias_ih{suffix}"] = offset + 0.1 * rng.standard_normal(4 * H)
        state[f"bias_hh{suffix}"] = -0.5 * offset + 0.1 * rng.standard_normal(4 * H)
    return {k: v.astype(dtype) for k, v in state.items()}


def to_torch(a: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, requires_grad=requires_grad)


def numerical_gradient(
    loss: Callable[[], float], array: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central differences of `loss()` w.r.t. every element of `array`, perturbed in place."""
    if not array.flags.writeable:
        raise ValueError("a parameter is read-only: perturb it inside `with module.editing():`")
    grad = np.zeros_like(array)
    flat, grad_flat = array.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, array), "perturbation must reach the array in place"
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + eps
        plus = loss()
        flat[k] = original - eps
        minus = loss()
        flat[k] = original
        grad_flat[k] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """‖a − n‖ / max(‖a‖, ‖n‖): scale-free and well defined when a few entries are ~0."""
    denominator = max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-300)
    return float(np.linalg.norm(analytic - numeric) / denominator)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


# -- the full layer (stacked, bidirectional, projected) ------------------------------------------


def torch_lstm(input_size: int, hidden_size: int, dtype: type, **config: object) -> torch.nn.LSTM:
    """A torch.nn.LSTM in `dtype`; `config` takes torch's keyword arguments (num_layers, …)."""
    return torch.nn.LSTM(input_size, hidden_size, dtype=TORCH_DTYPE[dtype], **config)


def distinct_gate_lstm_state(
    rng: np.random.Generator, theirs: torch.nn.LSTM, dtype: type
) -> dict[str, np.ndarray]:
    """Distinct-gate values for every parameter of `theirs`, keyed and ordered like its state_dict.

    Works for any num_layers / bidirectional / proj_size: the names and shapes come from torch.
    Every gate block of every weight_ih / weight_hh / bias has its own scale and offset (as in
    `distinct_gate_state`), and the projections weight_hr are random, so any mix-up of gates,
    layers, directions or projections changes the result.
    """
    H = theirs.hidden_size
    scale = np.repeat(GATE_SCALES, H)[:, None]
    offset = np.repeat(GATE_OFFSETS, H)
    state = {}
    for name, tensor in theirs.state_dict().items():
        shape = tuple(tensor.shape)
        if name.startswith("weight_ih"):
            value = rng.uniform(-1, 1, shape) * scale * min(1.0, 2.0 / np.sqrt(shape[1]))
        elif name.startswith("weight_hh"):
            value = rng.uniform(-1, 1, shape) * scale / np.sqrt(shape[1])
        elif name.startswith("bias_ih"):
            value = offset + 0.1 * rng.standard_normal(shape)
        elif name.startswith("bias_hh"):
            value = -0.5 * offset + 0.1 * rng.standard_normal(shape)
        else:  # weight_hr: (P, H)
            value = rng.uniform(-1.5, 1.5, shape) / np.sqrt(H)
        state[name] = value.astype(dtype)
    return state


def load_into_torch(theirs: torch.nn.Module, state: dict[str, np.ndarray]) -> torch.nn.Module:
    theirs.load_state_dict({k: to_torch(v) for k, v in state.items()})
    return theirs


def assert_matches(ours: np.ndarray, theirs: object, dtype: type, what: str) -> None:
    """`ours` has the dtype and shape of the reference and agrees within TOLERANCE[dtype]."""
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    theirs = np.asarray(theirs)
    assert ours.dtype == dtype, f"{what}: dtype {ours.dtype}, expected {np.dtype(dtype)}"
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, expected {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, **TOLERANCE[dtype], err_msg=what)


def assert_lstm_gradients_match(
    lstm: Any,
    run: Callable[[], tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]],
    inputs: dict[str, np.ndarray],
    upstream: tuple[np.ndarray, np.ndarray, np.ndarray],
    max_error: float = 1e-6,
) -> None:
    """Central differences vs `lstm.backward` for every array in `inputs` (x, h0, c0, …) and
    every parameter. `run()` re-runs the forward on those arrays (perturbed in place) and returns
    (out, (h_n, c_n)); the loss is Σ d_out·out + Σ dh_n·h_n + Σ dc_n·c_n for `upstream`."""
    d_out, dh_n, dc_n = upstream

    def loss() -> float:
        out, (h_n, c_n) = run()
        return float(np.sum(d_out * out) + np.sum(dh_n * h_n) + np.sum(dc_n * c_n))

    run()
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(d_out, (dh_n, dc_n))
    analytic = {"x": dx, "h0": dh0, "c0": dc0, **{k: v.copy() for k, v in lstm.grads.items()}}
    arrays = {**inputs, **dict(lstm.named_parameters())}
    with lstm.editing():  # the parameters are perturbed in place
        for name, array in arrays.items():
            error = relative_error(analytic[name], numerical_gradient(loss, array))
            assert error < max_error, f"d{name}: relative error {error:.2e}"


def assert_resume_is_bit_exact(build: Callable[[], Any], stop: int, path: Any) -> None:
    """N steps in one go == `stop` steps + save + `Trainer.resume` + the remaining steps:
    identical weights, optimizer state and evaluation history (the interrupted run's extra
    evaluation at `stop` aside). `build()` returns a fresh Trainer configured for N steps."""
    from numpy_lstm.train import Trainer

    straight = build()
    straight.fit()
    first = build()
    first.config = dataclasses.replace(first.config, steps=stop)
    first.fit()
    first.save(path)
    resumed = Trainer.resume(path, straight.config, out=io.StringIO())
    assert resumed.step == stop
    resumed.fit()
    for name, value in straight.task.model.state_dict().items():
        np.testing.assert_array_equal(resumed.task.model.state_dict()[name], value, err_msg=name)
    for key, value in straight.optimizer.state_dict().items():
        np.testing.assert_array_equal(resumed.optimizer.state_dict()[key], value, err_msg=key)
    evaluated = {h["step"] for h in straight.history}
    assert [h for h in resumed.history if h["step"] in evaluated] == straight.history


# -- optimizers against torch.optim --------------------------------------------------------------


class TinyModel(Module):
    """LSTM(3 → 4) + Linear(4 → 2): parameters of several shapes, nested two levels."""

    def __init__(self, dtype: type, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.lstm = LSTM(3, 4, dtype=dtype, rng=rng)
        self.head = Linear(4, 2, dtype=dtype, rng=rng)


def random_grads(rng: np.random.Generator, model: Module) -> dict[str, np.ndarray]:
    """A gradient per parameter with a random scale, so some are tiny (eps matters), some large."""
    return {
        name: (rng.standard_normal(p.shape) * 10.0 ** rng.uniform(-6, 1)).astype(p.dtype)
        for name, p in model.named_parameters()
    }


def set_grads(model: Module, grads: dict[str, np.ndarray]) -> None:
    live = model.grads
    for name, grad in grads.items():
        live[name][...] = grad


def run_both(
    ours_cls: type[Optimizer],
    torch_cls: type[torch.optim.Optimizer],
    hyper: dict[str, Any],
    dtype: type,
    steps: int,
    rng: np.random.Generator,
    model: TinyModel | None = None,
) -> tuple[TinyModel, Optimizer, list[torch.nn.Parameter], torch.optim.Optimizer]:
    """Our optimizer and torch's, each on a copy of the same parameters, fed the same random
    gradients for `steps` steps. Returns (model, ours, torch parameters, torch optimizer)."""
    model = model or TinyModel(dtype)
    theirs = [torch.nn.Parameter(to_torch(p.copy())) for _, p in model.named_parameters()]
    torch_opt = torch_cls(theirs, foreach=False, **hyper)
    opt = ours_cls(model, **hyper)
    for _ in range(steps):
        grads = random_grads(rng, model)
        opt.zero_grad()
        set_grads(model, grads)
        opt.step()
        for p, g in zip(theirs, grads.values(), strict=True):
            p.grad = to_torch(g)
        torch_opt.step()
    return model, opt, theirs, torch_opt


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    ensure_browser()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        pytest.fail(f"selenium is missing ({err}): pip install -e '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='explorer-chromium-')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never reach the network
        browser = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            yield browser
        finally:
            browser.quit()


@pytest.fixture(scope="module")
def lm_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, numpy_lstm.Trace, dict]:
    tr = char_lm_trace(TEXT, hidden=16)
    ranked = rank_units(tr, text_features(TEXT))
    highlights = {name: unit for name, (unit, _) in ranked.items()}
    path = tmp_path_factory.mktemp("explorer") / "lm.html"
    return write_explorer(path, TEXT, tr, highlights=highlights), tr, highlights
