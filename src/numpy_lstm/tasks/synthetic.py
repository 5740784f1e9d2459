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
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..core.validation import check_int
from ..inspect.trace import Trace
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.models import SequenceModel, SequenceToOne
from ..nn.module import Module
from ..nn.rnn import RNN
from ..train.losses import cross_entropy, mse_loss
from ..train.task import (
    Task,
    TaskOptions,
    float_dtype,
    non_negative_int,
    option,
    positive_int,
    takes_options,
)


def adding_batch(
    rng: np.random.Generator, batch_size: int, seq_len: int, dtype: DTypeLike = np.float32
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
    rng: np.random.Generator, batch_size: int, delay: int, dtype: DTypeLike = np.float32
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


CELLS = ("lstm", "rnn")


def cell_kind(name: str, value: Any) -> str:
    """The recurrent layer of a model: "lstm" or "rnn" (the plain tanh RNN)."""
    if value not in CELLS:
        raise ValueError(f"{name}: expected one of {CELLS}, got {value!r}")
    return str(value)


def two_or_more(name: str, value: Any) -> int:
    """An adding sequence has two halves with a mark in each: T ≥ 2."""
    return check_int(name, value, minimum=2)


@dataclass(frozen=True)
class AddingOptions(TaskOptions):
    T: int = option(200, "steps per sequence (one mark in each half), at least 2", two_or_more)
    hidden_size: int = option(64, "hidden units of the recurrent layer", positive_int)
    batch_size: int = option(64, "sequences per training step, drawn fresh", positive_int)
    eval_size: int = option(1000, "held-out sequences for evaluation", positive_int)
    seed: int = option(0, "seed of the weights, the data and the held-out set", non_negative_int)
    dtype: str = option("float32", "float32 or float64", float_dtype)
    cell: str = option("lstm", "recurrent layer: lstm, or rnn (a plain tanh RNN)", cell_kind)


@dataclass(frozen=True)
class CopyOptions(TaskOptions):
    T: int = option(100, "the delay: blank steps between symbols and delimiter", positive_int)
    hidden_size: int = option(128, "LSTM hidden units", positive_int)
    batch_size: int = option(64, "sequences per training step, drawn fresh", positive_int)
    eval_size: int = option(500, "held-out sequences for evaluation", positive_int)
    seed: int = option(0, "seed of the weights, the data and the held-out set", non_negative_int)
    dtype: str = option("float32", "float32 or float64", float_dtype)


class GeneratedTask(Task):
    """A task whose training batches are drawn fresh from a generator at every step, evaluated
    on a fixed held-out set (eval_x, eval_y). Subclasses provide the batches, the model, its
    prediction and the loss. Seeds: one `seed` is spawned into the model's, the training data's
    and the held-out set's generators (children 0, 1, 2)."""

    options: AddingOptions | CopyOptions

    def __init__(self, options: AddingOptions | CopyOptions) -> None:
        self.options = options
        self.T, self.batch_size, self.dtype = options.T, options.batch_size, np.dtype(options.dtype)
        model_seed, data_seed, eval_seed = np.random.SeedSequence(options.seed).spawn(3)
        self.model = self.build_model(np.random.default_rng(model_seed))
        self.data_rng = np.random.default_rng(data_seed)
        self.eval_x, self.eval_y = self.batch(np.random.default_rng(eval_seed), options.eval_size)
        self.items_per_step = options.batch_size

    @abstractmethod
    def build_model(self, rng: np.random.Generator) -> Module:
        """The task's model, its initial weights drawn from `rng`."""

    @abstractmethod
    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """`size` fresh examples: inputs x (T′, size, I) and their targets."""

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's prediction for the inputs x of a batch."""

    @abstractmethod
    def loss(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss of a prediction and its gradient."""

    def generators(self) -> dict[str, np.random.Generator]:
        return {**super().generators(), "data": self.data_rng}

    def train_step(self) -> float:
        x, y = self.batch(self.data_rng, self.batch_size)
        loss, d_prediction = self.loss(self.predict(x), y)
        self.model.backward(d_prediction)
        return loss


class AddingTask(GeneratedTask):
    """Regress the sum of the two marked values from the final state (MSE) of an LSTM, or with
    `cell="rnn"` of a plain tanh RNN (which fails at long T: the classic contrast)."""

    name = "adding"
    Options = AddingOptions
    options: AddingOptions
    model: SequenceToOne

    @takes_options(AddingOptions)
    def __init__(self, options: AddingOptions) -> None:
        super().__init__(options)

    def build_model(self, rng: np.random.Generator) -> SequenceToOne:
        hidden_size = self.options.hidden_size
        recurrent: LSTM | RNN
        if self.options.cell == "rnn":
            recurrent = RNN(2, hidden_size, dtype=self.dtype, rng=rng)
        else:
            recurrent = LSTM(2, hidden_size, dtype=self.dtype, rng=rng, forget_bias=1.0)
        return SequenceToOne(recurrent, Linear(hidden_size, 1, dtype=self.dtype, rng=rng))

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        return adding_batch(rng, size, self.T, self.dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x (T, B, 2) → the predicted sums (B, 1)."""
        prediction: np.ndarray = self.model(x)
        return prediction

    def loss(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        return mse_loss(prediction, target)

    def evaluate(self) -> dict[str, float]:
        loss, _ = mse_loss(self.predict(self.eval_x), self.eval_y)
        return {"loss": loss, "mse": loss}

    def baseline(self) -> dict[str, float]:
        return {"mse": float(np.mean((self.eval_y - 1.0) ** 2))}


class CopyTask(GeneratedTask):
    """Reproduce ten symbols after a delay of T steps (cross-entropy over every step)."""

    name = "copy"
    Options = CopyOptions
    model: SequenceModel

    @takes_options(CopyOptions)
    def __init__(self, options: CopyOptions) -> None:
        super().__init__(options)

    def build_model(self, rng: np.random.Generator) -> SequenceModel:
        """LSTM over the one-hot inputs → Linear to the 9 output classes at every step."""
        hidden_size = self.options.hidden_size
        return SequenceModel(
            LSTM(COPY_SYMBOLS + 2, hidden_size, dtype=self.dtype, rng=rng, forget_bias=1.0),
            Linear(hidden_size, COPY_SYMBOLS + 1, dtype=self.dtype, rng=rng),
        )

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        return copy_batch(rng, size, self.T, self.dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x (T+20, B, 10) one-hot → logits (T+20, B, 9)."""
        logits, _ = self.model(x)
        return logits

    def loss(self, prediction: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        return cross_entropy(prediction, target)

    def evaluate(self) -> dict[str, float]:
        logits = self.predict(self.eval_x)
        loss, _ = cross_entropy(logits, self.eval_y)
        copied = logits[-COPY_LENGTH:].argmax(-1) == self.eval_y[-COPY_LENGTH:]
        return {"loss": loss, "symbol_accuracy": float(copied.mean())}

    def baseline(self) -> dict[str, float]:
        return {"loss": COPY_LENGTH * math.log(COPY_SYMBOLS) / (self.T + 2 * COPY_LENGTH)}


def adding_gate_evidence(
    trace: Trace, x: np.ndarray, y: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """What each unit's gates do on the adding problem, from a trace of inputs x (T, B, 2) (and
    their targets y (B, 1)).

    Per unit (H,): `filter_marked` and `filter_unmarked`, the mean Filter (i) at the two marked
    steps and at all other steps, and `filter_ratio`, the first over the second;
    `eraser_between`, the mean forget gate f (kept) strictly between the two marks;
    `writer_value_corr`, the correlation of the Writer (g) with the input value at the marked steps;
    `presenter_last`, the mean Presenter (o) at the last step; with y, `memory_target_corr`, the
    correlation of the final memory c_T with the target. A unit that stores the marked values
    opens its Filter only at the marks (ratio ≫ 1) and keeps its memory in between (f near
    1). `units` lists those with ratio ≥ 10 and f ≥ 0.95.
    """
    marked = x[..., 1] > 0.5  # (T, B)
    steps = np.arange(x.shape[0])[:, None]
    first = marked.argmax(axis=0)
    last = x.shape[0] - 1 - marked[::-1].argmax(axis=0)
    between = (steps > first) & (steps < last)
    i, f, g, o = (trace.gate(name) for name in "ifgo")  # (T, B, H) each
    filter_marked, filter_unmarked = i[marked].mean(axis=0), i[~marked].mean(axis=0)
    ratio = filter_marked / np.maximum(filter_unmarked, 1e-12)
    eraser = f[between].mean(axis=0)
    evidence = {
        "filter_marked": filter_marked,
        "filter_unmarked": filter_unmarked,
        "filter_ratio": ratio,
        "eraser_between": eraser,
        "writer_value_corr": _correlations(g[marked], x[..., 0][marked]),
        "presenter_last": o[-1].mean(axis=0),
        "units": np.flatnonzero((ratio >= 10) & (eraser >= 0.95)),
    }
    if y is not None:
        evidence["memory_target_corr"] = _correlations(trace.layer().c[-1], y[:, 0])
    return evidence


def _correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of a (N, H) with b (N,) → (H,); 0 where either is
    constant (instead of NaN)."""
    a, b = a - a.mean(axis=0), b - b.mean()
    norm = np.sqrt((a * a).sum(axis=0) * (b * b).sum())
    return np.divide((a * b[:, None]).sum(axis=0), norm, out=np.zeros(a.shape[1]), where=norm > 0)
