"""Resuming a run: the schedule follows the resumed run's length, options that would change the
run are refused by name, changed data is refused, every checkpoint field is validated, and a
checkpoint cannot make the loader read devices or allocate beyond its bytes."""

from __future__ import annotations

import io
import json
import math
import re
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from numpy_lstm.cli import main
from numpy_lstm.io.errors import FileFormatError
from numpy_lstm.io.native import load_tensors, save_tensors
from numpy_lstm.tasks import CharLMTask
from numpy_lstm.train import Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam
from numpy_lstm.train.schedules import cosine
from numpy_lstm.train.task import DataChangedError

TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\n" * 30


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def build(corpus: Path, steps: int, total: int | None = None) -> Trainer:
    """A small char-LM run of `steps` steps with the cosine horizon `numpy-lstm train` gives it
    (the run's length) unless `total` says otherwise."""
    task = CharLMTask(str(corpus), embedding_dim=4, hidden_size=8, batch_size=4, bptt=8)
    schedule = {"name": "cosine", "total_steps": total or steps, "warmup_steps": 0}
    config = TrainerConfig(steps=steps, eval_every=100, log_every=100, progress=False)
    return Trainer(task, Adam(task.model, lr=1e-2), schedule, config, out=io.StringIO())


def learning_rates(trainer: Trainer) -> list[float]:
    """The learning rate of each remaining step, as the steps are taken."""
    rates = []
    while trainer.step < trainer.config.steps:
        rates.append(trainer.optimizer.lr)
        trainer.train_step()
    return rates


# -- item 4: the schedule's horizon follows the run ----------------------------------------------
def test_a_longer_resumed_run_follows_the_straight_runs_schedule(tmp_path: Path, corpus: Path):
    """6 steps sized for 6, resumed to 12: steps 7–12 get exactly the learning rates of a
    straight 12-step run (before: 0, the end of the 6-step cosine)."""
    straight = learning_rates(build(corpus, 12))
    first = build(corpus, 6)
    first.fit()
    first.save(tmp_path / "run.ckpt")
    config = TrainerConfig(steps=12, eval_every=100, log_every=100, progress=False)
    resumed = Trainer.resume(tmp_path / "run.ckpt", config, out=io.StringIO())
    rates = learning_rates(resumed)
    assert rates == straight[6:]
    assert all(rate > 0 for rate in rates)
    expected = [cosine(12)(t, 1e-2) for t in range(6, 12)]  # the formula, independently
    np.testing.assert_allclose(rates, expected, rtol=1e-15)


def test_a_schedule_sized_otherwise_is_left_alone(tmp_path: Path, corpus: Path) -> None:
    """A horizon that was not the run's length (set by the user) is kept on resume, which is
    what the bit-exact resume test relies on."""
    first = build(corpus, 4, total=10)
    first.fit()
    first.save(tmp_path / "run.ckpt")
    config = TrainerConfig(steps=10, eval_every=100, log_every=100, progress=False)
    resumed = Trainer.resume(tmp_path / "run.ckpt", config, out=io.StringIO())
    assert resumed.schedule_spec is not None and resumed.schedule_spec["total_steps"] == 10
    assert learning_rates(resumed) == learning_rates(build(corpus, 10))[4:]


# -- item 4: the command line honours or refuses each option ------------------------------------
COMMON = ["--hidden-size", "8", "--embedding-dim", "4", "--batch-size", "4", "--bptt", "8"]
QUIET = ["--threads", "1", "--no-progress", "--log-every", "100"]


def train(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["train", "charlm", *argv, *QUIET])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def checkpoint(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "lm.ckpt")
    argv = ["--text", str(corpus), *COMMON, "--steps", "4", "--eval-every", "2"]
    code, _, _ = train(capsys, *argv, "--checkpoint", path)
    assert code == 0
    return path


@pytest.mark.parametrize(
    "option, message",
    [
        (["--hidden-size", "16"], r"--hidden-size: the checkpoint's run has 8, got 16"),
        (["--dtype", "float64"], r"--dtype: the checkpoint's run has 'float32', got 'float64'"),
        (["--text", "other.txt"], r"--text: the checkpoint's run has '.*corpus.txt', got 'oth"),
        (["--optimizer", "SGD"], r"--optimizer: the checkpoint's run has 'Adam', got 'SGD'"),
        (["--lr", "0.1"], r"--lr: the checkpoint's run has 0.003, got 0.1"),
        (["--schedule", "step"], r"--schedule: the checkpoint's run has 'cosine', got 'step'"),
        (["--warmup", "2"], r"--warmup: the checkpoint's run has 0, got 2"),
    ],
)
def test_resume_refuses_options_that_would_change_the_run(
    capsys: pytest.CaptureFixture[str], checkpoint: str, option: list[str], message: str
) -> None:
    code, _, err = train(capsys, "--resume", checkpoint, *option)
    assert code == 2
    assert re.search(message, err) and "cannot change on resume" in err
    assert len(err.strip().splitlines()) == 1


def test_resume_accepts_unchanged_options_and_honours_trainer_options(
    capsys: pytest.CaptureFixture[str], checkpoint: str
) -> None:
    """Task options equal to the checkpoint's pass (also spelt otherwise: f4 = float32);
    --steps and --eval-every take effect; the checkpoint keeps being written."""
    argv = ["--resume", checkpoint, "--hidden-size", "8", "--dtype", "f4", "--lr", "0.003"]
    code, out, err = train(capsys, *argv, "--steps", "9", "--eval-every", "3")
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["step"] == 9
    assert [line.split()[1] for line in err.splitlines() if " eval " in line] == ["6", "9"]
    meta = json.loads(load_tensors(checkpoint)[1]["checkpoint"])
    assert meta["step"] == 9 and meta["schedule"]["spec"]["total_steps"] == 9
    assert meta["trainer"]["config"]["eval_every"] == 3


# -- item 4: changed data is refused --------------------------------------------------------------
def test_a_changed_corpus_is_refused_by_name(
    capsys: pytest.CaptureFixture[str], checkpoint: str, corpus: Path
) -> None:
    corpus.write_text(TEXT.replace("q", "Q"), encoding="utf-8")  # same size, other bytes
    code, _, err = train(capsys, "--resume", checkpoint)
    assert code == 1 and "--text: the training data (text '" in err and "has changed" in err
    corpus.write_text(TEXT + "extra", encoding="utf-8")
    code, _, err = train(capsys, "--resume", checkpoint)
    assert code == 1 and re.search(r"--text: '.*corpus.txt' has changed since the checkpoint", err)


def rewrite(path: str | Path, target: Path, change: Any) -> Path:
    """A copy of checkpoint `path` whose metadata has been edited by `change(meta)`."""
    tensors, header = load_tensors(path)
    meta = json.loads(header["checkpoint"])
    change(meta)
    save_tensors(target, tensors, {**header, "checkpoint": json.dumps(meta)})
    return target


def test_an_older_checkpoint_without_a_data_record_still_refuses_a_new_vocabulary(
    tmp_path: Path, checkpoint: str, corpus: Path
) -> None:
    """Before data hashes, an edited corpus re-mapped the character ids silently."""
    old = rewrite(checkpoint, tmp_path / "old.ckpt", lambda meta: meta["task"].pop("data"))
    Trainer.resume(old, out=io.StringIO())  # the same text: fine
    for edited in (TEXT.replace("q", "Q"), TEXT + "Zebra!"):  # ids re-mapped; more ids
        corpus.write_text(edited, encoding="utf-8")
        with pytest.raises(DataChangedError, match=r"text: the text's characters differ"):
            Trainer.resume(old, out=io.StringIO())


def test_a_checkpoint_cannot_make_the_task_read_a_device(tmp_path: Path, checkpoint: str) -> None:
    def to_dev_zero(meta: dict[str, Any]) -> None:
        meta["task"]["config"]["text"] = "/dev/zero"

    bad = rewrite(checkpoint, tmp_path / "zero.ckpt", to_dev_zero)
    with pytest.raises(ValueError, match=r"text: '/dev/zero' is not a regular file"):
        Trainer.resume(bad, out=io.StringIO())
    with pytest.raises(ValueError, match=r"text: '/dev/zero' is not a regular file"):
        CharLMTask("/dev/zero")


# -- item 4: every field is validated -------------------------------------------------------------
def set_path(*keys: str, value: Any) -> Any:
    def change(meta: dict[str, Any]) -> None:
        for key in keys[:-1]:
            meta = meta[key]
        meta[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (set_path("step", value=-5), r"step: expected a non-negative integer, got -5"),
        (set_path("step", value=2.5), r"step: expected a non-negative integer"),
        (set_path("trainer", "best", value="low"), r"trainer.best: expected a finite number"),
        (set_path("trainer", "bad_evals", value=-1), r"trainer.bad_evals: expected a non-neg"),
        (set_path("trainer", "history", value={}), r"trainer.history: expected a list"),
        (set_path("trainer", "history", value=[{"loss": 1}]), r"history\[0\]: expected an obj"),
        (set_path("trainer", "config", value={"stepz": 3}), r"unexpected keyword .*stepz"),
        (set_path("trainer", "config", "steps", value=0), r"steps: expected"),
        (set_path("optimizer", "class", value="Adagrad"), r"optimizer class must be one of"),
        (set_path("optimizer", "scalars", "lr", value="x"), r"optimizer.scalars.lr: expected a"),
        (set_path("schedule", "state", value=None), r"schedule: spec and state must both"),
        (set_path("schedule", "state", "last_step", value=-1), r"last_step: expected a non-neg"),
        (set_path("task", "name", value=7), r"task.name: expected a string"),
        (set_path("task", "config", value=[1]), r"task.config: expected a JSON object"),
        (set_path("task", "state", "position", value=-3), r"position: expected a non-negative"),
        (set_path("task", "state", "rngs", value={}), r"rngs: expected generators"),
        (set_path("task", "data", "sha256", value="abc"), r"task.data.sha256: expected 64 hex"),
        (set_path("task", "config", "hidden_size", value=14000), r"hidden_size: 14000 is more"),
        (set_path("task", "config", "hidden_size", value=20), r"hidden_size: 1 layer\(s\) of 20"),
        (set_path("task", "config", "embedding_dim", value=10**6), r"embedding_dim: 1000000 is"),
        (set_path("task", "config", "hidden_size", value=0), r"hidden_size: expected a positive"),
    ],
)
def test_every_checkpoint_field_is_validated(
    tmp_path: Path, checkpoint: str, change: Any, message: str
) -> None:
    bad = rewrite(checkpoint, tmp_path / "bad.ckpt", change)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=message) as caught:
            Trainer.resume(bad, out=io.StringIO())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.path == str(bad)
    assert peak < 50 * 2**20  # a declared hidden size of 14,000 allocates nothing (was 1.2 GB)


def test_checkpoint_fuzz_raises_only_file_format_errors(tmp_path: Path, checkpoint: str) -> None:
    """Seeded byte flips and truncations: a FileFormatError naming the file, or (a flip the
    format cannot see, in padding) a run identical to the original."""
    data = Path(checkpoint).read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "fuzz.ckpt"
    original = Trainer.resume(checkpoint, out=io.StringIO()).task.model.state_dict()
    cases = [data[: int(n)] for n in rng.integers(0, len(data), 15)]
    for at in rng.integers(0, len(data), 60):
        flipped = bytearray(data)
        flipped[at] ^= 1 << int(rng.integers(8))
        cases.append(bytes(flipped))
    for case in cases:
        bad.write_bytes(case)
        try:
            resumed = Trainer.resume(bad, out=io.StringIO())
        except FileFormatError as err:
            assert err.path == str(bad)
            continue
        for name, value in resumed.task.model.state_dict().items():
            np.testing.assert_array_equal(value, original[name])


def test_resumed_step_and_lr_stay_consistent(tmp_path: Path, checkpoint: str) -> None:
    resumed = Trainer.resume(checkpoint, out=io.StringIO())
    assert resumed.step == 4 and resumed.optimizer.step_count == 4
    assert math.isclose(resumed.optimizer.lr, cosine(4)(4, 3e-3), abs_tol=1e-18)


def test_sampling_validates_the_checkpoint_before_allocating(
    tmp_path: Path, checkpoint: str
) -> None:
    from numpy_lstm.tasks.charlm import load_for_sampling

    model, vocab = load_for_sampling(checkpoint)
    assert len(vocab) == len(set(TEXT)) and model.head.out_features == len(vocab)
    cases = [
        (set_path("task", "config", "hidden_size", value=14000), r"hidden_size: 14000 is more"),
        (set_path("task", "state", "vocabulary", value=["ab"]), r"vocabulary: expected a str"),
        (
            set_path("task", "state", "vocabulary", value="".join(map(chr, range(256, 9000)))),
            r"vocabulary: 8744 characters × embedding_dim 4 is more than",
        ),
    ]
    for change, message in cases:
        bad = rewrite(checkpoint, tmp_path / "bad.ckpt", change)
        with pytest.raises(FileFormatError, match=message):
            load_for_sampling(bad)
