"""The classic synthetic memory benchmarks, for any sequence length T.

- **Adding problem** (Hochreiter & Schmidhuber 1997; modern form): each step carries a value
  U(0, 1) and a marker; exactly two steps are marked (one in each half); the target is the sum
  of the two marked values. Always predicting 1 (the mean) gives MSE ≈ 1/6 ≈ 0.167.
- **Copy task** (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): ten symbols from an
  alphabet of eight, then T − 1 blanks, a delimiter, and ten more blanks; the model must output
  blanks until the delimiter and then the ten symbols. Guessing blanks and then uniformly at
  random gives the baseline cross-entropy 10·ln 8 / (T + 20).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..inspect.trace import Trace
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.models import SequenceToOne
from ..nn.module import Module
from ..train.losses import cross_entropy, mse_loss
from ..train.task import Task


def adding_batch(
    rng: np.random.Generator, batch_size: int, seq_len: int, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """x (T, B, 2) — channel 0 the values U(0, 1), channel 1 the marker (1 at one step in
    [0, T//2) and one in [T//2, T)) — and the target y (B, 1), the sum of the marked values."""
    values = rng.uniform(0.0, 1.0, size=(seq_len, batch_size))
    half = seq_len // 2
    first = rng.integers(0, half, size=batch_size)
    second = rng.integers(half, seq_len, size=batch_size)
    marker = np.zeros((seq_len, batch_size))
    columns = np.arange(batch_size)
    marker[first, columns] = marker[second, columns] = 1.0
    x = np.stack([values, marker], axis=-1).astype(dtype)
    y = (values[first, columns] + values[second, columns])[:, None].astype(dtype)
    return x, y


COPY_SYMBOLS, COPY_LENGTH = 8, 10  # symbols 1..8; 0 is the blank, 9 the delimiter


def copy_batch(
    rng: np.random.Generator, batch_size: int, delay: int, dtype: Any = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """x (T+20, B, 10) one-hot inputs and targets (T+20, B) in 0..8, for a delay T."""
    steps = delay + 2 * COPY_LENGTH
    symbols = rng.integers(1, COPY_SYMBOLS + 1, size=(COPY_LENGTH, batch_size))
    inputs = np.zeros((steps, batch_size), dtype=np.int64)
    inputs[:COPY_LENGTH] = symbols
    inputs[delay + COPY_LENGTH - 1] = COPY_SYMBOLS + 1  # the delimiter: "now repeat"
    targets = np.zeros((steps, batch_size), dtype=np.int64)
    targets[-COPY_LENGTH:] = symbols
    return np.eye(COPY_SYMBOLS + 2, dtype=dtype)[inputs], targets


class GeneratedTask(Task):
    """A task whose training batches are drawn fresh from a generator at every step, evaluated
    on a fixed held-out set. Subclasses provide the batches, the model and the loss."""

    def __init__(
        self, T: int, hidden_size: int, batch_size: int, eval_size: int, seed: int, dtype: str
    ) -> None:
        self.T, self.hidden_size, self.batch_size = T, hidden_size, batch_size
        self.eval_size, self.seed, self.dtype = eval_size, seed, np.dtype(dtype)
        model_seed, data_seed, eval_seed = np.random.SeedSequence(seed).spawn(3)
        self.model = self.build_model(np.random.default_rng(model_seed))
        self.data_rng = np.random.default_rng(data_seed)
        self.eval_x, self.eval_y = self.batch(np.random.default_rng(eval_seed), eval_size)
        self.items_per_step = batch_size

    def build_model(self, rng: np.random.Generator) -> Module:
        raise NotImplementedError

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def loss(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {
            "T": self.T, "hidden_size": self.hidden_size, "batch_size": self.batch_size,
            "eval_size": self.eval_size, "seed": self.seed, "dtype": self.dtype.name,
        }  # fmt: skip

    def generators(self) -> dict[str, np.random.Generator]:
        return {**super().generators(), "data": self.data_rng}

    def train_step(self) -> float:
        x, y = self.batch(self.data_rng, self.batch_size)
        loss, d_prediction = self.loss(self.model(x), y)
        self.model.backward(d_prediction)
        return loss


class AddingTask(GeneratedTask):
    """Regress the sum of the two marked values from the LSTM's final state (MSE)."""

    name = "adding"

    def __init__(
        self, T: int = 200, hidden_size: int = 64, batch_size: int = 64, eval_size: int = 1000,
        seed: int = 0, dtype: str = "float32",
    ) -> None:  # fmt: skip
        super().__init__(T, hidden_size, batch_size, eval_size, seed, dtype)

    def build_model(self, rng: np.random.Generator) -> Module:
        return SequenceToOne(
            LSTM(2, self.hidden_size, dtype=self.dtype, rng=rng, forget_bias=1.0),
            Linear(self.hidden_size, 1, dtype=self.dtype, rng=rng),
        )

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        return adding_batch(rng, size, self.T, self.dtype)

    def loss(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        return mse_loss(prediction, target)

    def evaluate(self) -> dict[str, float]:
        loss, _ = mse_loss(self.model(self.eval_x), self.eval_y)
        return {"loss": loss, "mse": loss}

    def baseline(self) -> dict[str, float]:
        return {"mse": float(np.mean((self.eval_y - 1.0) ** 2))}


class CopyModel(Module):
    """LSTM over the one-hot inputs → Linear to the 9 output classes at every step."""

    def __init__(self, hidden_size: int, rng: np.random.Generator, dtype: np.dtype) -> None:
        super().__init__()
        self.lstm = LSTM(COPY_SYMBOLS + 2, hidden_size, dtype=dtype, rng=rng, forget_bias=1.0)
        self.head = Linear(hidden_size, COPY_SYMBOLS + 1, dtype=dtype, rng=rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, _ = self.lstm(x)
        return self.head(out)

    def backward(self, dlogits: np.ndarray) -> None:
        self.lstm.backward(self.head.backward(dlogits))


class CopyTask(GeneratedTask):
    """Reproduce ten symbols after a delay of T steps (cross-entropy over every step)."""

    name = "copy"

    def __init__(
        self, T: int = 100, hidden_size: int = 128, batch_size: int = 64, eval_size: int = 500,
        seed: int = 0, dtype: str = "float32",
    ) -> None:  # fmt: skip
        super().__init__(T, hidden_size, batch_size, eval_size, seed, dtype)

    def build_model(self, rng: np.random.Generator) -> Module:
        return CopyModel(self.hidden_size, rng, self.dtype)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        return copy_batch(rng, size, self.T, self.dtype)

    def loss(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        return cross_entropy(prediction, target)

    def evaluate(self) -> dict[str, float]:
        logits = self.model(self.eval_x)
        loss, _ = cross_entropy(logits, self.eval_y)
        copied = logits[-COPY_LENGTH:].argmax(-1) == self.eval_y[-COPY_LENGTH:]
        return {"loss": loss, "symbol_accuracy": float(copied.mean())}

    def baseline(self) -> dict[str, float]:
        return {"loss": COPY_LENGTH * math.log(COPY_SYMBOLS) / (self.T + 2 * COPY_LENGTH)}


def adding_gate_evidence(trace: Trace, x: np.ndarray) -> dict[str, np.ndarray]:
    """What each unit's gates do on the adding problem, from a trace of inputs x (T, B, 2).

    Per unit (H,): `filter_ratio`, the mean Filter (i) at the two marked steps over its mean at
    all other steps; `eraser_between`, the mean Eraser (f) strictly between the two marks. A
    unit that stores the marked values opens its Filter only at the marks (ratio ≫ 1) and keeps
    its memory in between (f near 1). `units` lists those with ratio ≥ 10 and f ≥ 0.95.
    """
    marked = x[..., 1] > 0.5  # (T, B)
    steps = np.arange(x.shape[0])[:, None]
    first = marked.argmax(axis=0)
    last = x.shape[0] - 1 - marked[::-1].argmax(axis=0)
    between = (steps > first) & (steps < last)
    i, f = trace.gate("i"), trace.gate("f")  # (T, B, H)
    ratio = i[marked].mean(axis=0) / np.maximum(i[~marked].mean(axis=0), 1e-12)
    eraser = f[between].mean(axis=0)
    units = np.flatnonzero((ratio >= 10) & (eraser >= 0.95))
    return {"filter_ratio": ratio, "eraser_between": eraser, "units": units}
