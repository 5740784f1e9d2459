"""Bridges to PyTorch, Keras and ONNX, and the file converter behind `numpy-lstm convert`.

Each bridge lives in its own module and imports its library only when that module is imported,
so `import numpy_lstm` (and this package) never loads torch, keras or onnx:

    numpy_lstm.interop.torch    from_torch / to_torch        (extra: numpy-lstm[torch])
    numpy_lstm.interop.keras    from_keras / to_keras        (extra: numpy-lstm[keras])
    numpy_lstm.interop.onnx     export_onnx / import_onnx    (extra: numpy-lstm[onnx])
    numpy_lstm.interop.convert  load / save by file extension, for every format above

Weight layouts, per layer-direction (GUIDE §4; H hidden, I input, P projection, D directions):

    numpy-lstm = PyTorch   weight_ih (4H, I), weight_hh (4H, H or P),        gates i, f, g, o
                           bias_ih, bias_hh (4H,), weight_hr (P, H)
    Keras 3                kernel (I, 4H), recurrent_kernel (H, 4H),         gates i, f, c, o
                           bias (4H,) = bias_ih + bias_hh
    ONNX LSTM              W (D, 4H, I), R (D, 4H, H), B (D, 8H) = [Wb, Rb], gates i, o, f, c
                           P (D, 3H) peepholes i, o, f
"""

from __future__ import annotations

from typing import Any

from ..lstm import LSTM

# The options of numpy_lstm.LSTM beyond torch's, with their neutral values. A target that
# cannot represent an option refuses a model that uses it (never a silently different model).
NEUTRAL = {
    "proj_size": 0,
    "peephole": False,
    "coupled_input_forget": False,
    "clip": None,
    "activations": ["sigmoid", "tanh", "tanh"],
    "layer_norm": False,
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
    "zoneout": [0.0, 0.0],
}


def check_representable(lstm: LSTM, target: str, unsupported: tuple[str, ...]) -> None:
    """Raise ValueError naming every option of `lstm` in `unsupported` that is not neutral."""
    config = lstm.config()
    used = [f"{name}={config[name]!r}" for name in unsupported if config[name] != NEUTRAL[name]]
    if used:
        raise ValueError(
            f"{target} cannot represent this LSTM: it has no {', '.join(used)} "
            f"(model: {lstm!r}). Convert a model without these options, or keep the native "
            f"format (.safetensors), which stores every option."
        )


def unsupported(what: str, value: Any, supported: Any) -> ValueError:
    """The error for an option of a foreign model that numpy-lstm cannot represent exactly."""
    return ValueError(f"{what}: unsupported value {value!r} (supported: {supported})")
