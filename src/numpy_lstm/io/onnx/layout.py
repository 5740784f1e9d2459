"""ONNX's LSTM layout beside torch's: gate order, bias split, peephole rows (pure NumPy).

torch   weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,)    gates i, f, g, o
ONNX    W (D, 4H, I), R (D, 4H, H), B (D, 8H) = [Wb, Rb], P (D, 3H)     gates i, o, f, c
        peephole rows i, o, f
"""

from __future__ import annotations

import numpy as np

from ...core.cell import LSTMWeights
from ..representable import Lacks

TORCH_TO_ONNX_GATES = (0, 3, 1, 2)  # ONNX block j is torch block TORCH_TO_ONNX_GATES[j]
ONNX_TO_TORCH_GATES = (0, 2, 3, 1)  # the inverse permutation
PEEPHOLE_TO_ONNX = (0, 2, 1)  # our rows i, f, o → ONNX's i, o, f (its own inverse)
ONNX_ACTIVATIONS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "hard_sigmoid": "HardSigmoid",  # ONNX's default alpha 0.2, beta 0.5 are ours
    "relu": "Relu",
    "softsign": "Softsign",
}
ONNX_LACKS = Lacks("ONNX", ("proj_size", "layer_norm", "zoneout"))
MIN_OPSET = 14


def reorder_gates(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """Reorder the four H-blocks of axis 0: a (4H, …) → its blocks `order`, concatenated."""
    H = a.shape[0] // 4
    return a.reshape(4, H, *a.shape[1:])[list(order)].reshape(a.shape)


def onnx_tensors(directions: list[LSTMWeights]) -> dict[str, np.ndarray]:
    """One layer's weights, a torch-layout LSTMWeights per direction → ONNX's W (D, 4H, I),
    R (D, 4H, H), and if present B (D, 8H) = [Wb, Rb] and P (D, 3H), gates i, o, f, c."""
    order = TORCH_TO_ONNX_GATES
    tensors = {
        "W": np.stack([reorder_gates(w.weight_ih, order) for w in directions]),
        "R": np.stack([reorder_gates(w.weight_hh, order) for w in directions]),
    }
    if directions[0].bias_ih is not None:
        tensors["B"] = np.stack([_onnx_bias(w) for w in directions])
    if directions[0].weight_peephole is not None:
        tensors["P"] = np.stack([_onnx_peepholes(w) for w in directions])
    return tensors


def _onnx_bias(w: LSTMWeights) -> np.ndarray:
    """One direction's B (8H,) = [Wb, Rb], gates i, o, f, c."""
    if w.bias_ih is None or w.bias_hh is None:
        raise ValueError("directions: every direction must have biases if the first has")
    order = TORCH_TO_ONNX_GATES
    return np.concatenate([reorder_gates(w.bias_ih, order), reorder_gates(w.bias_hh, order)])


def _onnx_peepholes(w: LSTMWeights) -> np.ndarray:
    """One direction's P (3H,), rows i, o, f."""
    if w.weight_peephole is None:
        raise ValueError("directions: every direction must have peepholes if the first has")
    return w.weight_peephole[list(PEEPHOLE_TO_ONNX)].ravel()


def torch_tensors(tensors: dict[str, np.ndarray], direction: int) -> dict[str, np.ndarray]:
    """The inverse of :func:`onnx_tensors` for one direction: ONNX W, R, B, P → LSTMWeights
    field names (weight_ih, weight_hh, bias_ih, bias_hh, weight_peephole) in torch's layout."""
    order, H = ONNX_TO_TORCH_GATES, tensors["R"].shape[1] // 4
    fields = {
        "weight_ih": reorder_gates(tensors["W"][direction], order),
        "weight_hh": reorder_gates(tensors["R"][direction], order),
    }
    if "B" in tensors:
        wb, rb = np.split(tensors["B"][direction], 2)
        fields |= {"bias_ih": reorder_gates(wb, order), "bias_hh": reorder_gates(rb, order)}
    if "P" in tensors:
        fields["weight_peephole"] = tensors["P"][direction].reshape(3, H)[list(PEEPHOLE_TO_ONNX)]
    return fields
