"""The trainer: bit-exact resume, truncated BPTT, non-finite detection with the last good
checkpoint intact, early stopping, time budget, validated checkpoints, logging."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import assert_resume_is_bit_exact
from numpy_lstm.io.native import load_tensors, save_tensors
from numpy_lstm.tasks import AddingTask, CharLMTask, CopyTask, Task, build_task
from numpy_lstm.tasks.charlm import Vocabulary, sample
from numpy_lstm.train import NonFiniteError, Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam, AdamW

TEXT = (
    "It was the best of times, it was the worst of times — ça va, naïve café.\n"
    "def f(x):\n    return [x * 2 for x in range(10)]\n"
) * 40


@pytest.fixture
def text_file(tmp_path: Path) -> str:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def charlm(text_file: str, dtype: str, **kwargs: Any) -> CharLMTask:
    options = dict(embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.2, batch_size=4)
    return CharLMTask(text_file, bptt=12, dtype=dtype, **(options | kwargs))


def quiet(steps: int, **kwargs: Any) -> TrainerConfig:
    return TrainerConfig(steps=steps, eval_every=5, log_every=5, progress=False, **kwargs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["charlm", "charlm k1<k2", "adding"])
def test_resume_is_bit_exact(tmp_path: Path, text_file: str, dtype: str, kind: str) -> None:
    """N steps == k steps + save + load (a fresh process would do the same) + N − k steps."""

    def build() -> Trainer:
        if kind == "adding":
            task: Task = AddingTask(T=12, hidden_size=8, batch_size=6, eval_size=20, dtype=dtype)
        else:
            task = charlm(text_file, dtype, stride=5 if "k1<k2" in kind else None)
        schedule = {"name": "cosine", "total_steps": 12, "warmup_steps": 3}
        return Trainer(task, AdamW(task.model, lr=1e-2), schedule, quiet(12), out=io.StringIO())

    assert_resume_is_bit_exact(build, 7, tmp_path / "run.ckpt")


def test_truncated_bptt_carries_the_state_across_windows(text_file: str) -> None:
    """Two consecutive training windows see the same logits as one forward over both."""
    task = charlm(text_file, "float64", dropout=0.0)
    streams, k = task.train_streams, task.bptt
    task.train_step()
    second_window_logits, _ = task.model(streams[k : 2 * k], task.carried.value)
    whole, _ = task.model(streams[: 2 * k])
    np.testing.assert_allclose(second_window_logits, whole[k:], atol=1e-12)


def test_truncated_bptt_with_k1_below_k2_counts_only_new_targets(text_file: str) -> None:
    task = charlm(text_file, "float64", dropout=0.0, stride=4)
    task.train_step()
    # The carried state is the state after k1 = 4 steps of the 12-step window.
    _, (h, c) = task.model(task.train_streams[:4])
    np.testing.assert_allclose(task.carried.value[0], h, atol=1e-12)
    np.testing.assert_allclose(task.carried.value[1], c, atol=1e-12)
    assert task.position == 4 and task.items_per_step == 4 * 4


class Scripted(Task):
    """A stand-in task whose evaluation losses and training losses follow a script."""

    name = "scripted"

    def __init__(self, evals: list[float], losses: list[float] | None = None) -> None:
        self.model = AddingTask(T=4, hidden_size=2, batch_size=2, eval_size=2).model
        self.evals, self.losses = list(evals), list(losses or [])
        self.inner = AddingTask(T=4, hidden_size=2, batch_size=2, eval_size=2)
        self.inner.model = self.model

    def train_step(self) -> float:
        loss = self.inner.train_step()
        return self.losses.pop(0) if self.losses else loss

    def evaluate(self) -> dict[str, float]:
        return {"loss": self.evals.pop(0)}

    def config(self) -> dict[str, Any]:
        return {}


def test_early_stopping_after_patience_evaluations_without_improvement() -> None:
    task = Scripted(evals=[1.0, 0.5, 0.6, 0.7, 0.4])
    config = TrainerConfig(steps=100, eval_every=2, progress=False, patience=2)
    result = Trainer(task, Adam(task.model), config=config, out=io.StringIO()).fit()
    assert result["stopped"] == "early stopping"
    assert result["step"] == 8 and result["best_loss"] == 0.5


def test_a_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "good.ckpt"
    task = Scripted(evals=[1.0], losses=[0.3, 0.2, 0.1, float("nan")])
    config = TrainerConfig(steps=10, eval_every=2, progress=False, checkpoint=str(checkpoint))
    trainer = Trainer(task, Adam(task.model), config=config, out=io.StringIO())
    trainer.train_step()
    trainer.train_step()
    trainer.evaluate()  # writes the checkpoint at step 2
    good = checkpoint.read_bytes()
    trainer.train_step()
    weights = task.model.state_dict()
    with pytest.raises(NonFiniteError, match=r"step 4: the loss is nan; weights left unchanged"):
        trainer.train_step()
    for name, value in weights.items():
        np.testing.assert_array_equal(task.model.state_dict()[name], value, err_msg=name)
    assert checkpoint.read_bytes() == good
    assert load_tensors(checkpoint)[1]["format"] == "numpy-lstm-checkpoint"


def test_a_non_finite_gradient_names_the_parameter() -> None:
    task = Scripted(evals=[1.0])
    original = task.inner.train_step

    def poisoned() -> float:
        loss = original()
        task.model.grads["head.bias"][0] = np.inf
        return loss

    task.inner.train_step = poisoned
    trainer = Trainer(task, Adam(task.model), config=quiet(3), out=io.StringIO())
    weights = task.model.state_dict()
    with pytest.raises(NonFiniteError, match=r"step 1: the gradient of head.bias is not finite"):
        trainer.train_step()
    for name, value in weights.items():
        np.testing.assert_array_equal(task.model.state_dict()[name], value)


def test_time_budget_stops_the_run() -> None:
    task = AddingTask(T=8, hidden_size=4, batch_size=4, eval_size=8)
    config = TrainerConfig(steps=10**6, eval_every=10**5, progress=False, minutes=0.002)
    result = Trainer(task, Adam(task.model), config=config, out=io.StringIO()).fit()
    assert result["stopped"] == "time budget" and 0 < result["step"] < 10**6


def test_plain_log_lines_when_not_a_terminal() -> None:
    task = AddingTask(T=8, hidden_size=4, batch_size=4, eval_size=8)
    out = io.StringIO()
    Trainer(
        task, Adam(task.model), config=TrainerConfig(steps=4, log_every=2, eval_every=4), out=out
    ).fit()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("step      2  loss ") and lines[0].endswith("sequences/s")
    assert lines[-1].startswith("step      4  eval  loss ")


def test_checkpoints_are_validated(tmp_path: Path, text_file: str) -> None:
    task = charlm(text_file, "float32")
    trainer = Trainer(task, Adam(task.model), config=quiet(2), out=io.StringIO())
    path = tmp_path / "run.ckpt"
    trainer.save(path)
    tensors, header = load_tensors(path)

    def rewritten(**changes: Any) -> Path:
        target = tmp_path / f"bad{len(list(tmp_path.iterdir()))}.ckpt"
        save_tensors(target, changes.pop("tensors", tensors), {**header, **changes})
        return target

    meta = json.loads(header["checkpoint"])
    cases = [
        (rewritten(format="numpy-lstm"), r"format: expected 'numpy-lstm-checkpoint'"),
        (
            rewritten(format_version="9"),
            r"format_version: expected '1' \(this numpy-lstm reads only that\)",
        ),
        (rewritten(checkpoint="{not json"), r"not valid JSON"),
        (rewritten(checkpoint=json.dumps({"step": 1})), r"checkpoint metadata needs"),
        (
            rewritten(checkpoint=json.dumps(meta | {"task": meta["task"] | {"name": "gpt"}})),
            r"task: expected one of",
        ),
        (
            rewritten(tensors={k: v for k, v in tensors.items() if k != "model.head.bias"}),
            r"missing keys \['head.bias'\]",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            Trainer.resume(bad)
    (tmp_path / "pickle.ckpt").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        Trainer.resume(tmp_path / "pickle.ckpt")


def test_sampling_is_reproducible_and_greedy_with_top_1(text_file: str) -> None:
    task = charlm(text_file, "float64", dropout=0.0)
    a = task.sample("It was", 40, temperature=0.9, top_k=5, seed=3)
    assert a == task.sample("It was", 40, temperature=0.9, top_k=5, seed=3)
    assert a != task.sample("It was", 40, temperature=0.9, top_k=5, seed=4)
    greedy = sample(task.model, task.vocab, "It was", 20, top_k=1, seed=None)
    ids = list(task.vocab.encode("It was"))
    for _ in range(20):  # argmax decoding, written out with a full forward each time
        logits, _ = task.model(np.array(ids)[:, None])
        ids.append(int(logits[-1, 0].argmax()))
    assert greedy == task.vocab.decode(ids[6:])


def test_sampling_errors(text_file: str) -> None:
    task = charlm(text_file, "float32")
    with pytest.raises(ValueError, match="temperature: expected a positive number"):
        task.sample("a", 5, temperature=0)
    with pytest.raises(ValueError, match=r"top_k: expected 1 ≤ top_k ≤"):
        task.sample("a", 5, top_k=0)
    with pytest.raises(ValueError, match=r"characters not in the vocabulary: \['€'\]"):
        task.sample("€", 5)


def test_vocabulary_round_trips_utf8() -> None:
    vocab = Vocabulary.from_text(TEXT)
    assert "ç" in vocab.chars and vocab.decode(vocab.encode(TEXT)) == TEXT


def test_baselines_match_the_published_formulas() -> None:
    assert CopyTask(T=30, hidden_size=4, eval_size=4).baseline()["loss"] == pytest.approx(
        10 * math.log(8) / 50
    )
    adding = AddingTask(T=50, hidden_size=4, eval_size=4000)
    assert adding.baseline()["mse"] == pytest.approx(1 / 6, abs=0.01)


def test_epochs_become_steps_and_are_reported(text_file: str) -> None:
    task = charlm(text_file, "float32")
    per_epoch = -(-task.train_streams.size // (4 * 12))  # characters / (streams · stride)
    assert task.steps_per_epoch == per_epoch
    config = TrainerConfig(epochs=2, eval_every=per_epoch, progress=False)
    trainer = Trainer(task, Adam(task.model), config=config, out=io.StringIO())
    assert trainer.config.steps == 2 * per_epoch
    trainer.fit()
    assert [h["epoch"] for h in trainer.history] == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"epochs: the 'adding' task draws fresh data"):
        adding = AddingTask(T=4, hidden_size=2, eval_size=2)
        Trainer(adding, Adam(adding.model), config=TrainerConfig(epochs=1))
    with pytest.raises(ValueError, match=r"epochs: expected a positive number"):
        TrainerConfig(epochs=0)


# config() of each task as checkpoints stored it before the options became dataclasses
STORED_CONFIGS = {
    "adding": {"T": 6, "hidden_size": 4, "batch_size": 4, "eval_size": 8, "seed": 0,
               "dtype": "float32"},
    "copy": {"T": 5, "hidden_size": 4, "batch_size": 4, "eval_size": 8, "seed": 0,
             "dtype": "float64"},
    "charlm": {"text": None, "embedding_dim": 4, "hidden_size": 8, "num_layers": 1,
               "dropout": 0.0, "batch_size": 4, "bptt": 8, "stride": 4, "val_fraction": 0.1,
               "seed": 0, "dtype": "float32"},
    "forecast": {"csv": None, "column": "passengers", "series": None, "window": 6,
                 "horizon": 1, "hidden_size": 4, "batch_size": 32, "val_fraction": 0.2,
                 "seasonal_period": None, "relative": False, "seed": 0, "dtype": "float32"},
    "digits": {"hidden_size": 4, "batch_size": 32, "val_fraction": 0.2, "random_crop": True,
               "seed": 2, "dtype": "float32"},
}  # fmt: skip


# options added since, which such a config leaves at their defaults (the model it described)
ADDED_OPTIONS = {"adding": {"cell": "lstm"}, "charlm": {"forget_bias": 1.0}}


@pytest.mark.parametrize("name", sorted(STORED_CONFIGS))
def test_stored_configs_still_rebuild_their_task(name: str) -> None:
    task = build_task(name, STORED_CONFIGS[name])
    assert task.name == name
    assert task.config() == STORED_CONFIGS[name] | ADDED_OPTIONS.get(name, {})
    again = type(task)(**task.config())  # the same task, the same fresh weights
    for key, value in task.model.state_dict().items():
        np.testing.assert_array_equal(again.model.state_dict()[key], value, err_msg=key)
    with pytest.raises(ValueError, match=f"config of task '{name}' rejected: .*'width'"):
        build_task(name, STORED_CONFIGS[name] | {"width": 3})


def test_charlm_starts_like_torch_unless_given_a_forget_bias(text_file: str) -> None:
    """By default every LSTM weight and bias is drawn from U(±1/√H), torch's scheme (a forget
    bias of 1 measured worse: benchmarks/charlm_init.py); `forget_bias` sets that block's sum."""
    H = 16
    plain = charlm(text_file, "float64", num_layers=1).model.lstm
    biased = charlm(text_file, "float64", num_layers=1, forget_bias=1.0).model.lstm
    bound = 1 / np.sqrt(H)
    for name in ("bias_ih_l0", "bias_hh_l0"):
        f_block = getattr(plain, name)[H : 2 * H]
        assert np.abs(f_block).max() <= bound and np.unique(f_block).size == H
    summed = biased.bias_ih_l0 + biased.bias_hh_l0
    np.testing.assert_array_equal(summed[H : 2 * H], 1.0)
    np.testing.assert_array_equal(biased.weight_hh_l0, plain.weight_hh_l0)  # the same draws
    with pytest.raises(ValueError, match="forget_bias: expected a number"):
        charlm(text_file, "float64", forget_bias=float("inf"))
