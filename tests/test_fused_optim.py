"""The compiled optimizer step and gradient check (fast path, issue 12): Adam and AdamW update
every parameter in one compiled loop over flat moment buffers, and one compiled pass gives the
gradients' global norm and tells whether all are finite.

Oracles: torch.optim.Adam/AdamW and torch.nn.utils.clip_grad_norm_, and the NumPy update rules
(the fast path off), which the compiled loop must reproduce bit for bit."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import random_grads, set_grads, to_torch
from numpy_lstm import Module
from numpy_lstm.kernels import counts, use_fast
from numpy_lstm.kernels.versions import weights_version
from numpy_lstm.train.gradients import (
    NonFiniteError,
    check_and_clip_grads,
    clip_grad_norm,
    grad_norm,
)
from numpy_lstm.train.optim import Adam, AdamW

pytest.importorskip("numba", reason="the fast path needs numba (the `fast` extra)")


@pytest.fixture(autouse=True)
def fast_path_on() -> Iterator[None]:
    """On for every test here (even under NUMPY_LSTM_FAST=0); some turn it off to compare."""
    with use_fast(True):
        yield


# Sizes 15, 7, 1, 18, 0 and 130: none a multiple of 8 (the vector width), one a single element,
# one empty.
SHAPES = {"w": (3, 5), "b": (7,), "scale": (1,), "cube": (2, 3, 3), "none": (0, 4), "v": (130,)}
TOL = {np.float32: dict(rtol=1e-6, atol=2e-6), np.float64: dict(rtol=0, atol=1e-12)}


class Odd(Module):
    """Parameters of awkward sizes; `dtypes` gives each one's dtype (all float32 by default)."""

    def __init__(self, dtype: type = np.float32, seed: int = 0, dtypes: dict | None = None):
        super().__init__()
        rng = np.random.default_rng(seed)
        for name, shape in SHAPES.items():
            kind = (dtypes or {}).get(name, dtype)
            self.register_parameter(name, rng.standard_normal(shape).astype(kind))


def torch_copy(model: Module) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(to_torch(p.copy())) for _, p in model.named_parameters()]


def feed(model: Module, theirs: list[torch.nn.Parameter], grads: dict) -> None:
    set_grads(model, grads)
    for p, g in zip(theirs, grads.values(), strict=True):
        p.grad = to_torch(g)


def train(model: Module, optimizer: Adam, rng: np.random.Generator, steps: int) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        set_grads(model, random_grads(rng, model))
        optimizer.step()


def snapshot(model: Module, optimizer: Adam) -> tuple[dict, dict]:
    return model.state_dict(), optimizer.state_dict()


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- the update against torch and against the NumPy rules ---------------------------------------
CASES = [
    (Adam, torch.optim.Adam, dict(lr=1e-2)),
    (Adam, torch.optim.Adam, dict(lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.0)),
    (AdamW, torch.optim.AdamW, dict(lr=3e-3, betas=(0.85, 0.99), weight_decay=0.05)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].__name__}{c[2]}")
def test_the_compiled_step_matches_torch(case: tuple, dtype: type) -> None:
    ours_cls, torch_cls, hyper = case
    model = Odd(dtype)
    theirs = torch_copy(model)
    torch_opt = torch_cls(theirs, foreach=False, **hyper)
    optimizer = ours_cls(model, **hyper)
    rng = np.random.default_rng(3)
    for _ in range(30):
        optimizer.zero_grad()
        feed(model, theirs, random_grads(rng, model))
        optimizer.step()
        torch_opt.step()
    assert optimizer._plan is not None and optimizer._plan[1] is not None  # it ran compiled
    for (name, ours), p in zip(model.named_parameters(), theirs, strict=True):
        np.testing.assert_allclose(ours, p.detach().numpy(), **TOL[dtype], err_msg=name)
        state = torch_opt.state[p]
        np.testing.assert_allclose(
            optimizer.exp_avg[name], state["exp_avg"].numpy(), **TOL[dtype], err_msg=name
        )
        np.testing.assert_allclose(
            optimizer.exp_avg_sq[name], state["exp_avg_sq"].numpy(), rtol=1e-5, err_msg=name
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "mixed"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].__name__}{c[2]}")
def test_the_compiled_step_is_bit_identical_to_the_numpy_rules(case: tuple, dtype) -> None:
    ours_cls, _, hyper = case

    def run(fast: bool) -> tuple[dict, dict]:
        mixed = {"b": np.float64, "cube": np.float64}
        model = Odd(dtypes=mixed) if dtype == "mixed" else Odd(dtype)
        optimizer = ours_cls(model, **hyper)
        with use_fast(fast):
            train(model, optimizer, np.random.default_rng(5), 25)
        return snapshot(model, optimizer)

    fused, numpy = run(True), run(False)
    for ours, reference in zip(fused, numpy, strict=True):
        assert_same(ours, reference)
        assert all(np.asarray(ours[k]).dtype == np.asarray(reference[k]).dtype for k in ours)


class Many(Module):
    """19 parameters (the compiled loops take them 8 at a time), float32 and float64 mixed."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(1)
        for i in range(19):
            dtype = np.float64 if i % 5 == 2 else np.float32
            self.register_parameter(f"p{i}", rng.standard_normal(1 + 3 * i).astype(dtype))


def test_more_parameters_than_one_compiled_call_takes() -> None:
    def run(fast: bool) -> tuple[dict, dict]:
        model = Many()
        optimizer = AdamW(model, lr=1e-2)
        with use_fast(fast):
            train(model, optimizer, np.random.default_rng(6), 10)
        return snapshot(model, optimizer)

    for ours, reference in zip(run(True), run(False), strict=True):
        assert_same(ours, reference)
    model = Many()
    optimizer = Adam(model)
    set_grads(model, random_grads(np.random.default_rng(7), model))
    expected = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in model.grads.values()))
    np.testing.assert_allclose(grad_norm(model), expected, rtol=1e-12)
    model.grads["p17"][-1] = np.inf  # float64, in the third float64 chunk position
    model.grads["p13"][0] = np.nan  # float32, the second call's
    with pytest.raises(NonFiniteError, match=r"the update of p13 is not finite"):
        optimizer.step()
    with pytest.raises(NonFiniteError, match=r"the gradient of p13 is not finite"):
        check_and_clip_grads(model, 1.0, step=1)


def test_the_moments_are_views_of_one_flat_array_per_dtype() -> None:
    model = Odd(dtypes={"b": np.float64})
    optimizer = Adam(model)
    for buffers in (optimizer.exp_avg, optimizer.exp_avg_sq):
        bases = {name: view.base for name, view in buffers.items()}
        assert len({id(base) for base in bases.values()}) == 2  # float32, float64
        assert bases["w"] is bases["v"] and bases["b"] is not bases["w"]
        assert all(buffers[n].shape == p.shape for n, p in model.named_parameters())


def test_switching_the_fast_path_mid_run_keeps_one_trajectory() -> None:
    def run(switch: bool) -> tuple[dict, dict]:
        model = Odd(np.float64)
        optimizer = AdamW(model, lr=1e-2)
        rng = np.random.default_rng(8)
        for step in range(12):
            with use_fast(not (switch and step % 3 == 1)):
                train(model, optimizer, rng, 1)
        return snapshot(model, optimizer)

    for ours, reference in zip(run(True), run(False), strict=True):
        assert_same(ours, reference)


def test_a_parameter_assigned_anew_is_stepped_in_its_new_array() -> None:
    def run(fast: bool) -> tuple[dict, dict]:
        model = Odd(np.float32)
        optimizer = Adam(model, lr=1e-2)
        with use_fast(fast):
            train(model, optimizer, np.random.default_rng(2), 3)
            model.w = model.w * 0.5  # a new array object
            new, assigned = model.w, model.w.copy()
            train(model, optimizer, np.random.default_rng(3), 3)
        assert model.w is new and not np.array_equal(model.w, assigned)
        return snapshot(model, optimizer)

    for ours, reference in zip(run(True), run(False), strict=True):
        assert_same(ours, reference)


def test_a_parameter_it_cannot_take_in_place_runs_the_numpy_rules() -> None:
    """A transposed (not C-contiguous) parameter would be copied by a flat view: the step takes
    the NumPy path and still updates the module's own arrays."""
    model = Odd(np.float64)
    model.register_parameter("t", np.asfortranarray(np.ones((3, 4))))
    theirs = torch_copy(model)
    torch_opt = torch.optim.Adam(theirs, lr=0.1, foreach=False)
    optimizer = Adam(model, lr=0.1)
    t = model.t
    for _ in range(3):
        feed(model, theirs, random_grads(np.random.default_rng(1), model))
        optimizer.step()
        torch_opt.step()
    assert model.t is t and optimizer._plan is not None and optimizer._plan[1] is None
    for (name, ours), p in zip(model.named_parameters(), theirs, strict=True):
        np.testing.assert_allclose(ours, p.detach().numpy(), atol=1e-12, err_msg=name)


# -- state dicts and resume ---------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_a_resumed_run_equals_the_uninterrupted_one(cls: type) -> None:
    hyper = dict(lr=2e-2, betas=(0.85, 0.995), weight_decay=1e-2)
    straight = Odd(np.float32)
    train(straight, cls(straight, **hyper), np.random.default_rng(3), 20)

    first = Odd(np.float32)
    first_opt = cls(first, **hyper)
    rng = np.random.default_rng(3)
    train(first, first_opt, rng, 7)
    saved = first_opt.state_dict()
    resumed = Odd(np.float32, seed=9)
    resumed.load_state_dict(first.state_dict())
    resumed_opt = cls(resumed)
    views = {name: view for name, view in resumed_opt.exp_avg.items()}
    resumed_opt.load_state_dict(saved)
    assert all(resumed_opt.exp_avg[name] is view for name, view in views.items())  # written into
    assert_same(resumed_opt.state_dict(), saved)
    train(resumed, resumed_opt, rng, 13)
    assert_same(resumed.state_dict(), straight.state_dict())


def test_the_state_dict_keeps_its_keys_shapes_and_dtypes() -> None:
    model = Odd(dtypes={"cube": np.float64})
    optimizer = Adam(model)
    train(model, optimizer, np.random.default_rng(2), 2)
    state = optimizer.state_dict()
    expected = {"step", "lr", "beta1", "beta2", "eps", "weight_decay"}
    expected |= {f"{b}.{n}" for b in ("exp_avg", "exp_avg_sq") for n in SHAPES}
    assert state.keys() == expected
    for name, p in model.named_parameters():
        assert state[f"exp_avg.{name}"].shape == p.shape
        assert state[f"exp_avg_sq.{name}"].dtype == p.dtype
    state["exp_avg.w"][...] = 5.0  # a copy
    assert not (optimizer.exp_avg["w"] == 5.0).any()


# -- all or nothing -----------------------------------------------------------------------------
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("make", "poison", "message"),
    [
        (lambda m: Adam(m), "lr", "the update of w"),  # lr / (1 − β1^t) overflows float32
        (lambda m: AdamW(m), ("cube", np.inf), "the update of cube"),  # inf / inf
        (lambda m: Adam(m), ("v", 1e30), "the exp_avg_sq of v"),  # g² overflows float32
    ],
    ids=["huge lr", "inf gradient", "overflowing square"],
)
def test_a_non_finite_update_changes_nothing(make, poison, message: str, fast: bool) -> None:
    model = Odd(np.float32)
    optimizer = make(model)
    train(model, optimizer, np.random.default_rng(4), 2)
    set_grads(model, random_grads(np.random.default_rng(5), model))
    if poison == "lr":
        optimizer.lr = 1e38
    else:
        name, value = poison
        model.grads[name][-1] = value
    before, version = snapshot(model, optimizer), weights_version()
    with use_fast(fast), pytest.raises(NonFiniteError, match=rf"^step 3: {message} is not finite"):
        optimizer.step()
    assert_same(snapshot(model, optimizer)[0], before[0])
    assert_same(snapshot(model, optimizer)[1], before[1])
    assert optimizer.step_count == 2
    assert weights_version() == version  # no prepared weights were invalidated
    assert all(not p.flags.writeable for _, p in model.named_parameters())


def test_the_first_non_finite_parameter_is_named_across_dtypes() -> None:
    model = Odd(dtypes={"cube": np.float64})  # float64 cube comes after float32 "b"
    optimizer = Adam(model)
    set_grads(model, random_grads(np.random.default_rng(5), model))
    model.grads["b"][0] = np.nan
    model.grads["cube"][0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"the update of b is not finite"):
        optimizer.step()


def test_after_a_step_the_lstm_fast_path_sees_the_new_weights() -> None:
    lstm = numpy_lstm.LSTM(5, 7, dtype=np.float64, rng=np.random.default_rng(0))
    theirs = torch.nn.LSTM(5, 7, dtype=torch.float64)
    x = np.random.default_rng(1).standard_normal((6, 3, 5))
    optimizer = Adam(lstm, lr=0.05)
    out, _ = lstm(x)  # prepares the weights for the compiled forward
    lstm.backward(np.ones_like(out))
    version = weights_version()
    optimizer.step()
    assert weights_version() != version
    assert all(not p.flags.writeable for _, p in lstm.named_parameters())
    before = counts["fast"]
    ours, _ = lstm(x)
    assert counts["fast"] == before + 1
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-10)


# -- the gradients' norm and the finiteness check -----------------------------------------------
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 1e6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_norm_and_clipping_match_torch(dtype: type, max_norm: float, fast: bool) -> None:
    model = Odd(dtype)
    theirs = torch_copy(model)
    feed(model, theirs, random_grads(np.random.default_rng(1), model))
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, foreach=False).item()
    with use_fast(fast):
        np.testing.assert_allclose(grad_norm(model), expected, rtol=1e-6)
        check_and_clip_grads(model, max_norm, step=1)
    for (name, grad), p in zip(model.grads.items(), theirs, strict=True):
        np.testing.assert_allclose(grad, p.grad.numpy(), rtol=2e-6, atol=1e-30, err_msg=name)


@pytest.mark.parametrize("fast", [True, False])
def test_clip_grad_norm_returns_torchs_norm_for_mixed_dtypes(fast: bool) -> None:
    model = Odd(dtypes={"w": np.float64, "v": np.float64})
    theirs = torch_copy(model)
    feed(model, theirs, random_grads(np.random.default_rng(2), model))
    expected = torch.nn.utils.clip_grad_norm_(theirs, 0.1, foreach=False).item()
    with use_fast(fast):
        np.testing.assert_allclose(clip_grad_norm(model, 0.1), expected, rtol=1e-6)
    for grad, p in zip(model.grads.values(), theirs, strict=True):
        np.testing.assert_allclose(grad, p.grad.numpy(), rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("max_norm", [1.0, None])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_gradient_is_named_and_nothing_is_clipped(bad, max_norm, fast) -> None:
    model = Odd(np.float32)
    set_grads(model, random_grads(np.random.default_rng(3), model))
    model.grads["cube"][1, 2, 0] = bad
    model.grads["v"][3] = np.nan  # a later one: the first in the module's order is named
    grads = {k: g.copy() for k, g in model.grads.items()}
    with use_fast(fast), pytest.raises(NonFiniteError) as caught:
        check_and_clip_grads(model, max_norm, step=4)
    assert str(caught.value) == "step 4: the gradient of cube is not finite; weights left unchanged"
    assert_same(model.grads, grads)


@pytest.mark.filterwarnings("ignore:overflow encountered in dot:RuntimeWarning")  # NumPy's
@pytest.mark.parametrize("fast", [True, False])
def test_finite_float64_gradients_whose_squares_overflow_are_not_called_non_finite(fast) -> None:
    """Σg² = inf although every g is finite: no error; the norm is inf, as torch's, and clipping
    scales the gradients to zero, as clip_grad_norm_ does."""
    model = Odd(np.float64)
    theirs = torch_copy(model)
    grads = random_grads(np.random.default_rng(4), model)
    grads["v"][:] = 1e200
    feed(model, theirs, grads)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=False).item()
    with use_fast(fast):
        assert grad_norm(model) == expected == np.inf
        check_and_clip_grads(model, None, step=1)  # checks only
        assert_same(model.grads, grads)
        check_and_clip_grads(model, 1.0, step=1)
    for grad, p in zip(model.grads.values(), theirs, strict=True):
        np.testing.assert_array_equal(grad, p.grad.numpy())


def test_the_trainer_checks_every_step_through_the_one_pass() -> None:
    """Trainer.train_step names a non-finite gradient from the compiled pass, before Adam
    touches anything."""
    from numpy_lstm.tasks import AddingTask
    from numpy_lstm.train import Trainer, TrainerConfig

    for clip in (1.0, None):
        task = AddingTask(T=6, hidden_size=5, batch_size=4, eval_size=8)
        original = task.train_step

        def poisoned(original=original, task=task) -> float:
            loss = original()
            task.model.grads["head.weight"][0, 0] = np.inf
            return loss

        task.train_step = poisoned  # type: ignore[method-assign]
        optimizer = Adam(task.model)
        config = TrainerConfig(steps=2, clip_norm=clip, progress=False)
        trainer = Trainer(task, optimizer, config=config, out=io.StringIO())
        weights = task.model.state_dict()
        with pytest.raises(NonFiniteError, match=r"^step 1: the gradient of head.weight is not"):
            trainer.train_step()
        assert_same(task.model.state_dict(), weights)
        assert optimizer.step_count == 0
