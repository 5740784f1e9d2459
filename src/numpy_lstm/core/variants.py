"""One LSTM step, forward and backward, with its variants, as pure functions.

:func:`step_forward` / :func:`step_backward` are *the* step: every layer and the sequence loop
use them. With no variant (:data:`PLAIN`) they are exactly the textbook step of
:mod:`numpy_lstm.core.cell` (and call its functions). The variants, each with its own backward,
combine freely:

- **peepholes** (Gers & Schmidhuber 2000; ONNX `P`): z_i += p_i·c_prev, z_f += p_f·c_prev and,
  as in ONNX, the Presenter reads the *new* memory: z_o += p_o·c.
- **coupled input-forget gate** (CIFG; ONNX `input_forget`): the Eraser is f = 1 − i, so the
  memory keeps exactly what the Filter does not overwrite. The f rows of the weights are unused.
- **clip** (ONNX `clip`): every gate pre-activation (peephole terms included) is clipped to
  [−clip, clip] before its activation, as onnxruntime does; the memory itself is not clipped.
  Gradient convention (torch.clamp's): 1 where −clip ≤ z ≤ clip, 0 outside.
- **activations** (ONNX `activations` f, g, h): the gate activation (default sigmoid), the
  Writer's (tanh) and the one applied to the memory before the Presenter (tanh).
- **layer normalisation of the memory** (Ba et al. 2016): h = o·act(LN(c)); the normalisation
  of the two pre-activation terms happens in :mod:`numpy_lstm.core.sequence`, where the
  GEMMs are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .cell import LSTMWeights, gate_activations, memory_update, memory_update_backward, sigmoid

Activation = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _hard_sigmoid(z: np.ndarray) -> np.ndarray:
    return np.clip(0.2 * z + 0.5, 0, 1)  # ONNX HardSigmoid's defaults: alpha 0.2, beta 0.5


# name → (activation, derivative expressed through the activation's *output* y)
ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": (sigmoid, lambda y: y * (1 - y)),
    "tanh": (np.tanh, lambda y: 1 - y * y),
    "hard_sigmoid": (_hard_sigmoid, lambda y: 0.2 * ((y > 0) & (y < 1))),
    "relu": (lambda z: np.maximum(z, 0), lambda y: (y > 0).astype(y.dtype)),
    "softsign": (lambda z: z / (1 + np.abs(z)), lambda y: (1 - np.abs(y)) ** 2),
}
PLAIN_ACTIVATIONS = ("sigmoid", "tanh", "tanh")


@dataclass(frozen=True)
class CellVariant:
    """The math options of a step (its parameters — peepholes, norms — live in LSTMWeights)."""

    coupled_input_forget: bool = False
    clip: float | None = None
    activations: tuple[str, str, str] = PLAIN_ACTIVATIONS
    layer_norm: bool = False
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        unknown = [a for a in self.activations if a not in ACTIVATIONS]
        if len(self.activations) != 3 or unknown:
            raise ValueError(
                f"activations: expected three of {sorted(ACTIVATIONS)} (gate, cell, hidden), "
                f"got {self.activations!r}"
            )
        if self.clip is not None and not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip: expected a positive number, got {self.clip!r}")

    @property
    def is_plain(self) -> bool:
        return self == PLAIN


PLAIN = CellVariant()


def layer_norm(
    a: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LN over the last axis: a (…, F) → (y, normalised n, 1/std (…, 1)); y = n·weight + bias."""
    centred = a - a.mean(axis=-1, keepdims=True)
    inv_std = 1 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    normalised = centred * inv_std
    return normalised * weight + bias, normalised, inv_std


def layer_norm_backward(
    dy: np.ndarray, normalised: np.ndarray, inv_std: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`layer_norm`: → (da, dweight (F,), dbias (F,)), summed over rows."""
    dn = dy * weight
    da = inv_std * (
        dn
        - dn.mean(axis=-1, keepdims=True)
        - normalised * (dn * normalised).mean(axis=-1, keepdims=True)
    )
    axes = tuple(range(dy.ndim - 1))
    return da, (dy * normalised).sum(axis=axes), dy.sum(axis=axes)


class StepValues(NamedTuple):
    """What one step computed and its backward needs. (B, 4H) gates in order i, f, g, o, after
    their activations; (B, H) the others. `shown` is o·act(·) before any projection."""

    shown: np.ndarray
    c: np.ndarray
    gates: np.ndarray
    act_c: np.ndarray  # act(c), or act(LN(c))
    unclipped: np.ndarray | None = None  # (B, 4H) bool: where the clip let the gradient through
    c_norm: tuple[np.ndarray, np.ndarray] | None = None  # LN(c) before its affine part, 1/std
    preactivations: np.ndarray | None = None  # (B, 4H) what each activation read (if recorded)


class StepBackward(NamedTuple):
    """What :func:`step_backward` returns: dz (B, 4H) w.r.t. the pre-activations, dc_prev
    (B, H), dc the full gradient w.r.t. this step's memory c (through h and through later steps),
    and this step's own parameter gradients (peepholes, memory norm) by LSTMWeights field."""

    dz: np.ndarray
    dc_prev: np.ndarray
    dc: np.ndarray
    params: dict[str, np.ndarray]


def step_forward(
    z: np.ndarray, c_prev: np.ndarray, w: LSTMWeights, v: CellVariant = PLAIN, record: bool = False
) -> StepValues:
    """Pre-activations z (B, 4H) (without peephole terms) and memory c_prev (B, H) → StepValues.
    With `record`, the values each activation read (peepholes and clip included) are kept."""
    if v.is_plain and w.weight_peephole is None:
        gates = gate_activations(z)
        shown, c, tanh_c = memory_update(gates, c_prev)
        return StepValues(shown, c, gates, tanh_c, preactivations=z if record else None)
    gate_act, cell_act, hidden_act = (ACTIVATIONS[a][0] for a in v.activations)
    z = z.copy()
    zi, zf, zg, zo = np.split(z, 4, axis=-1)  # views into z
    if w.weight_peephole is not None:
        zi += w.weight_peephole[0] * c_prev
        zf += w.weight_peephole[1] * c_prev
    i = gate_act(_clip(zi, v.clip))
    f = 1 - i if v.coupled_input_forget else gate_act(_clip(zf, v.clip))
    g = cell_act(_clip(zg, v.clip))
    c = f * c_prev + i * g
    if w.weight_peephole is not None:
        zo += w.weight_peephole[2] * c  # the Presenter peeks at the *new* memory
    o = gate_act(_clip(zo, v.clip))
    unclipped = None if v.clip is None else np.abs(z) <= v.clip
    preactivations = _clip(z, v.clip) if record else None
    m, c_norm = c, None
    if v.layer_norm:
        weight, bias = _memory_norm(w)
        m, normalised, inv_std = layer_norm(c, weight, bias, v.layer_norm_eps)
        c_norm = (normalised, inv_std)
    act_c = hidden_act(m)
    gates = np.concatenate([i, f, g, o], axis=-1)
    return StepValues(o * act_c, c, gates, act_c, unclipped, c_norm, preactivations)


def _clip(z: np.ndarray, clip: float | None) -> np.ndarray:
    return z if clip is None else np.clip(z, -clip, clip)


def _memory_norm(w: LSTMWeights) -> tuple[np.ndarray, np.ndarray]:
    """The gain and bias (H,) of the memory's layer norm, which a layer_norm variant needs."""
    if w.ln_weight_c is None or w.ln_bias_c is None:
        raise ValueError("weights: layer_norm is on, but ln_weight_c or ln_bias_c is None")
    return w.ln_weight_c, w.ln_bias_c


def step_backward(
    dshown: np.ndarray,
    dc: np.ndarray,
    step: StepValues,
    c_prev: np.ndarray,
    w: LSTMWeights,
    v: CellVariant = PLAIN,
) -> StepBackward:
    """Backward of :func:`step_forward`. dshown (B, H): gradient w.r.t. o·act(c); dc (B, H):
    w.r.t. the new memory through later steps. See :class:`StepBackward` for what it returns."""
    if v.is_plain and w.weight_peephole is None:
        dz, dc_prev, dc_total = memory_update_backward(dshown, dc, step.gates, c_prev, step.act_c)
        return StepBackward(dz, dc_prev, dc_total, {})
    d_gate, d_cell, d_hidden = (ACTIVATIONS[a][1] for a in v.activations)
    i, f, g, o = np.split(step.gates, 4, axis=-1)
    param_grads: dict[str, np.ndarray] = {}
    dm = dshown * o * d_hidden(step.act_c)
    if step.c_norm is not None:
        dm, param_grads["ln_weight_c"], param_grads["ln_bias_c"] = layer_norm_backward(
            dm, *step.c_norm, _memory_norm(w)[0]
        )
    dc = dc + dm
    dzo = dshown * step.act_c * d_gate(o)
    dzo = dzo if step.unclipped is None else dzo * step.unclipped[..., 3 * i.shape[-1] :]
    if w.weight_peephole is not None:
        dc = dc + dzo * w.weight_peephole[2]  # z_o read the new memory
    di, df, dg = dc * g, dc * c_prev, dc * i
    if v.coupled_input_forget:
        di, df = di - df, np.zeros_like(df)  # f = 1 − i
    dzi, dzg = di * d_gate(i), dg * d_cell(g)
    dzf = df if v.coupled_input_forget else df * d_gate(f)
    dz = np.concatenate([dzi, dzf, dzg, dzo], axis=-1)
    if step.unclipped is not None:
        dz *= step.unclipped
    dzi, dzf = np.split(dz, 4, axis=-1)[:2]
    dc_prev = dc * f
    if w.weight_peephole is not None:
        dc_prev = dc_prev + dzi * w.weight_peephole[0] + dzf * w.weight_peephole[1]
        param_grads["weight_peephole"] = np.stack(
            [(dzi * c_prev).sum(axis=0), (dzf * c_prev).sum(axis=0), (dzo * step.c).sum(axis=0)]
        )
    return StepBackward(dz, dc_prev, dc, param_grads)
