"""What a trainable task is, and the small models the tasks share.

A :class:`Task` owns its model, its data and everything that makes a run reproducible (random
generators, the position in the data, carried state). The trainer only asks it for one training
step at a time, for an evaluation, and for its state to checkpoint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ..layers import Linear, State
from ..lstm import LSTM
from ..module import Module

Arrays = dict[str, np.ndarray]


class Task(ABC):
    """One learning problem: a model, its data and its loss.

    Subclasses set `name`, build `self.model` (a Module), and implement the four methods below.
    `config()` must hold every constructor argument, so `type(task)(**task.config())` rebuilds the
    same task (fresh weights); checkpoints store it.
    """

    name: ClassVar[str]
    item_name: ClassVar[str] = "sequences"  # what the throughput counts
    model: Module
    items_per_step: int = 1
    train_items: int | None = None  # the size of one epoch in items; None: endless generated data

    @property
    def steps_per_epoch(self) -> int | None:
        """Steps that see about as many items as the training data holds (None: no epochs)."""
        if self.train_items is None:
            return None
        return max(1, -(-self.train_items // self.items_per_step))  # ceiling division

    @abstractmethod
    def train_step(self) -> float:
        """Draw the next training batch, run forward and backward (gradients accumulate in
        `self.model.grads`), and return the batch's loss."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Metrics on held-out data (must include "loss"; the trainer minimises it)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""

    def state(self) -> tuple[dict[str, Any], Arrays]:
        """Everything beyond the model's parameters that a bit-exact resume needs:
        JSON-able values (RNG states, data position) and arrays (carried LSTM state)."""
        return {"rngs": {k: g.bit_generator.state for k, g in self.generators().items()}}, {}

    def load_state(self, values: dict[str, Any], arrays: Arrays) -> None:
        rngs = values.get("rngs", {})
        generators = self.generators()
        if set(rngs) != set(generators):
            raise ValueError(f"rngs: expected generators {sorted(generators)}, got {sorted(rngs)}")
        for key, generator in generators.items():
            generator.bit_generator.state = rngs[key]

    def generators(self) -> dict[str, np.random.Generator]:
        """Every random generator the run draws from, by name (data and model)."""
        modules = self.model.named_modules("model")
        return {name: module.rng for name, module in modules if hasattr(module, "rng")}

    def baseline(self) -> dict[str, float]:
        """The trivial baseline's metrics on the evaluation data, for honest comparisons."""
        return {}


class SequenceToOne(Module):
    """LSTM → its final hidden state (each sequence's last valid step; both directions
    concatenated when bidirectional) → Linear. For many-to-one regression and classification.

    `y = model(x, lengths=None, mask=None)`: x (T, B, I) → y (B, out); `model.backward(dy)`.
    """

    def __init__(self, lstm: LSTM, head: Linear) -> None:
        super().__init__()
        width = lstm.num_directions * lstm.output_size
        if head.in_features != width:
            raise ValueError(f"head: expected in_features {width}, got {head.in_features}")
        self.lstm = lstm
        self.head = head

    def forward(self, x: Any, *, lengths: Any = None, mask: Any = None) -> np.ndarray:
        _, (h_n, _) = self.lstm(x, lengths=lengths, mask=mask)
        self._h_n_shape = h_n.shape
        D = self.lstm.num_directions
        last_layer = h_n[-D:]  # (D, B, H_out): forward, then reverse
        return self.head(np.concatenate(list(last_layer), axis=-1))

    def backward(self, dy: Any) -> State:
        d_last = self.head.backward(dy)
        D, H_out = self.lstm.num_directions, self.lstm.output_size
        dh_n = np.zeros(self._h_n_shape, dtype=self.lstm.dtype)
        for d in range(D):
            dh_n[-D + d] = d_last[..., d * H_out : (d + 1) * H_out]
        return self.lstm.backward(None, (dh_n, None))


class CarriedState:
    """The LSTM state carried between consecutive chunks of a stream (truncated BPTT):
    gradients stop at the chunk boundary, values flow on."""

    def __init__(self) -> None:
        self.value: State | None = None

    def arrays(self) -> Arrays:
        return (
            {} if self.value is None else {"carried.h": self.value[0], "carried.c": self.value[1]}
        )

    def load(self, arrays: Arrays) -> None:
        has = "carried.h" in arrays
        self.value = (arrays["carried.h"].copy(), arrays["carried.c"].copy()) if has else None
