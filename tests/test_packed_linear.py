"""A Linear layer's large float32 products run on the packed SIMD kernel (the forward x·Wᵀ + b and
the input gradient dy·W): they equal torch's nn.Linear on every instruction-set path, whatever the
shape's remainder rows and columns, use a packed copy of the weights that every change of the
weights invalidates, and give the same bits on one thread or two."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import numpy_lstm
from numpy_lstm.kernels import prepared, products, simd, threads, use_fast
from numpy_lstm.train.optim import SGD

FP32 = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(params=simd.ISAS)
def isa(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each kernel path, as if detected (the 16-wide kernel computes correctly on any x86 CPU:
    LLVM splits its vectors)."""
    monkeypatch.setattr(simd, "isa_path", lambda: request.param)
    return str(request.param)


@pytest.fixture
def two_kernel_threads() -> Any:
    previous = threads.set_num_threads(2)
    yield
    threads.set_num_threads(previous)


def torch_linear(head: numpy_lstm.Linear, x: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The oracle, in float64 from our float32 numbers: y, dx, dW, db."""
    theirs = torch.nn.Linear(head.in_features, head.out_features, dtype=torch.float64)
    state = head.state_dict()
    theirs.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in state.items()})
    x_t = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    y = theirs(x_t)
    y.backward(torch.from_numpy(dy.astype(np.float64)))
    assert x_t.grad is not None and theirs.weight.grad is not None and theirs.bias.grad is not None
    return {
        "y": y.detach().numpy(),
        "dx": x_t.grad.numpy(),
        "weight": theirs.weight.grad.numpy(),
        "bias": theirs.bias.grad.numpy(),
    }


def linear_keys(head: numpy_lstm.Linear) -> set[tuple[str, bool]]:
    """Which packed copies of this head's weight exist (private on purpose: nothing public says
    which kernel ran, and a product that quietly fell back to BLAS would pass every other test)."""
    return {
        (key[1], key[2])
        for key, (sources, _) in prepared._entries.items()
        if key[0] == "linear" and sources[0]() is head.weight
    }


@pytest.mark.parametrize("shape, out_features", [((100, 32, 64), 1000), ((3, 97, 48), 37)])
def test_large_float32_products_equal_torch_on_every_path(
    rng: np.random.Generator, isa: str, two_kernel_threads: Any, shape: tuple[int, ...],
    out_features: int,
) -> None:  # fmt: skip
    # 3·97 rows: not a multiple of any register block; 37 and 1000 columns: a partial last panel
    head = numpy_lstm.Linear(shape[-1], out_features, rng=rng)
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal((*shape[:-1], out_features), dtype=np.float32)
    assert x.size * out_features > products.BLAS_SINGLE_THREADED_MACS  # large enough to pack
    y = head(x)
    dx = head.backward(dy)
    expected = torch_linear(head, x, dy)
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, expected["y"], **FP32)
    np.testing.assert_allclose(dx, expected["dx"], **FP32)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(head.grads[name], expected[name], rtol=1e-5, atol=1e-3)
    packed = set() if isa == "generic" else {(isa, False), (isa, True)}
    assert linear_keys(head) == packed


def test_no_bias_and_float64_keep_their_own_rules(rng: np.random.Generator) -> None:
    head = numpy_lstm.Linear(64, 300, bias=False, rng=rng)
    x = rng.standard_normal((40, 64), dtype=np.float32)
    expected = (torch.from_numpy(x).double() @ torch.from_numpy(head.weight).double().T).numpy()
    np.testing.assert_allclose(head(x), expected, **FP32)
    double = numpy_lstm.Linear(64, 300, dtype=np.float64, rng=rng)
    x64 = x.astype(np.float64)
    y64 = double(x64)
    assert y64.dtype == np.float64 and not linear_keys(double)  # BLAS: no SIMD kernel for fp64
    arrays = (x64, double.weight, double.bias)
    expected64 = torch.nn.functional.linear(*map(torch.from_numpy, arrays))
    np.testing.assert_allclose(y64, expected64.numpy(), rtol=1e-12, atol=1e-12)


def test_one_thread_or_two_give_the_same_bits(rng: np.random.Generator) -> None:
    head = numpy_lstm.Linear(128, 333, rng=rng)
    x = rng.standard_normal((4, 301, 128), dtype=np.float32)
    dy = rng.standard_normal((4, 301, 333), dtype=np.float32)
    results = []
    for n in (1, 2):
        previous = threads.set_num_threads(n)
        try:
            results.append((head(x), head.backward(dy)))
        finally:
            threads.set_num_threads(previous)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def assign(head: numpy_lstm.Linear) -> None:
    head.weight = head.weight * 0.5


def load(head: numpy_lstm.Linear) -> None:
    state = head.state_dict()
    state["bias"] = state["bias"] + 1.0
    head.load_state_dict(state)


def optimizer_step(head: numpy_lstm.Linear) -> None:
    head.zero_grad()
    y = head(np.ones((4, head.in_features), np.float32))
    head.backward(np.ones_like(y))
    SGD(head, lr=0.01).step()


def edit_in_place(head: numpy_lstm.Linear) -> None:
    with head.editing():
        head.weight[0, :] = 3.0


CHANGES: dict[str, Callable[[numpy_lstm.Linear], None]] = {
    "assignment": assign,
    "load_state_dict": load,
    "optimizer step": optimizer_step,
    "editing block": edit_in_place,
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_way_of_changing_the_weights_reaches_the_packed_copy(
    rng: np.random.Generator, change: str
) -> None:
    head = numpy_lstm.Linear(64, 500, rng=rng)
    x = rng.standard_normal((50, 64), dtype=np.float32)
    dy = rng.standard_normal((50, 500), dtype=np.float32)
    head(x)
    before = head(x)  # the second call reuses what the first packed
    CHANGES[change](head)
    after = head(x)
    dx = head.backward(dy)
    assert not np.allclose(after, before)
    expected = torch_linear(head, x, dy)
    np.testing.assert_allclose(after, expected["y"], **FP32)
    np.testing.assert_allclose(dx, expected["dx"], **FP32)


def test_with_the_fast_path_off_the_layer_is_plain_numpy(rng: np.random.Generator) -> None:
    head = numpy_lstm.Linear(64, 500, rng=rng)
    x = rng.standard_normal((50, 64), dtype=np.float32)
    with use_fast(False):
        np.testing.assert_array_equal(head(x), x @ head.weight.T + head.bias)
    assert not linear_keys(head)


def test_a_writable_weight_is_never_packed(rng: np.random.Generator) -> None:
    # Only read-only weights (parameters) may be packed: a writable array can change without
    # the weights' version knowing, and a packed copy of it would go stale.
    weight = rng.standard_normal((500, 64), dtype=np.float32)
    x = rng.standard_normal((50, 64), dtype=np.float32)
    first = products.linear(x, weight)
    weight[:] *= 2  # an edit the library cannot see
    second = products.linear(x, weight)
    expected = torch.from_numpy(x).double() @ torch.from_numpy(weight).double().T
    np.testing.assert_allclose(second, expected.numpy(), **FP32)
    np.testing.assert_allclose(second, 2 * first, rtol=1e-6, atol=1e-5)
