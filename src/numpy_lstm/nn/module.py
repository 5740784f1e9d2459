"""`Module`: the thin stateful shell shared by every layer.

It owns named parameters and their accumulated gradients, nests sub-modules (names joined with
dots, exactly like torch's state_dict keys), and loads/saves state with strict validation.
The math lives in pure functions elsewhere; a module only keeps what a forward call needs for
its backward.

Parameters are read-only arrays: the library changes them (assignment, load_state_dict, an
optimizer step, ``with module.editing():``) and says so to the kernels' version counter, so a
fast path may keep prepared copies of the weights between calls without ever using stale ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..core.validation import FLOAT_DTYPES
from ..kernels.versions import editing_ended, editing_started, weights_changed


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(..., strict=False)` ignored (torch's return value, same fields)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class: parameters, gradients, sub-modules, state dicts, train/eval mode."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_grads", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    # -- registration -------------------------------------------------------------------------
    def register_parameter(self, name: str, value: np.ndarray) -> None:
        """Add a parameter (kept as given, made read-only: see :meth:`editing`) and a zero
        gradient of the same shape and dtype."""
        value.flags.writeable = False
        self._params[name] = value
        self._grads[name] = np.zeros_like(value)
        weights_changed()

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: parameters and children read like attributes.
        # Any: an ndarray or a Module, by name, which no static type can tell apart.
        for table in ("_params", "_children"):
            entries = self.__dict__.get(table, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        if name in self.__dict__.get("_params", {}):
            self._assign(name, value)
        elif isinstance(value, Module):
            self._children[name] = value
        else:
            object.__setattr__(self, name, value)

    def _assign(self, name: str, value: object) -> None:
        """Replace a parameter by a copy of `value`, after checking its shape and dtype."""
        problem = _mismatch(name, self._params[name], value)
        if problem:
            kind, message = problem
            raise kind(message)
        copy = np.array(value, copy=True)
        copy.flags.writeable = False
        self._params[name] = copy
        weights_changed()

    # -- traversal ----------------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name, value in self._params.items():
            yield prefix + name, value
        for child_name, child in self._children.items():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def parameters(self) -> list[np.ndarray]:
        return [value for _, value in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(name, module) for this module ("" or `prefix`) and every sub-module, like torch."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Accumulated gradients, keyed like `state_dict()`. The arrays are the live buffers."""
        out = dict(self._grads)
        for child_name, child in self._children.items():
            out.update({f"{child_name}.{k}": v for k, v in child.grads.items()})
        return out

    def zero_grad(self) -> None:
        for module in self.modules():
            for grad in module._grads.values():
                grad.fill(0)

    def _accumulate(self, grads: Mapping[str, np.ndarray]) -> None:
        for name, grad in grads.items():
            self._grads[name] += grad

    # -- modes --------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """name → a copy of each parameter (torch's key names)."""
        return {name: value.copy() for name, value in self.named_parameters()}

    def load_state_dict(
        self, state: Mapping[str, ArrayLike], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy `state` into the parameters after validating all of it.

        Every name, shape and dtype is checked before anything is written, so a failed load
        leaves the module exactly as it was. With strict=False, missing and unexpected keys are
        returned instead of raised; shapes and dtypes of the keys present are always checked.
        """
        if not isinstance(state, Mapping):
            raise TypeError(
                f"state: expected a mapping of name → array, got {type(state).__name__}"
            )
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        problems = [p for k in own if k in state if (p := _mismatch(k, own[k], state[k]))]
        if strict and unexpected:
            problems.insert(0, (ValueError, f"unexpected keys {unexpected}"))
        if strict and missing:
            problems.insert(0, (ValueError, f"missing keys {missing}"))
        if problems:
            kind = TypeError if all(k is TypeError for k, _ in problems) else ValueError
            messages = "; ".join(message for _, message in problems)
            raise kind(f"load_state_dict of {type(self).__name__}: {messages}")
        owners = {
            f"{name}.{k}" if name else k: (module, k)
            for name, module in self.named_modules()
            for k in module._params
        }
        for name in own:
            if name in state:
                module, local = owners[name]
                write_in_place(module._params[local], state[name])  # references stay live
        return IncompatibleKeys(missing, unexpected)

    @contextmanager
    def editing(self) -> Iterator[Module]:
        """Edit parameters in place inside the block: ``with lstm.editing(): lstm.bias_ih_l0[0]
        = 1.0``. Parameters are read-only elsewhere, so that no edit can slip past the fast
        kernels' prepared copies of the weights; inside it, no call reuses a prepared copy, and on
        leaving it (even on an error) they are read-only again."""
        params = [p for _, p in self.named_parameters()]
        before = [p.flags.writeable for p in params]  # as an enclosing block left them
        editing_started()  # calls inside the block reuse no prepared weights
        try:
            for p in params:
                p.flags.writeable = True
            yield self
        finally:
            for p, writeable in zip(params, before, strict=True):
                p.flags.writeable = writeable
            editing_ended()


def write_in_place(param: np.ndarray, value: ArrayLike) -> None:
    """param[...] = value for a parameter, which is read-only otherwise; the weights' version
    moves on (see :mod:`numpy_lstm.kernels.versions`), even if the write fails half-way."""
    param.flags.writeable = True
    try:
        param[...] = value
    finally:
        param.flags.writeable = False
        weights_changed()


def _mismatch(name: str, current: np.ndarray, value: object) -> tuple[type[Exception], str] | None:
    """Why `value` cannot replace parameter `current` (exception type, message), or None."""
    array = np.asarray(value)
    if array.shape != current.shape:
        return ValueError, f"{name}: expected shape {current.shape}, got {array.shape}"
    if array.dtype != current.dtype:
        hint = "" if array.dtype in FLOAT_DTYPES else " (not a supported float type)"
        return TypeError, f"{name}: expected dtype {current.dtype}, got dtype {array.dtype}{hint}"
    if not np.isfinite(array).all():
        return ValueError, f"{name}: contains NaN or Inf"
    return None


class evaluating:  # a lower-case name: it reads as a function, like contextlib's managers
    """`with evaluating(model):` — `model` in evaluation mode inside the block (no dropout);
    after it, even on an error, every sub-module is back in the mode it was in before."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.modes: list[tuple[Module, bool]] = []

    def __enter__(self) -> Module:
        self.modes = [(module, module.training) for module in self.module.modules()]
        self.module.eval()
        return self.module

    def __exit__(self, *exc_info: object) -> None:
        for module, training in self.modes:
            object.__setattr__(module, "training", training)
