"""Many-to-one classification with masks: per-sample lengths match each sample run alone, the
padding never matters, the digits learn, sklearn stays optional, resume is bit-exact."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from conftest import assert_resume_is_bit_exact
from numpy_lstm.tasks import DigitsTask, SequenceClassificationTask, build_task
from numpy_lstm.tasks.classify import crop, load_digit_rows, split_indices
from numpy_lstm.train import Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam, AdamW


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """These models are tiny: one BLAS thread is faster, and immune to a busy machine (threads
    that spin-wait for a busy core made a 2 s run take 30 s)."""
    with threadpool_limits(limits=1):
        yield


class Plain(SequenceClassificationTask):
    """The generic task as a user would subclass it (config() only matters for checkpoints)."""

    name = "plain"

    def config(self) -> dict[str, Any]:
        return {}


def toy(padding: float = 0.0) -> Plain:
    """40 random sequences (T = 6, F = 3) of random lengths 1..6, labelled by their length."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 7, size=40)
    x = rng.normal(size=(40, 6, 3))
    x[np.arange(6) >= lengths[:, None]] = padding
    return Plain(x, lengths, lengths, num_classes=7, hidden_size=5, batch_size=8, dtype="float64")


def test_per_sample_lengths_give_each_sample_alone_cropped() -> None:
    task = toy()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 6, 3))
    lengths = np.array([6, 1, 3, 5, 2, 6, 4, 1, 3])
    batched = task.predict(x, lengths)
    for i, length in enumerate(lengths):  # one sequence, only its valid steps, no mask at all
        alone = task.model(x[i, :length, None, :])
        np.testing.assert_allclose(batched[i], alone[0], rtol=1e-12, atol=1e-14)
    garbage = np.where(np.arange(6)[:, None] < lengths[:, None, None], x, 1e3)
    np.testing.assert_allclose(task.predict(garbage, lengths), batched, rtol=1e-12, atol=1e-14)


def test_the_padding_changes_no_loss_and_no_gradient() -> None:
    zero, odd = toy(padding=0.0), toy(padding=-5.0)
    assert zero.train_step() == odd.train_step()
    for name, grad in zero.model.grads.items():
        np.testing.assert_array_equal(odd.model.grads[name], grad, err_msg=name)
    assert zero.evaluate() == odd.evaluate()


def test_without_lengths_the_final_step_is_classified() -> None:
    task = toy()
    x = np.random.default_rng(2).normal(size=(4, 6, 3))
    np.testing.assert_allclose(task.predict(x), task.predict(x, np.full(4, 6)), rtol=1e-12)


def test_pure_helpers() -> None:
    x = np.ones((2, 3, 1))
    np.testing.assert_array_equal(crop(x, np.array([1, 3]))[..., 0], [[1, 0, 0], [1, 1, 1]])
    train, val = split_indices(10, 0.3, np.random.default_rng(0))
    assert len(val) == 3 and sorted([*train, *val]) == list(range(10))
    with pytest.raises(ValueError, match=r"val_fraction: 0\.01 of 10 samples leaves a split empty"):
        split_indices(10, 0.01, np.random.default_rng(0))


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"expected x \(N, T, F\) and integer labels \(N,\)"):
        Plain(np.zeros((3, 2)), [0, 1, 2])
    with pytest.raises(ValueError, match=r"lengths: expected \(N,\) integers in \[1, T = 2\]"):
        Plain(np.zeros((3, 2, 1)), [0, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=r"labels: expected classes in \[0, 2\)"):
        Plain(np.zeros((3, 2, 1)), [0, 1, 2], num_classes=2)


def test_baseline_is_the_majority_class_and_the_class_frequencies() -> None:
    task = toy()
    values, counts = np.unique(task.train_y, return_counts=True)
    majority = values[np.argmax(counts)]
    assert task.baseline()["accuracy"] == np.mean(task.val_y == majority)
    p = (np.bincount(task.train_y, minlength=7) + 1) / (len(task.train_y) + 7)
    assert task.baseline()["loss"] == pytest.approx(-np.mean(np.log(p[task.val_y])))


# -- scikit-learn stays optional ------------------------------------------------------------------
def test_importing_the_tasks_does_not_import_sklearn() -> None:
    code = "import sys, numpy_lstm.tasks, numpy_lstm.train; print('sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_missing_sklearn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install numpy-lstm\[digits\]"):
        DigitsTask()
    with pytest.raises(ImportError, match=r"pip install numpy-lstm\[digits\]"):
        build_task("digits", {})


# -- the digits -----------------------------------------------------------------------------------
def test_digits_are_read_row_by_row() -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    x, labels = load_digit_rows()
    digits = sklearn_datasets.load_digits()
    assert x.shape == (1797, 8, 8) and x.min() == 0 and x.max() == 1
    np.testing.assert_array_equal(x[5, 2], digits.data[5, 16:24] / 16)  # image 5, row 2
    np.testing.assert_array_equal(labels, digits.target)


def test_random_crop_gives_each_image_its_own_length() -> None:
    pytest.importorskip("sklearn")
    task = DigitsTask(random_crop=True, hidden_size=4)
    lengths = np.concatenate([task.train_lengths, task.val_lengths])
    assert lengths.min() == 4 and lengths.max() == 8 and len(np.unique(lengths)) == 5
    padded = np.arange(8)[:, None] >= task.train_lengths  # (T, N)
    assert not task.train_x[padded].any()
    assert DigitsTask(hidden_size=4).train_lengths is None


def test_digits_learn_well_above_the_baseline() -> None:
    pytest.importorskip("sklearn")
    task = DigitsTask()
    config = TrainerConfig(steps=600, eval_every=600, progress=False)
    Trainer(task, Adam(task.model, lr=1e-2), config=config, out=io.StringIO()).fit()
    metrics = task.evaluate()
    # Measured: accuracy ≈ 0.97 after 600 steps (0.986 after 2000); the majority class ≈ 0.08.
    assert metrics["accuracy"] > 0.9 and task.baseline()["accuracy"] < 0.15
    assert metrics["loss"] < task.baseline()["loss"] / 5


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    """N steps == k steps + save + Trainer.resume + N − k steps, with variable lengths."""
    pytest.importorskip("sklearn")

    def build() -> Trainer:
        task = DigitsTask(hidden_size=6, batch_size=8, random_crop=True, seed=3, dtype="float64")
        config = TrainerConfig(steps=10, eval_every=3, log_every=5, progress=False)
        return Trainer(task, AdamW(task.model, lr=1e-2), None, config, out=io.StringIO())

    task = build().task
    assert json.loads(json.dumps(task.config())) == task.config()
    assert_resume_is_bit_exact(build, 6, tmp_path / "run.ckpt")
