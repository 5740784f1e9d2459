"""Learning-rate schedules: pure functions of the step, and a thin scheduler that applies one
to an optimizer (`scheduler.step()` once per optimizer step, like torch's schedulers).

    step_decay(t)    = base · γ^⌊t / step_size⌋                          torch StepLR
    cosine(t)        = min + (base − min)·(1 + cos(π·t / T))/2, t ≤ T    torch CosineAnnealingLR
    linear warmup    = base · (s + (1 − s)·t / W) for t < W, then the schedule from t − W
                                                  torch SequentialLR([LinearLR, …], [W])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from ..core.validation import check_int
from .optim import Optimizer

LRFunction = Callable[[int, float], float]  # (step, base_lr) → lr


def constant(step: int, base: float) -> float:
    return base


def step_decay(step_size: int, gamma: float) -> LRFunction:
    return lambda step, base: base * gamma ** (step // step_size)


def cosine(total_steps: int, min_lr: float = 0.0) -> LRFunction:
    def lr(step: int, base: float) -> float:
        t = min(step, total_steps)
        return min_lr + (base - min_lr) * (1 + math.cos(math.pi * t / total_steps)) / 2

    return lr


def with_linear_warmup(warmup_steps: int, start_factor: float, then: LRFunction) -> LRFunction:
    def lr(step: int, base: float) -> float:
        if step < warmup_steps:
            return base * (start_factor + (1 - start_factor) * step / warmup_steps)
        return then(step - warmup_steps, base)

    return lr


class Scheduler:
    """Sets `optimizer.lr = lr_function(step, base_lr)` at creation (step 0) and at each `step()`.

    Its state is just the step count and the base learning rate, so a scheduler rebuilt with
    the same arguments and given `load_state_dict(state)` continues exactly where it stopped.
    """

    def __init__(self, optimizer: Optimizer, lr_function: LRFunction) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a numpy_lstm optimizer, got {optimizer!r}")
        self.optimizer = optimizer
        self.lr_function = lr_function
        self.base_lr = optimizer.lr
        self.last_step = 0
        self._apply()

    def _apply(self) -> None:
        self.optimizer.lr = self.lr_function(self.last_step, self.base_lr)

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict[str, float]:
        return {"last_step": self.last_step, "base_lr": self.base_lr}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        last_step, base_lr = state.get("last_step"), state.get("base_lr")
        if isinstance(last_step, bool) or not isinstance(last_step, int) or last_step < 0:
            raise ValueError(f"last_step: expected a non-negative int, got {last_step!r}")
        if not isinstance(base_lr, (int, float)) or not base_lr > 0:
            raise ValueError(f"base_lr: expected a positive number, got {base_lr!r}")
        self.last_step, self.base_lr = last_step, float(base_lr)
        self._apply()


def StepLR(optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> Scheduler:
    """Multiply the learning rate by `gamma` every `step_size` steps."""
    check_int("step_size", step_size)
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma: expected a number in (0, 1], got {gamma!r}")
    return Scheduler(optimizer, step_decay(step_size, gamma))


def CosineLR(
    optimizer: Optimizer,
    total_steps: int,
    min_lr: float = 0.0,
    warmup_steps: int = 0,
    warmup_start_factor: float = 0.1,
) -> Scheduler:
    """Cosine decay from the optimizer's lr to `min_lr` over `total_steps`, after an optional
    linear warmup of `warmup_steps` (counted inside `total_steps`)."""
    check_int("total_steps", total_steps)
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"warmup_steps: expected 0 ≤ warmup_steps < {total_steps}, got {warmup_steps}"
        )
    if not 0 < warmup_start_factor <= 1:
        raise ValueError(f"warmup_start_factor: expected (0, 1], got {warmup_start_factor!r}")
    if min_lr < 0:
        raise ValueError(f"min_lr: expected ≥ 0, got {min_lr!r}")
    decay = cosine(total_steps - warmup_steps, min_lr)
    if warmup_steps:
        decay = with_linear_warmup(warmup_steps, warmup_start_factor, decay)
    return Scheduler(optimizer, decay)


SCHEDULES: dict[str, Callable[..., Scheduler]] = {"step": StepLR, "cosine": CosineLR}


def make_schedule(optimizer: Optimizer, spec: Mapping[str, object] | None) -> Scheduler | None:
    """A scheduler from a JSON-able spec such as {"name": "cosine", "total_steps": 1000,
    "warmup_steps": 50} (the form checkpoints store); None or {"name": "constant"} → None."""
    if spec is None or spec.get("name") == "constant":
        return None
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"schedule: expected a name in {['constant', *SCHEDULES]}, got {name!r}")
    return SCHEDULES[name](optimizer, **kwargs)
