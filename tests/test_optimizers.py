"""SGD, AdamW and RMSprop against torch.optim on the same gradients for hundreds of steps;
global-norm clipping against torch.nn.utils.clip_grad_norm_; schedules against torch's
schedulers; state dicts resume exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TinyModel, random_grads, run_both, set_grads, to_torch
from numpy_lstm.train.optim import SGD, AdamW, RMSprop, clip_grad_norm
from numpy_lstm.train.schedules import CosineLR, StepLR

# torch warns when a scheduler steps without optimizer steps; here only the lr values matter.
pytestmark = pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)`")

TOL = {np.float32: dict(rtol=1e-6, atol=2e-6), np.float64: dict(rtol=0, atol=1e-12)}

CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.05)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.02, momentum=0.5, dampening=0.3)),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2)),
    (AdamW, torch.optim.AdamW, dict(lr=3e-3, betas=(0.8, 0.95), weight_decay=0.1)),
    (RMSprop, torch.optim.RMSprop, dict(lr=1e-3)),
    (RMSprop, torch.optim.RMSprop, dict(lr=1e-3, momentum=0.9, weight_decay=0.01)),
    (RMSprop, torch.optim.RMSprop, dict(lr=1e-3, centered=True, alpha=0.9)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].__name__}{c[2]}")
def test_matches_torch_over_300_steps(case: tuple, dtype: type) -> None:
    ours_cls, torch_cls, hyper = case
    model, _, theirs, _ = run_both(ours_cls, torch_cls, hyper, dtype, 300, np.random.default_rng(3))
    for (name, ours), p in zip(model.named_parameters(), theirs, strict=True):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, p.detach().numpy(), **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("case", CASES[1::2], ids=lambda c: c[0].__name__)
def test_resume_from_state_dict_is_bit_exact(case: tuple) -> None:
    ours_cls, _, hyper = case
    grads_rng = np.random.default_rng(9)
    grads = [random_grads(grads_rng, TinyModel(np.float64)) for _ in range(20)]

    def train(model, opt, steps):
        for g in steps:
            opt.zero_grad()
            set_grads(model, g)
            opt.step()

    straight = TinyModel(np.float64)
    train(straight, ours_cls(straight, **hyper), grads)
    first = TinyModel(np.float64)
    opt = ours_cls(first, **hyper)
    train(first, opt, grads[:7])
    second = TinyModel(np.float64, seed=99)
    second.load_state_dict(first.state_dict())
    resumed = ours_cls(second, lr=0.5)
    resumed.load_state_dict(opt.state_dict())
    train(second, resumed, grads[7:])
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(second.state_dict()[name], value, err_msg=name)


@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 1e6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(max_norm: float, dtype: type) -> None:
    model = TinyModel(dtype)
    grads = random_grads(np.random.default_rng(1), model)
    set_grads(model, grads)
    theirs = [torch.nn.Parameter(to_torch(p.copy())) for _, p in model.named_parameters()]
    for p, g in zip(theirs, grads.values(), strict=True):
        p.grad = to_torch(g)
    total = clip_grad_norm(model, max_norm)
    total_t = torch.nn.utils.clip_grad_norm_(theirs, max_norm, foreach=False)
    np.testing.assert_allclose(total, total_t.item(), rtol=1e-6)
    for (name, g), p in zip(model.grads.items(), theirs, strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-6, atol=1e-12, err_msg=name)


def lrs_of(scheduler, optimizer, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(
            optimizer.param_groups[0]["lr"] if hasattr(optimizer, "param_groups") else optimizer.lr
        )
        scheduler.step()
    return lrs


def test_step_lr_matches_torch() -> None:
    ours = SGD(TinyModel(np.float64), lr=0.3)
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    np.testing.assert_allclose(
        lrs_of(StepLR(ours, 7, 0.5), ours, 40),
        lrs_of(torch.optim.lr_scheduler.StepLR(theirs, 7, 0.5), theirs, 40),
        rtol=1e-14,
    )


@pytest.mark.parametrize("warmup", [0, 10])
def test_cosine_with_warmup_matches_torch(warmup: int) -> None:
    total, min_lr = 100, 1e-3
    ours = SGD(TinyModel(np.float64), lr=0.1)
    ours_lrs = lrs_of(CosineLR(ours, total, min_lr, warmup, 0.1), ours, total)
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, total - warmup, min_lr)
    scheduler = cosine
    if warmup:
        linear = torch.optim.lr_scheduler.LinearLR(theirs, 0.1, 1.0, warmup)
        scheduler = torch.optim.lr_scheduler.SequentialLR(theirs, [linear, cosine], [warmup])
    np.testing.assert_allclose(ours_lrs, lrs_of(scheduler, theirs, total), rtol=1e-12)


def test_scheduler_state_round_trip() -> None:
    opt = SGD(TinyModel(np.float64), lr=0.1)
    scheduler = CosineLR(opt, 50, warmup_steps=5)
    for _ in range(17):
        scheduler.step()
    other_opt = SGD(TinyModel(np.float64), lr=0.1)
    other = CosineLR(other_opt, 50, warmup_steps=5)
    other.load_state_dict(scheduler.state_dict())
    assert other_opt.lr == opt.lr
    scheduler.step()
    other.step()
    assert other_opt.lr == opt.lr


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda m: SGD(m, lr=-1), "lr: expected a finite number >= 0"),
        (lambda m: SGD(m, momentum=-0.1), "momentum: expected"),
        (lambda m: SGD(m, nesterov=True), "nesterov: needs momentum > 0"),
        (lambda m: RMSprop(m, alpha=1.0), r"alpha: expected a finite number in \[0, 1\)"),
        (lambda m: AdamW(m, weight_decay=-1), "weight_decay: expected"),
        (lambda m: StepLR(SGD(m), 0), "step_size: expected a positive integer"),
        (lambda m: CosineLR(SGD(m), 10, warmup_steps=10), "warmup_steps: expected"),
        (lambda m: clip_grad_norm(m, 0), "max_norm: expected a positive number"),
    ],
)
def test_bad_arguments_are_named(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(TinyModel(np.float32))
