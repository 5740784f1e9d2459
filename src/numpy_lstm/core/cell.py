"""One LSTM step, as the pure functions that read like its equations.

In PyTorch's gate order i, f, g, o::

    z  = x·W_ihᵀ + h·W_hhᵀ + b_ih + b_hh        (B, 4H), split into four H-blocks
    i  = σ(z_i)      the Filter    — which parts of the new candidate are worth writing
    f  = σ(z_f)      the Eraser    — how much of the old memory to keep
    g  = tanh(z_g)   the Writer    — the candidate content
    o  = σ(z_o)      the Presenter — which part of the memory to show
    c' = f*c + i*g                 — `*` selects, `+` is the gradient highway
    h' = o*tanh(c')

:func:`preactivations` is the first line, :func:`gate_activations` the next four and
:func:`memory_update` the last two; :func:`memory_update_backward` and
:func:`preactivations_backward` run them backwards. The step as a whole — these with the
variants (peepholes, coupled gates, clip, other activations, layer norm) — is
:func:`numpy_lstm.core.variants.step_forward` / :func:`~numpy_lstm.core.variants.step_backward`,
which call these functions when no variant is on.

Everything here takes and returns arrays, keeps the dtype it is given (float32 stays float32) and
has no hidden state. Validation of user input happens in the layers, not here: these functions
are the hot path and the readable reference at once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

GATES = ("i", "f", "g", "o")
GATE_ROLES = {"i": "Filter", "f": "Eraser", "g": "Writer", "o": "Presenter"}


class LSTMWeights(NamedTuple):
    """The parameters of one LSTM layer-direction, in PyTorch's layout.

    weight_ih: (4H, I)    rows are the i, f, g, o blocks
    weight_hh: (4H, H_out) H_out = P with a projection, else H
    bias_ih:   (4H,) or None when the layer has no bias
    bias_hh:   (4H,) or None
    weight_hr: (P, H) or None — the output projection h = (o·tanh(c))·W_hrᵀ (Sak et al. 2014)

    Variants (see :mod:`numpy_lstm.core.variants`), None when off:
    weight_peephole: (3, H) — rows i, f, o: the gates also read the memory (Gers & Schmidhuber)
    ln_weight_ih, ln_bias_ih, ln_weight_hh, ln_bias_hh: (4H,) — layer norm of x·W_ihᵀ, h·W_hhᵀ
    ln_weight_c, ln_bias_c: (H,) — layer norm of c before the output activation (Ba et al. 2016)
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    weight_hr: np.ndarray | None = None
    weight_peephole: np.ndarray | None = None
    ln_weight_ih: np.ndarray | None = None
    ln_bias_ih: np.ndarray | None = None
    ln_weight_hh: np.ndarray | None = None
    ln_bias_hh: np.ndarray | None = None
    ln_weight_c: np.ndarray | None = None
    ln_bias_c: np.ndarray | None = None

    @property
    def hidden_size(self) -> int:
        """H, the size of the memory c."""
        return self.weight_hh.shape[0] // 4

    @property
    def output_size(self) -> int:
        """H_out, the size of h: P with a projection, else H."""
        return self.weight_hh.shape[1]

    def bias(self) -> np.ndarray | float:
        """b_ih + b_hh (4H,), or 0 without bias. Summed once, since both always appear together."""
        if self.bias_ih is None:
            return 0.0
        return self.bias_ih + self.bias_hh


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^{-z}) without overflow for any finite z, dtype kept.

    e^{-|z|} ≤ 1 never overflows; for z < 0 we use the algebraically equal e^{z} / (1 + e^{z}),
    which keeps full relative precision for very negative z (where 1 - σ would cancel).
    """
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def split_gates(gates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(…, 4H) → the four (…, H) blocks i, f, g, o (views, no copy)."""
    i, f, g, o = np.split(gates, 4, axis=-1)
    return i, f, g, o


def preactivations(x: np.ndarray, h_prev: np.ndarray, w: LSTMWeights) -> np.ndarray:
    """z = x·W_ihᵀ + h·W_hhᵀ + b: x (B, I), h_prev (B, H_out) → z (B, 4H)."""
    return x @ w.weight_ih.T + h_prev @ w.weight_hh.T + w.bias()


def preactivations_backward(
    dz: np.ndarray, x: np.ndarray, h_prev: np.ndarray, w: LSTMWeights
) -> tuple[np.ndarray, np.ndarray, LSTMWeights]:
    """Backward of :func:`preactivations`: dz (B, 4H) → dx (B, I), dh_prev (B, H_out) and the
    gradients of weight_ih, weight_hh and both biases (summed over the batch) as LSTMWeights."""
    db = None if w.bias_ih is None else dz.sum(axis=0)
    dweights = LSTMWeights(dz.T @ x, dz.T @ h_prev, db, None if db is None else db.copy())
    return dz @ w.weight_ih, dz @ w.weight_hh, dweights


def gate_activations(z: np.ndarray) -> np.ndarray:
    """Pre-activations z (…, 4H) → gate values (…, 4H): σ on i, f, o and tanh on g."""
    H = z.shape[-1] // 4
    gates = sigmoid(z)
    gates[..., 2 * H : 3 * H] = np.tanh(z[..., 2 * H : 3 * H])
    return gates


def memory_update(
    gates: np.ndarray, c_prev: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gate values (B, 4H) and old memory c (B, H) → new (h, c, tanh(c)), each (B, H)."""
    i, f, g, o = split_gates(gates)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    return o * tanh_c, c, tanh_c


def memory_update_backward(
    dh: np.ndarray, dc: np.ndarray, gates: np.ndarray, c_prev: np.ndarray, tanh_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward through one step from the gate values on.

    dh, dc: (B, H) gradients of the loss w.r.t. this step's h and c (dc *not* yet including
    the path through h). Returns dz (B, 4H), the gradient w.r.t. the pre-activations, dc_prev
    (B, H), and the full gradient w.r.t. c (B, H): dc plus the path through h.
    """
    i, f, g, o = split_gates(gates)
    do = dh * tanh_c
    dc = dc + dh * o * (1 - tanh_c * tanh_c)  # h = o·tanh(c): the second path into c
    dz = np.concatenate(
        [
            dc * g * i * (1 - i),  # Filter:    ∂c/∂i = g,      σ' = i(1-i)
            dc * c_prev * f * (1 - f),  # Eraser: ∂c/∂f = c_prev, σ' = f(1-f)
            dc * i * (1 - g * g),  # Writer:    ∂c/∂g = i,      tanh' = 1-g²
            do * o * (1 - o),  # Presenter:  ∂h/∂o = tanh(c)
        ],
        axis=-1,
    )
    return dz, dc * f, dc  # dc * f: the `+` highway, memory flows back scaled only by the Eraser
