"""Sequence classification, many-to-one: an LSTM reads each sequence up to its own length and a
Linear layer classifies its final state (cross-entropy).

:class:`SequenceClassificationTask` is the generic machinery for any labelled sequences (N, T, F)
with optional per-sample lengths: shorter sequences are padded at the end and masked, so the
padding never reaches the state that is classified. :class:`DigitsTask` applies it to
scikit-learn's 8×8 handwritten digits read row by row (T = 8 steps of 8 pixels; the offline
stand-in for sequential MNIST), optionally cropped to random lengths to exercise the masks.

scikit-learn is optional (`pip install numpy-lstm[digits]`) and imported only when the digits are
loaded: `import numpy_lstm.tasks` does not need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..core.validation import check_int, resolve_dtype
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.models import SequenceToOne
from ..nn.module import evaluating
from ..train.losses import cross_entropy
from ..train.task import (
    Task,
    TaskOptions,
    float_dtype,
    fraction,
    non_negative_int,
    option,
    positive_int,
    takes_options,
)

DIGITS_HINT = "DigitsTask needs scikit-learn: pip install numpy-lstm[digits]"
MIN_ROWS = 4  # random_crop keeps at least the top half of a digit


def load_digit_rows() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (no download) as sequences: x (1797, 8, 8) — rows top to
    bottom, 8 pixels each, scaled from 0..16 to [0, 1] — and labels (1797,) in 0..9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(DIGITS_HINT) from err
    digits = load_digits()
    return digits.images / 16.0, digits.target.astype(np.int64)


def crop(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """x (N, T, F) with the steps at and after each sample's length (N,) set to zero."""
    keep = np.arange(x.shape[1]) < lengths[:, None]  # (N, T)
    return np.where(keep[..., None], x, 0.0)


def split_indices(
    n: int, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random train/validation split of n samples (the samples are exchangeable, unlike the
    steps of a time series): (train indices, validation indices)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction}")
    n_val = round(n * val_fraction)
    if not 1 <= n_val < n:
        raise ValueError(f"val_fraction: {val_fraction} of {n} samples leaves a split empty")
    order = rng.permutation(n)
    return order[n_val:], order[:n_val]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of samples whose highest logit is their label; logits (N, K), labels (N,)."""
    return float(np.mean(logits.argmax(axis=-1) == labels))


class SequenceClassificationTask(Task):
    """Classify sequences x (N, T, F) into `num_classes` labels (N,) from the LSTM's final state;
    with `lengths` (N,), sample i is x[i, :lengths[i]] (the rest is padding, masked out).

    Subclasses set `name` and either options (see :class:`DigitsTask`) or their own `config()`,
    so that the task can be rebuilt from it. Training batches are drawn with replacement from
    the training split by the task's RNG, so a resume needs only the RNG states. Seeds: one
    `seed` is spawned into the model's, the batches' and the split's generators (children 0, 1,
    2; subclasses may use 3+).
    """

    model: SequenceToOne

    def __init__(
        self,
        x: npt.ArrayLike,
        labels: npt.ArrayLike,
        lengths: npt.ArrayLike | None = None,
        *,
        num_classes: int | None = None,
        hidden_size: int = 64,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        self.dtype = resolve_dtype(dtype)
        x = np.asarray(x, dtype=self.dtype)
        labels = np.asarray(labels)
        if x.ndim != 3 or labels.shape != x.shape[:1] or labels.dtype.kind not in "iu":
            raise ValueError(
                f"x, labels: expected x (N, T, F) and integer labels (N,), got {x.shape} and "
                f"{labels.dtype} {labels.shape}"
            )
        self.num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels: expected classes in [0, {self.num_classes})")
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=np.int64)
            if lengths.shape != labels.shape or lengths.min() < 1 or lengths.max() > x.shape[1]:
                raise ValueError(f"lengths: expected (N,) integers in [1, T = {x.shape[1]}]")
        self.batch_size = check_int("batch_size", batch_size)
        model_seed, data_seed, split_seed = np.random.SeedSequence(seed).spawn(3)
        train, val = split_indices(len(x), val_fraction, np.random.default_rng(split_seed))
        xt = x.transpose(1, 0, 2)  # time-major (T, N, F), as the LSTM reads it

        def part(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            return xt[:, indices], labels[indices], None if lengths is None else lengths[indices]

        self.train_x, self.train_y, self.train_lengths = part(train)
        self.val_x, self.val_y, self.val_lengths = part(val)
        model_rng = np.random.default_rng(model_seed)
        self.model = SequenceToOne(
            LSTM(x.shape[2], hidden_size, dtype=self.dtype, rng=model_rng, forget_bias=1.0),
            Linear(hidden_size, self.num_classes, dtype=self.dtype, rng=model_rng),
        )
        self.data_rng = np.random.default_rng(data_seed)
        self.items_per_step = batch_size
        self.train_items = len(train)  # sequences; batches are drawn with replacement

    def generators(self) -> dict[str, np.random.Generator]:
        return {**super().generators(), "data": self.data_rng}

    def train_step(self) -> float:
        batch = self.data_rng.integers(0, len(self.train_y), size=self.batch_size)
        lengths = None if self.train_lengths is None else self.train_lengths[batch]
        logits = self.model(self.train_x[:, batch], lengths=lengths)
        loss, dlogits = cross_entropy(logits, self.train_y[batch])
        self.model.backward(dlogits)
        return loss

    def evaluate(self) -> dict[str, float]:
        logits = self.model(self.val_x, lengths=self.val_lengths)
        loss, _ = cross_entropy(logits, self.val_y)
        return {"loss": loss, "accuracy": accuracy(logits, self.val_y)}

    def baseline(self) -> dict[str, float]:
        """Predict the training split's class frequencies (loss) and its majority class
        (accuracy), on the validation split."""
        counts = np.bincount(self.train_y, minlength=self.num_classes) + 1  # +1: no log 0
        log_p = np.log(counts / counts.sum())
        return {
            "loss": -float(log_p[self.val_y].mean()),
            "accuracy": float(np.mean(self.val_y == counts.argmax())),
        }

    def predict(self, x: npt.ArrayLike, lengths: npt.ArrayLike | None = None) -> np.ndarray:
        """Logits (N, num_classes) for sequences x (N, T, F) (in evaluation mode)."""
        x = np.asarray(x, dtype=self.dtype).transpose(1, 0, 2)
        with evaluating(self.model):
            logits: np.ndarray = self.model(x, lengths=lengths)
        return logits


@dataclass(frozen=True)
class DigitsOptions(TaskOptions):
    hidden_size: int = option(64, "LSTM hidden units", positive_int)
    batch_size: int = option(32, "images per training step, drawn with replacement", positive_int)
    val_fraction: float = option(0.2, "share of the images held out for validation", fraction)
    random_crop: bool = option(False, "keep only the first 4..8 rows of each image (masked)")
    seed: int = option(0, "seed of the weights, batches, split and crops", non_negative_int)
    dtype: str = option("float32", "float32 or float64", float_dtype)


class DigitsTask(SequenceClassificationTask):
    """Classify scikit-learn's 8×8 digits read row by row (many-to-one; needs scikit-learn).

    `random_crop`: each image keeps only its first L rows, L drawn once per image uniformly from
    4..8 (seed child 3), the rest is padding behind a mask — a fixed variable-length dataset.
    """

    name = "digits"
    item_name = "images"
    Options = DigitsOptions
    options: DigitsOptions

    @takes_options(DigitsOptions)
    def __init__(self, options: DigitsOptions) -> None:
        self.options = options
        x, labels = load_digit_rows()
        lengths = None
        if options.random_crop:
            crop_rng = np.random.default_rng(np.random.SeedSequence(options.seed, spawn_key=(3,)))
            lengths = crop_rng.integers(MIN_ROWS, x.shape[1] + 1, size=len(x))
            x = crop(x, lengths)
        super().__init__(
            x,
            labels,
            lengths,
            num_classes=10,
            hidden_size=options.hidden_size,
            batch_size=options.batch_size,
            val_fraction=options.val_fraction,
            seed=options.seed,
            dtype=options.dtype,
        )
