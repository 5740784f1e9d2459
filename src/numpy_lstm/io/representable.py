"""Which options a foreign format can represent: a model using any other is refused, by name.

An exported or imported model is either exactly the source or an error — never a silently
different model.
"""

from __future__ import annotations

from typing import Any

from ..nn.lstm import LSTM

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
