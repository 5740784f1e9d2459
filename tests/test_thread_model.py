"""One thread model: while the fast kernels are on, numpy-lstm's own matrix products never run
on BLAS's threads (which would keep spinning beside the kernels' threads after each call), and
the user's BLAS setting is back after every call."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import numpy_lstm
from numpy_lstm.kernels import products, simd, threads, use_fast
from numpy_lstm.nn.models import SequenceModel


def blas_threads_now() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def two_kernel_threads() -> Any:
    previous = threads.set_num_threads(2)
    yield
    threads.set_num_threads(previous)


def model_with_head(rng: np.random.Generator) -> SequenceModel:
    lstm = numpy_lstm.LSTM(16, 64, dtype=np.float32, rng=rng)
    return SequenceModel(lstm, numpy_lstm.Linear(64, 500, rng=rng))


def test_products_hold_blas_to_one_thread_and_restore_the_users_setting(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, two_kernel_threads: Any
) -> None:
    seen: list[list[int]] = []
    real = threads.run_parallel

    def recording(work: Any, chunks: list[tuple[int, int]]) -> None:
        seen.append(blas_threads_now())  # what BLAS may use while the product runs
        real(work, chunks)

    monkeypatch.setattr(products, "run_parallel", recording)
    model = model_with_head(rng)
    x = rng.standard_normal((40, 32, 16), dtype=np.float32)
    with threadpool_limits(limits=2, user_api="blas"):
        assert set(blas_threads_now()) == {2}  # the user's setting
        y, _ = model(x)
        model.backward(np.ones_like(y))
        assert set(blas_threads_now()) == {2}  # back after the calls
    # BLAS forms the head's weight gradient, and its forward and input gradient where no SIMD
    # kernel runs them (packed products use no BLAS at all)
    assert len(seen) == (1 if simd.path_for(np.dtype(np.float32)) else 3)
    assert all(set(counts) == {1} for counts in seen), seen


def test_split_products_equal_torch(rng: np.random.Generator, two_kernel_threads: Any) -> None:
    a = rng.standard_normal((3000, 256), dtype=np.float32)
    b = rng.standard_normal((256, 700), dtype=np.float32)
    assert 2 * products.PARALLEL_MIN_MACS < 3000 * 256 * 700  # large enough to be split
    expected = (torch.from_numpy(a).double() @ torch.from_numpy(b).double()).numpy()
    np.testing.assert_allclose(products.matmul(a, b), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(products.matmul(a.T.copy().T, b.T.copy().T), expected, 1e-4, 1e-3)
    np.testing.assert_allclose(  # a batch of rows (…, K), and a transposed b
        products.matmul(a.reshape(30, 100, 256), b.T.copy().T), expected.reshape(30, 100, 700),
        rtol=1e-4, atol=1e-3,
    )  # fmt: skip


def test_a_split_product_adds_the_bias_to_every_threads_rows_as_torchs_linear_does(
    rng: np.random.Generator, two_kernel_threads: Any
) -> None:
    x = rng.standard_normal((3000, 256), dtype=np.float32)
    weight = rng.standard_normal((700, 256), dtype=np.float32)
    bias = 100 * rng.standard_normal(700, dtype=np.float32)  # large: a row without it shows
    expected = torch.nn.functional.linear(*map(torch.from_numpy, (x, weight, bias))).numpy()
    y = products.matmul(x, weight.T, bias)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-3)
    small = products.matmul(x[:2], weight.T, bias)  # below the split: one BLAS call
    np.testing.assert_allclose(small, expected[:2], rtol=1e-4, atol=1e-3)
    wide = products.matmul(x, weight.T, bias.astype(np.float64))  # promotes, as NumPy does
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide, expected, rtol=1e-4, atol=1e-3)


def test_with_the_fast_path_off_products_leave_blas_alone(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(products, "run_parallel", lambda *_: pytest.fail("split with fast off"))
    with use_fast(False), threadpool_limits(limits=2, user_api="blas"):
        a = rng.standard_normal((300, 64), dtype=np.float32)
        np.testing.assert_array_equal(products.matmul(a, a.T), a @ a.T)


def test_a_blas_loaded_after_the_first_call_is_held_too() -> None:
    # A fresh process: NumPy's BLAS is held once, then SciPy brings an OpenBLAS of its own.
    script = """
import threadpoolctl
from numpy_lstm.kernels.threads import blas_threads
with blas_threads(1):
    pass
import scipy.linalg
with blas_threads(1):
    print(sorted({lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                  if lib["user_api"] == "blas"}), len(threadpoolctl.threadpool_info()))
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    counts, libraries = done.stdout.split("] ")
    assert counts == "[1" and int(libraries) >= 2, done.stdout  # both BLAS libraries, at one
