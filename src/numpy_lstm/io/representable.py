"""Which options a foreign format can represent: a model using any other is refused, by name.

An exported or imported model is either exactly the source or an error — never a silently
different model. Each format names the options it lacks in a :class:`Lacks`, which accepts only
real options of :class:`~numpy_lstm.core.options.LSTMConfig`; an option is "used" when it
differs from its default there (the default is the plain torch.nn.LSTM's behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.options import LSTMConfig, option_names
from ..nn.lstm import LSTM


@dataclass(frozen=True)
class Lacks:
    """The options of LSTMConfig that the format `target` cannot represent."""

    target: str
    options: tuple[str, ...]

    def __post_init__(self) -> None:
        option_names(*self.options)  # a misspelt option would silently never be refused

    def used_by(self, lstm: LSTM) -> dict[str, Any]:
        """name → JSON value of every lacked option that `lstm` sets away from its default."""
        config, defaults = lstm.config(), LSTMConfig.defaults()
        return {
            name: config[name]
            for name in self.options
            if getattr(lstm.options, name) != defaults[name]
        }

    def check(self, lstm: LSTM) -> None:
        """Raise ValueError naming every lacked option that `lstm` uses."""
        used = self.used_by(lstm)
        if used:
            named = ", ".join(f"{name}={value!r}" for name, value in used.items())
            raise ValueError(
                f"{self.target} cannot represent this LSTM: it has no {named} "
                f"(model: {lstm!r}). Convert a model without these options, or keep the native "
                f"format (.safetensors), which stores every option."
            )


def unsupported(what: str, value: object, supported: object) -> ValueError:
    """The error for an option of a foreign model that numpy-lstm cannot represent exactly."""
    return ValueError(f"{what}: unsupported value {value!r} (supported: {supported})")
