"""A one-row forward with its units split over threads (kernels.unit_split) computes what the
pure-NumPy reference computes — forwards and in reverse, masked (NaN in the padding), with the
output carried, with and without its input products formed first, on both SIMD paths — and the
backward that follows it too. Calls that split from two Python threads at once both finish.

Oracle: the reference path (``use_fast(False)``), which the rest of the suite holds to torch and
finite differences."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np
import pytest

import numpy_lstm
from conftest import TOLERANCE
from numpy_lstm import kernels
from numpy_lstm.kernels import prepared, simd, threads

pytest.importorskip("numba", reason="the fast path needs numba (the `fast` extra)")
from numpy_lstm.kernels import numba_driver

T = 40


@pytest.fixture
def split_everything(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Split any one-row forward as far as its units allow (the thresholds are for speed, not
    correctness), on up to `n` threads, as if there were 8 cores (more threads than cores: the
    waiting threads must give their core away for the others to run)."""
    monkeypatch.setattr(numba_driver, "MIN_UNIT_GROUP_STEP_WORK", 1)
    monkeypatch.setattr(numba_driver, "cores", lambda: 8)

    def on(n: int) -> None:
        monkeypatch.setattr(threads, "_threads", n)  # set_num_threads(n), undone after the test

    return on


def unit_keys(weight_ih: np.ndarray) -> set[tuple[str, int, int]]:
    """The unit packs made from the layer-direction of this weight: (part, u0, u1). Private on
    purpose: nothing public says which kernel ran, and a forward that quietly stayed on one
    thread would pass."""
    return {
        (key[2], key[4], key[5])
        for key, (sources, _) in prepared._entries.items()
        if key[0] == "packed" and key[3] == "units" and sources[0]() is weight_ih
    }


def run_layer(lstm: numpy_lstm.LSTM, x: np.ndarray, d_out: np.ndarray, mask: Any) -> dict:
    lstm.zero_grad()
    out, (h_n, c_n) = lstm(x, mask=mask)
    dx, (dh0, dc0) = lstm.backward(d_out)
    grads = {f"grad {k}": v.copy() for k, v in lstm.grads.items()}
    return dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0) | grads


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize("groups, H", [(2, 70), (3, 100)])  # 35 + 35; 33 + 33 + 34 units
@pytest.mark.parametrize("I", [5, 120])  # narrow; wide: input products formed first
@pytest.mark.parametrize("masking", [None, "gaps", "gaps+carry"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_split_units_equal_the_reference(
    rng, monkeypatch, split_everything, isa, groups, H, I, masking, bidirectional
) -> None:
    monkeypatch.setattr(simd, "isa_path", lambda: isa)
    carry = "carry" if masking == "gaps+carry" else "zero"
    lstm = numpy_lstm.LSTM(
        I, H, bidirectional=bidirectional, mask_output=carry, dtype=np.float32, rng=1
    )
    x = rng.standard_normal((T, 1, I)).astype(np.float32)
    mask = None
    if masking:
        mask = rng.random((1, T)) < 0.7
        mask[0, -3:] = False  # padding at the end, gaps inside
        x[~mask.T] = np.nan  # padding may hold anything: it must not reach the math
    d_out = rng.standard_normal((T, 1, H * (1 + bidirectional))).astype(np.float32)
    with kernels.use_fast(False):
        reference = run_layer(lstm, x, d_out, mask)
    split_everything(groups * (1 + bidirectional))  # side by side: each direction its share
    split = run_layer(lstm, x, d_out, mask)
    bounds = [k * H // groups for k in range(groups + 1)]
    parts = ("recurrent", "input") if 8 * I >= H else ("forward",)
    expected = {(part, u0, u1) for part in parts for u0, u1 in itertools.pairwise(bounds)}
    for direction in range(1 + bidirectional):
        assert unit_keys(lstm.layer_weights(0, reverse=direction == 1).weight_ih) == expected
    for name, value in reference.items():
        assert split[name].dtype == np.float32
        np.testing.assert_allclose(split[name], value, **TOLERANCE[np.float32], err_msg=name)


def test_two_python_threads_splitting_at_once_both_finish(rng, split_everything) -> None:
    split_everything(2)
    models = [numpy_lstm.LSTM(16, 96, dtype=np.float32, rng=k) for k in range(2)]
    x = rng.standard_normal((T, 1, 16)).astype(np.float32)
    alone = [model(x)[0] for model in models]
    results: list[Any] = [None, None]

    def run(k: int) -> None:
        for _ in range(20):
            results[k] = models[k](x)[0]

    callers = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=120)
    assert not any(caller.is_alive() for caller in callers), "the calls did not finish"
    for got, expected in zip(results, alone, strict=True):
        np.testing.assert_array_equal(got, expected)
