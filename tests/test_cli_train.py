"""`numpy-lstm train` and `numpy-lstm sample` from the command line, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from numpy_lstm.cli import main
from numpy_lstm.tasks import TASKS

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 60


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_has_help(capsys: pytest.CaptureFixture[str], task: str) -> None:
    code, out, _ = run(capsys, "train", task, "--help")
    assert code == 0 and "--steps" in out and "--resume" in out and "--threads" in out


def test_train_checkpoint_resume_and_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    checkpoint = str(tmp_path / "lm.ckpt")
    common = ["--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "4", "--bptt", "16"]
    code, out, err = run(
        capsys, "train", "charlm", "--text", str(corpus), *common, "--steps", "6",
        "--eval-every", "3", "--checkpoint", checkpoint, "--threads", "1", "--no-progress",
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out.splitlines()[0])
    assert summary["step"] == 6 and set(summary["baseline"]) == {"loss", "bpc"}
    assert "step      3  eval  loss" in err
    code, out, _ = run(capsys, "train", "charlm", "--resume", checkpoint, "--steps", "9")
    assert code == 0 and json.loads(out.splitlines()[0])["step"] == 9
    samples = [
        run(capsys, "sample", checkpoint, "--prime", "the ", "--length", "30")[1] for _ in "ab"
    ]
    assert samples[0] == samples[1] and samples[0].startswith("the ") and len(samples[0]) > 30
    corpus.unlink()  # sampling needs only the checkpoint
    code, out, _ = run(capsys, "sample", checkpoint, "--seed", "5", "--length", "10")
    assert code == 0


def test_resume_refuses_another_tasks_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = str(tmp_path / "adding.ckpt")
    run(capsys, "train", "adding", "--T", "6", "--hidden-size", "4", "--eval-size", "8",
        "--steps", "2", "--eval-every", "2", "--checkpoint", checkpoint)  # fmt: skip
    with pytest.raises(SystemExit, match="is a 'adding' run"):
        main(["train", "copy", "--resume", checkpoint])
    with pytest.raises(ValueError, match="not a char-LM checkpoint"):
        main(["sample", checkpoint])


def test_bad_task_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "adding", "--T", "many")
    assert code == 2 and "--T: invalid int value: 'many'" in err
