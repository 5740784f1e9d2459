"""Optimizers with `torch.optim` semantics: SGD (momentum, Nesterov), Adam, AdamW, RMSprop;
global-norm gradient clipping.

Each update rule is a pure function of (param, grad, buffers, step, hyperparameters) written in
the operation order of torch's single-tensor (non-foreach) kernel, so float32 and float64 results
agree with torch to rounding. The classes are thin shells: they hold the hyperparameters and the
per-parameter buffers, and write each update into the module's own arrays, in place.

With the fast path on (:func:`numpy_lstm.kernels.select.fast_enabled`), Adam and AdamW run one
compiled loop over all parameters (:mod:`numpy_lstm.kernels.optimizers`; bit-identical to
:func:`adam_update`) on moments kept as one flat array per dtype, and the gradients' global norm
is one compiled pass that also tells whether every gradient is finite. Off, the NumPy rules here
run, as before.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..kernels.select import fast_enabled
from ..nn.module import Module, write_in_place

# The gradients' norm, check and clipping live in .gradients; their names stay importable here.
from .gradients import NonFiniteError as NonFiniteError
from .gradients import clip_grad_norm as clip_grad_norm

if TYPE_CHECKING:  # it imports numba: imported where used, once the fast path is known to work
    from ..kernels import optimizers as compiled_optimizers

Buffers = dict[str, np.ndarray]
# (param, grad, buffers, *, step, **hyperparameters) → (new param, new buffers); each rule has
# its own hyperparameter keywords, hence the open parameter list.
UpdateRule = Callable[..., tuple[np.ndarray, Buffers]]
# A state dict: `step` (int), each hyperparameter (float) and `<buffer>.<param name>` arrays.
OptimizerState = dict[str, float | np.ndarray]


# -- the update rules ---------------------------------------------------------------------------
def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    buffers: Buffers,
    *,
    step: int,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: float,
) -> tuple[np.ndarray, Buffers]:
    """torch.optim.SGD: d = g + wd·p; v = d on the first step, else μ·v + (1 − τ)·d;
    Nesterov uses d + μ·v, plain momentum v; p ← p − lr·(that)."""
    d = grad + weight_decay * param if weight_decay else grad
    if momentum:
        v = d.copy() if step == 1 else momentum * buffers["momentum_buffer"] + (1 - dampening) * d
        buffers = {"momentum_buffer": v}
        d = d + momentum * v if nesterov else v
    return param - lr * d, buffers


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    buffers: Buffers,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool = False,
) -> tuple[np.ndarray, Buffers]:
    """torch.optim.Adam (L2 weight decay added to the gradient) or, with `decoupled`, AdamW
    (p ← p·(1 − lr·wd) before the Adam step). Bias-corrected moments, no amsgrad."""
    if decoupled:
        param = param * (1 - lr * weight_decay)
    elif weight_decay:
        grad = grad + weight_decay * param
    # torch: exp_avg.lerp_(grad, 1 − β1); its vectorised kernel fuses this into one FMA, so the
    # last bit may differ; the value is the same.
    exp_avg = buffers["exp_avg"] + (1 - beta1) * (grad - buffers["exp_avg"])
    exp_avg_sq = buffers["exp_avg_sq"] * beta2 + (1 - beta2) * grad * grad
    step_size = lr / (1 - beta1**step)
    denom = np.sqrt(exp_avg_sq) / (1 - beta2**step) ** 0.5 + eps
    return param + (-step_size * exp_avg) / denom, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def adamw_update(
    param: np.ndarray,
    grad: np.ndarray,
    buffers: Buffers,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> tuple[np.ndarray, Buffers]:
    """torch.optim.AdamW: :func:`adam_update` with the weight decay decoupled."""
    return adam_update(
        param,
        grad,
        buffers,
        step=step,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        decoupled=True,
    )


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    buffers: Buffers,
    *,
    step: int,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: float,
) -> tuple[np.ndarray, Buffers]:
    """torch.optim.RMSprop: s = α·s + (1 − α)·g²; divide by √s + eps (or √(s − ḡ²) + eps when
    centered); with momentum, a velocity buffer accumulates the scaled step."""
    if weight_decay:
        grad = grad + weight_decay * param
    square_avg = buffers["square_avg"] * alpha + (1 - alpha) * grad * grad
    new = {"square_avg": square_avg}
    if centered:
        grad_avg = buffers["grad_avg"] + (1 - alpha) * (grad - buffers["grad_avg"])
        new["grad_avg"] = grad_avg
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum:
        new["momentum_buffer"] = buffers["momentum_buffer"] * momentum + grad / avg
        return param - lr * new["momentum_buffer"], new
    return param - lr * grad / avg, new


# -- the optimizer shell ------------------------------------------------------------------------
Check = tuple[Callable[[float], bool], str]
POSITIVE: Check = (lambda v: v > 0, "> 0")
NON_NEGATIVE: Check = (lambda v: v >= 0, ">= 0")
UNIT_INTERVAL: Check = (lambda v: 0 <= v < 1, "in [0, 1)")
FLAG: Check = (lambda v: v in (0.0, 1.0), "0 or 1")


class Optimizer:
    """Shared shell: hyperparameters (floats, checked), per-parameter buffers, a step counter,
    flat state dicts (`step`, each hyperparameter, `<buffer>.<param name>` arrays)."""

    hyperparameters: ClassVar[dict[str, Check]]
    buffer_names: ClassVar[tuple[str, ...]]
    update: ClassVar[UpdateRule]

    def __init__(self, module: Module, **hyper: float) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"module: expected a numpy_lstm.Module, got {type(module).__name__}")
        self.module = module
        self.hyper = {name: _checked_hyper(name, value, self) for name, value in hyper.items()}
        self.step_count = 0
        self.buffers = self.new_buffers(self.active)

    def new_buffers(self, active: tuple[str, ...]) -> dict[str, Buffers]:
        """Zero buffers `active` for every parameter: buffer name → parameter name → array."""
        params = dict(self.module.named_parameters())
        return {b: {n: np.zeros_like(p) for n, p in params.items()} for b in active}

    @property
    def active(self) -> tuple[str, ...]:
        return self.buffers_for(self.hyper)

    @classmethod
    def buffers_for(cls, hyper: Mapping[str, float]) -> tuple[str, ...]:
        """The buffers a configuration uses (e.g. no momentum buffer without momentum)."""
        return cls.buffer_names

    @property
    def lr(self) -> float:
        return self.hyper["lr"]

    @lr.setter
    def lr(self, value: float) -> None:  # schedules set the learning rate through this
        self.hyper["lr"] = _checked_hyper("lr", value, self)

    def zero_grad(self) -> None:
        self.module.zero_grad()

    def step(self) -> None:
        """One update of every parameter from the gradients accumulated in `module.grads`.

        All new values (parameters and buffers) are computed first and checked finite; only
        then is anything written. An update that overflows (a huge learning rate, say) raises
        :class:`NonFiniteError` naming the parameter and leaves weights, buffers and the step
        count as they were."""
        step = self.step_count + 1
        grads = self.module.grads
        updates = []
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below, by name
            for name, param in self.module.named_parameters():
                mine = {b: self.buffers[b][name] for b in self.active}
                new_param, new_buffers = type(self).update(
                    param, grads[name], mine, step=step, **self.hyper
                )
                new_param = np.asarray(new_param).astype(param.dtype, copy=False)
                new_buffers = {b: v.astype(param.dtype, copy=False) for b, v in new_buffers.items()}
                for what, value in (("update", new_param), *new_buffers.items()):
                    if not np.isfinite(value).all():
                        raise self._non_finite_error(step, what, name)
                updates.append((name, param, new_param, new_buffers))
        for name, param, new_param, new_buffers in updates:
            write_in_place(param, new_param)  # the module keeps the same array object
            for b, value in new_buffers.items():
                self.buffers[b][name][...] = value  # in place: Adam's are views of flat arrays
        self.step_count = step

    def _non_finite_error(self, step: int, what: str, name: str) -> NonFiniteError:
        return NonFiniteError(
            f"step {step}: the {what} of {name} is not finite (lr {self.lr:g}); "
            "weights left unchanged"
        )

    def state_dict(self) -> OptimizerState:
        state: OptimizerState = {"step": self.step_count, **self.hyper}
        for b, arrays in self.buffers.items():
            state.update({f"{b}.{name}": a.copy() for name, a in arrays.items()})
        return state

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore a :meth:`state_dict` (hyperparameters included, as torch does). The keys, the
        step, every hyperparameter and each buffer's shape, dtype and finiteness are validated
        before anything is written, so a failed load leaves the optimizer unchanged."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state: expected a mapping, got {type(state).__name__}")
        params = dict(self.module.named_parameters())
        missing = [k for k in ("step", *self.hyper) if k not in state]
        # The loaded hyperparameters decide which buffers exist (momentum or not, ...).
        hyper = {} if missing else {n: _checked_hyper(n, state[n], self) for n in self.hyper}
        active = () if missing else self.buffers_for(hyper)
        buffer_keys = {f"{b}.{name}": (b, name) for b in active for name in params}
        missing += [k for k in buffer_keys if k not in state]
        expected = {"step", *self.hyper, *buffer_keys}
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        step = state["step"]
        step = step.item() if isinstance(step, np.ndarray) and step.ndim == 0 else step
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step: expected a non-negative integer, got {step!r}")
        buffers = {k: _checked_buffer(k, state[k], params[n]) for k, (_, n) in buffer_keys.items()}
        if not self._buffers_fit(active, params):
            self.buffers = self.new_buffers(active)
        self.step_count, self.hyper = int(step), hyper
        for key, (b, name) in buffer_keys.items():
            self.buffers[b][name][...] = buffers[key]  # into the arrays the optimizer steps

    def _buffers_fit(self, active: tuple[str, ...], params: Mapping[str, np.ndarray]) -> bool:
        """Whether the buffers held are exactly `active`, one per parameter, of its shape and
        dtype, writable (a load then writes into them instead of allocating new ones)."""
        return tuple(self.buffers) == active and all(
            self.buffers[b].keys() == params.keys()
            and all(
                a.shape == params[n].shape and a.dtype == params[n].dtype and a.flags.writeable
                for n, a in self.buffers[b].items()
            )
            for b in active
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:g}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({shown}, step={self.step_count})"


def _checked_hyper(name: str, value: object, optimizer: Optimizer) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # scalars that went through np.savez/safetensors come back 0-d
    if isinstance(value, bool):
        value = float(value)  # flags (nesterov, centered) are stored as 0.0 / 1.0
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    check, expected = type(optimizer).hyperparameters[name]
    if not (math.isfinite(value) and check(value)):
        raise ValueError(f"{name}: expected a finite number {expected}, got {value!r}")
    return value


def _checked_buffer(key: str, value: object, param: np.ndarray) -> np.ndarray:
    """Buffer `value` as an array (the caller copies it), which must match `param`'s shape and
    dtype exactly."""
    array = np.asarray(value)
    if array.shape != param.shape:
        raise ValueError(f"{key}: expected shape {param.shape}, got {array.shape}")
    if array.dtype != param.dtype:
        raise TypeError(f"{key}: expected dtype {param.dtype}, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{key}: contains NaN or Inf")
    if key.startswith(("exp_avg_sq.", "square_avg.")) and (array < 0).any():
        raise ValueError(f"{key}: a second moment must be >= 0 (its square root is taken)")
    return array


# -- the optimizers -----------------------------------------------------------------------------
class SGD(Optimizer):
    """torch.optim.SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)."""

    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": NON_NEGATIVE,
        "momentum": NON_NEGATIVE,
        "dampening": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "nesterov": FLAG,
    }
    buffer_names = ("momentum_buffer",)
    update: ClassVar[UpdateRule] = staticmethod(sgd_update)

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening = 0 (as in torch)")
        super().__init__(
            module,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )

    @classmethod
    def buffers_for(cls, hyper: Mapping[str, float]) -> tuple[str, ...]:
        return cls.buffer_names if hyper["momentum"] else ()


class Adam(Optimizer):
    """torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0).

    exp_avg and exp_avg_sq are each one flat array per dtype (the parameters of that dtype side
    by side, in the module's order); `buffers[b][name]` are views of it, so the compiled step
    (fast path on) updates every parameter in one loop while state dicts stay per parameter."""

    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": NON_NEGATIVE,
        "beta1": UNIT_INTERVAL,
        "beta2": UNIT_INTERVAL,
        "eps": POSITIVE,
        "weight_decay": NON_NEGATIVE,
    }
    buffer_names = ("exp_avg", "exp_avg_sq")
    update: ClassVar[UpdateRule] = staticmethod(adam_update)
    decoupled: ClassVar[bool] = False  # AdamW: the weight decay shrinks the parameters
    _flat: dict[str, dict[np.dtype, np.ndarray]]  # buffer → dtype → flat array
    _views: dict[str, Buffers]  # the views of them that new_buffers made
    _starts: dict[str, int]  # parameter name → where its entries begin in its dtype's arrays
    # The compiled step's groups and what they were built for (see _compiled_groups).
    _plan: tuple[list[object], list[compiled_optimizers.AdamGroup] | None] | None

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        super().__init__(
            module, lr=lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay
        )

    @property
    def betas(self) -> tuple[float, float]:
        return self.hyper["beta1"], self.hyper["beta2"]

    @property
    def exp_avg(self) -> dict[str, np.ndarray]:
        return self.buffers["exp_avg"]

    @property
    def exp_avg_sq(self) -> dict[str, np.ndarray]:
        return self.buffers["exp_avg_sq"]

    def new_buffers(self, active: tuple[str, ...]) -> dict[str, Buffers]:
        params = dict(self.module.named_parameters())
        dtypes = list(dict.fromkeys(p.dtype for p in params.values()))  # in order of appearance
        self._flat, self._starts, self._plan = {b: {} for b in active}, {}, None
        buffers: dict[str, Buffers] = {b: {} for b in active}
        for dtype in dtypes:
            mine = {n: p for n, p in params.items() if p.dtype == dtype}
            for b in active:
                flat = self._flat[b][dtype] = np.zeros(sum(p.size for p in mine.values()), dtype)
                start = 0
                for name, p in mine.items():
                    buffers[b][name] = flat[start : start + p.size].reshape(p.shape)
                    self._starts[name] = start
                    start += p.size
        self._views = {b: dict(views) for b, views in buffers.items()}
        return buffers

    def step(self) -> None:
        """As :meth:`Optimizer.step` (same results, same all-or-nothing guarantee); with the
        fast path, one compiled pass computes and checks every update, a second one writes."""
        groups = self._compiled_groups()
        if groups is None:
            super().step()
            return
        from ..kernels import optimizers as compiled

        step = self.step_count + 1
        failed = compiled.adam_step(groups, step=step, decoupled=self.decoupled, **self.hyper)
        if failed is not None:
            position, what = failed
            name = next(itertools.islice(self.module.named_parameters(), position, None))[0]
            raise self._non_finite_error(step, what, name)
        self.step_count = step

    def _compiled_groups(self) -> list[compiled_optimizers.AdamGroup] | None:
        """The compiled step's parameter groups, or None for the NumPy path: fast path off, or
        arrays it cannot take in place (not C-contiguous, ...), or buffers that are no longer
        views of the flat arrays. Rebuilt only when an array changed identity."""
        if not fast_enabled():
            return None
        named = list(self.module.named_parameters())
        grads = self.module.grads
        key: list[object] = [p for _, p in named] + [grads.get(n) for n, _ in named]
        key += [self.buffers[b].get(n) for b in self.buffer_names for n, _ in named]
        plan = self._plan
        if plan is not None and len(plan[0]) == len(key) and all(map(operator.is_, plan[0], key)):
            return plan[1]
        self._plan = (key, self._new_groups(named, grads, key))
        return self._plan[1]

    def _new_groups(
        self,
        named: list[tuple[str, np.ndarray]],
        grads: Mapping[str, np.ndarray],
        key: list[object],
    ) -> list[compiled_optimizers.AdamGroup] | None:
        from ..kernels import optimizers as compiled  # imports numba: the fast path is on

        params = [p for _, p in named]
        their_grads = [grads.get(n) for n, _ in named]
        views = [self._views[b].get(n) for b in self.buffer_names for n, _ in named]
        if any(  # a caller replaced a buffer, or the module's parameters are not those it had
            view is None or held is not view or view.shape != params[i % len(params)].shape
            for i, (held, view) in enumerate(zip(key[2 * len(named) :], views, strict=True))
        ):
            return None
        arrays = [a for a in (*their_grads, *views) if a is not None]
        if not compiled.supported(params + arrays) or any(
            g is None or g.shape != p.shape or g.dtype != p.dtype or not g.flags.writeable
            for p, g in zip(params, their_grads, strict=True)
        ):
            return None
        groups = []
        for dtype, flat_m in self._flat["exp_avg"].items():
            positions = [i for i, p in enumerate(params) if p.dtype == dtype]
            if positions:  # adam_group checks that each one's moments lie in these flat arrays
                groups.append(
                    compiled.adam_group(
                        positions,
                        [params[i] for i in positions],
                        [arrays[i] for i in positions],
                        flat_m,
                        self._flat["exp_avg_sq"][dtype],
                        [self._starts[named[i][0]] for i in positions],
                    )
                )
        return groups


class AdamW(Adam):
    """torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    the decay shrinks the parameters directly instead of joining the gradient."""

    update: ClassVar[UpdateRule] = staticmethod(adamw_update)
    decoupled: ClassVar[bool] = True

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(module, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """torch.optim.RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False)."""

    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": NON_NEGATIVE,
        "alpha": UNIT_INTERVAL,
        "eps": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "momentum": NON_NEGATIVE,
        "centered": FLAG,
    }
    buffer_names = ("square_avg", "grad_avg", "momentum_buffer")
    update: ClassVar[UpdateRule] = staticmethod(rmsprop_update)

    def __init__(
        self,
        module: Module,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            module,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )

    @classmethod
    def buffers_for(cls, hyper: Mapping[str, float]) -> tuple[str, ...]:
        used = {
            "square_avg": True,
            "grad_avg": hyper["centered"],
            "momentum_buffer": hyper["momentum"],
        }
        return tuple(b for b in cls.buffer_names if used[b])
