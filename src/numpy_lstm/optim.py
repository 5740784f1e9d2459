"""Adam, with `torch.optim.Adam`'s semantics (default: no amsgrad, no maximize, L2 weight decay).

The update is a pure function, :func:`adam_update`, written in the same operation order as torch's
single-tensor (non-foreach) kernel, so float32 and float64 results agree with torch to rounding.
The :class:`Adam` class is a thin shell: it holds the hyperparameters and the two moment buffers
per parameter, and writes each update into the module's own arrays, in place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .module import Module

_HYPER = ("lr", "beta1", "beta2", "eps", "weight_decay")
_BUFFERS = ("exp_avg", "exp_avg_sq")


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step for one parameter; returns new (param, exp_avg, exp_avg_sq), inputs untouched.

    All arrays have the parameter's shape and dtype; `step` counts from 1 (this step included).
    The Python-float coefficients are rounded to the arrays' dtype, as torch rounds its scalars.
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param  # L2: the decay is part of the gradient (not AdamW)
    # torch: exp_avg.lerp_(grad, 1 - β1). Its vectorised kernel fuses this into one FMA, so the
    # last bit may differ; the value is the same.
    exp_avg = exp_avg + (1 - beta1) * (grad - exp_avg)
    exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    step_size = lr / bias_correction1
    denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    return param + (-step_size * exp_avg) / denom, exp_avg, exp_avg_sq


def _checked_hyper(name: str, value: Any) -> float:
    """Validate one hyperparameter by name; return it as a float."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # scalars that went through np.savez come back 0-d
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    ranges = {
        "lr": (value > 0, "> 0"),
        "beta1": (0 <= value < 1, "in [0, 1)"),
        "beta2": (0 <= value < 1, "in [0, 1)"),
        "eps": (value > 0, "> 0"),
        "weight_decay": (value >= 0, ">= 0"),
    }
    ok, expected = ranges[name]
    if not (ok and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number {expected}, got {value!r}")
    return value


class Adam:
    """Adam over every parameter of a :class:`~numpy_lstm.Module`, like `torch.optim.Adam`.

    `opt = Adam(model, lr=1e-3)`; per iteration: `opt.zero_grad()`, forward, backward (which
    accumulates into `model.grads`), `opt.step()`. Parameters are read from the module at every
    step (so a `model.load_state_dict` in between is seen) and updated in place. The moment
    buffers `exp_avg` and `exp_avg_sq` map each parameter name to an array of its shape and
    dtype; `step_count` is torch's `state["step"]` (shared, since every parameter steps together).
    """

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"module: expected a numpy_lstm.Module, got {type(module).__name__}")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        self.module = module
        self.lr = _checked_hyper("lr", lr)
        self.betas = (_checked_hyper("beta1", betas[0]), _checked_hyper("beta2", betas[1]))
        self.eps = _checked_hyper("eps", eps)
        self.weight_decay = _checked_hyper("weight_decay", weight_decay)
        self.step_count = 0
        params = dict(module.named_parameters())
        self.exp_avg = {name: np.zeros_like(p) for name, p in params.items()}
        self.exp_avg_sq = {name: np.zeros_like(p) for name, p in params.items()}

    def zero_grad(self) -> None:
        """Reset the module's accumulated gradients to zero."""
        self.module.zero_grad()

    def step(self) -> None:
        """Apply one Adam update to every parameter, using the gradients in `module.grads`."""
        self.step_count += 1
        grads = self.module.grads
        beta1, beta2 = self.betas
        for name, param in self.module.named_parameters():
            new_param, self.exp_avg[name], self.exp_avg_sq[name] = adam_update(
                param,
                grads[name],
                self.exp_avg[name],
                self.exp_avg_sq[name],
                step=self.step_count,
                lr=self.lr,
                beta1=beta1,
                beta2=beta2,
                eps=self.eps,
                weight_decay=self.weight_decay,
            )
            param[...] = new_param  # in place: the module keeps the same array object

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A flat dict (np.savez-friendly): `step` (int), the hyperparameters (floats), and
        `exp_avg.<param name>` / `exp_avg_sq.<param name>` arrays (copies)."""
        beta1, beta2 = self.betas
        state: dict[str, Any] = {
            "step": self.step_count,
            "lr": self.lr,
            "beta1": beta1,
            "beta2": beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }
        for name in self.exp_avg:
            state[f"exp_avg.{name}"] = self.exp_avg[name].copy()
            state[f"exp_avg_sq.{name}"] = self.exp_avg_sq[name].copy()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (hyperparameters included, as torch does).

        Everything is validated before anything is written: the exact set of keys, the step,
        the hyperparameters' ranges, and each buffer's shape, dtype and finiteness against the
        module's parameter of the same name. A failed load leaves the optimizer unchanged.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state: expected a mapping, got {type(state).__name__}")
        params = dict(self.module.named_parameters())
        buffer_keys = {f"{kind}.{name}": name for name in params for kind in _BUFFERS}
        expected = ["step", *_HYPER, *buffer_keys]
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise ValueError(
                f"Adam.load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        step = state["step"]
        step = step.item() if isinstance(step, np.ndarray) and step.ndim == 0 else step
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step: expected a non-negative integer, got {step!r}")
        hyper = {name: _checked_hyper(name, state[name]) for name in _HYPER}
        buffers = {k: _checked_buffer(k, state[k], params[name]) for k, name in buffer_keys.items()}
        # Everything is valid: now write.
        self.step_count = int(step)
        self.lr, self.eps, self.weight_decay = hyper["lr"], hyper["eps"], hyper["weight_decay"]
        self.betas = (hyper["beta1"], hyper["beta2"])
        self.exp_avg = {name: buffers[f"exp_avg.{name}"] for name in params}
        self.exp_avg_sq = {name: buffers[f"exp_avg_sq.{name}"] for name in params}

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay}, step={self.step_count})"
        )


def _checked_buffer(key: str, value: Any, param: np.ndarray) -> np.ndarray:
    """A copy of moment buffer `value`, which must match `param`'s shape and dtype exactly."""
    array = np.asarray(value)
    if array.shape != param.shape:
        raise ValueError(f"{key}: expected shape {param.shape}, got {array.shape}")
    if array.dtype != param.dtype:
        raise TypeError(f"{key}: expected dtype {param.dtype}, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{key}: contains NaN or Inf")
    if key.startswith("exp_avg_sq.") and (array < 0).any():
        raise ValueError(f"{key}: a second moment must be >= 0 (its square root is taken)")
    return array.copy()
