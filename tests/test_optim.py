"""Adam against torch.optim.Adam: the same parameters and the same gradients at every step must
give the same parameters; state dicts round-trip; bad arguments are named."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from conftest import TinyModel, random_grads, run_both, set_grads
from numpy_lstm import Module
from numpy_lstm.train.optim import Adam

TOL = {np.float32: dict(rtol=0, atol=1e-6), np.float64: dict(rtol=0, atol=1e-12)}


CASES = [
    dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
    dict(lr=1e-2, betas=(0.0, 0.5), eps=1e-8, weight_decay=0.1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hyper", CASES)
def test_matches_torch_adam_over_200_steps(dtype: type, hyper: dict) -> None:
    model = TinyModel(dtype)
    arrays_before = {name: p for name, p in model.named_parameters()}
    rng = np.random.default_rng(7)
    _, opt, theirs, torch_opt = run_both(Adam, torch.optim.Adam, hyper, dtype, 200, rng, model)

    assert opt.step_count == 200
    for (name, ours), p in zip(model.named_parameters(), theirs, strict=True):
        assert ours is arrays_before[name], f"{name} was replaced, not updated in place"
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, p.detach().numpy(), **TOL[dtype], err_msg=name)
        torch_state = torch_opt.state[p]
        assert opt.exp_avg[name].dtype == dtype
        np.testing.assert_allclose(
            opt.exp_avg[name], torch_state["exp_avg"].numpy(), **TOL[dtype], err_msg=name
        )
        np.testing.assert_allclose(
            opt.exp_avg_sq[name], torch_state["exp_avg_sq"].numpy(), rtol=1e-5, err_msg=name
        )
    # the layer computes with the updated weights: its parameters are the arrays Adam wrote
    assert model.lstm.layer_weights().weight_ih is arrays_before["lstm.weight_ih_l0"]


def test_first_step_moves_each_parameter_by_lr_against_the_gradient_sign() -> None:
    # With bias correction the first Adam step is lr·g/(|g| + eps) ≈ lr·sign(g).
    model = TinyModel(np.float64)
    start = model.state_dict()
    grads = random_grads(np.random.default_rng(1), model)
    grads = {k: np.sign(g) + g for k, g in grads.items()}  # |g| ≥ 1: eps is negligible
    opt = Adam(model, lr=0.1)
    set_grads(model, grads)
    opt.step()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p - start[name], -0.1 * np.sign(grads[name]), rtol=1e-7)


def test_zero_grad_clears_the_module_gradients() -> None:
    model = TinyModel(np.float32)
    set_grads(model, random_grads(np.random.default_rng(2), model))
    Adam(model).zero_grad()
    assert all(not g.any() for g in model.grads.values())


def run(model: Module, opt: Adam, rng: np.random.Generator, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        set_grads(model, random_grads(rng, model))
        opt.step()


@pytest.mark.parametrize("through_npz", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_resumes_exactly(dtype: type, through_npz: bool) -> None:
    hyper = dict(lr=2e-2, betas=(0.85, 0.995), eps=1e-7, weight_decay=1e-3)
    straight = TinyModel(dtype)
    straight_opt = Adam(straight, **hyper)
    run(straight, straight_opt, np.random.default_rng(3), 20)

    first = TinyModel(dtype)
    first_opt = Adam(first, **hyper)
    grad_rng = np.random.default_rng(3)
    run(first, first_opt, grad_rng, 7)
    saved = first_opt.state_dict()
    if through_npz:  # what a checkpoint file does: scalars come back as 0-d arrays
        buffer = io.BytesIO()
        np.savez(buffer, **saved)
        buffer.seek(0)
        saved = dict(np.load(buffer))

    resumed = TinyModel(dtype, seed=99)  # different init, then the saved weights
    resumed.load_state_dict(first.state_dict())
    resumed_opt = Adam(resumed)  # default hyperparameters: the state dict restores them
    resumed_opt.load_state_dict(saved)
    assert resumed_opt.step_count == 7
    assert (resumed_opt.lr, resumed_opt.betas) == (hyper["lr"], hyper["betas"])
    run(resumed, resumed_opt, grad_rng, 13)

    for (name, a), (_, b) in zip(
        straight.named_parameters(), resumed.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert b.dtype == dtype


def test_state_dict_is_plain_and_a_copy() -> None:
    model = TinyModel(np.float32)
    opt = Adam(model)
    run(model, opt, np.random.default_rng(4), 2)
    state = opt.state_dict()
    assert state["step"] == 2 and isinstance(state["step"], int)
    scalars = {k for k in state if not k.startswith("exp_avg")}
    assert scalars == {"step", "lr", "beta1", "beta2", "eps", "weight_decay"}
    names = [name for name, _ in model.named_parameters()]
    assert sorted(k for k in state if k.startswith("exp_avg.")) == sorted(
        f"exp_avg.{n}" for n in names
    )
    state["exp_avg.head.bias"][...] = 123.0
    assert not np.any(opt.exp_avg["head.bias"] == 123.0)


def broken(state: dict, key: str, value: object) -> dict:
    state = dict(state)
    if value is None:
        del state[key]
    else:
        state[key] = value
    return state


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (("exp_avg.head.weight", None), ValueError, r"missing keys \['exp_avg.head.weight'\]"),
        (("momentum", 0.9), ValueError, r"unexpected keys \['momentum'\]"),
        (("exp_avg.head.bias", np.zeros(3, np.float32)), ValueError, r"exp_avg.head.bias.*\(2,\)"),
        (("exp_avg_sq.head.bias", np.zeros(2)), TypeError, "exp_avg_sq.head.bias.*float32"),
        (("exp_avg_sq.head.bias", -np.ones(2, np.float32)), ValueError, ">= 0"),
        (("exp_avg.head.bias", np.array([np.nan, 0], np.float32)), ValueError, "NaN"),
        (("step", -1), ValueError, "step"),
        (("lr", -1.0), ValueError, "lr"),
        (("beta2", 1.0), ValueError, "beta2"),
    ],
)
def test_load_state_dict_validates_before_writing(change: tuple, error: type, match: str) -> None:
    model = TinyModel(np.float32)
    opt = Adam(model)
    run(model, opt, np.random.default_rng(5), 3)
    before = opt.state_dict()
    with pytest.raises(error, match=match):
        opt.load_state_dict(broken(before, *change))
    after = opt.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(lr=-1e-3), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(betas=(1.0, 0.999)), "beta1"),
        (dict(betas=(-0.1, 0.999)), "beta1"),
        (dict(betas=(0.9, 1.0)), "beta2"),
        (dict(betas=(0.9,)), "betas"),
        (dict(eps=0.0), "eps"),
        (dict(eps=-1e-8), "eps"),
        (dict(weight_decay=-0.1), "weight_decay"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: "):
        Adam(TinyModel(np.float32), **kwargs)


def test_module_argument_is_checked() -> None:
    with pytest.raises(TypeError, match="module"):
        Adam([np.zeros(3)])  # type: ignore[arg-type]
