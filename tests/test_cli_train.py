"""`numpy-lstm train` and `numpy-lstm sample` from the command line, end to end."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from numpy_lstm.cli import main
from numpy_lstm.cli.main import build_parser
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
    training = ["--steps", "6", "--eval-every", "3", "--threads", "1", "--no-progress"]
    argv = ["train", "charlm", "--text", str(corpus), *common, *training]
    code, out, err = run(capsys, *argv, "--checkpoint", checkpoint)
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
    task = ["adding", "--T", "6", "--hidden-size", "4", "--eval-size", "8"]
    training = ["--steps", "2", "--eval-every", "2", "--checkpoint", checkpoint]
    run(capsys, "train", *task, *training)
    code, _, err = run(capsys, "train", "copy", "--resume", checkpoint)
    assert code == 2 and "is a 'adding' run" in err
    code, _, err = run(capsys, "sample", checkpoint)
    assert code == 1 and "not a char-LM checkpoint" in err


def test_bad_task_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "train", "adding", "--T", "many")
    assert code == 2 and "--T: invalid int value: 'many'" in err


def option_entries(help_text: str, section: str) -> dict[str, str]:
    """{flag: its description} for the options of one section of an argparse help text."""
    lines = help_text.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    entries: dict[str, str] = {}
    for line in lines:
        if line.startswith("  -"):  # "  --flag METAVAR   text" (text maybe on the next line)
            invocation, _, text = line.strip().partition("  ")
            flag = invocation.split()[0].rstrip(",")
            entries[flag] = text.strip()
        else:
            entries[flag] = f"{entries[flag]} {line.strip()}".strip()
    return entries


NOT_ON_THE_COMMAND_LINE = {("forecast", "series")}  # an array: given from Python only


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_option_has_help_and_the_options_default(
    capsys: pytest.CaptureFixture[str], task: str
) -> None:
    code, out, _ = run(capsys, "train", task, "--help")
    assert code == 0
    entries = option_entries(out, f"{task} options")
    shown = [
        f
        for f in dataclasses.fields(TASKS[task].Options)
        if (task, f.name) not in NOT_ON_THE_COMMAND_LINE
    ]
    assert set(entries) == {"--" + f.name.replace("_", "-") for f in shown}
    for field in shown:
        text = entries["--" + field.name.replace("_", "-")]
        assert re.sub(r"\(default: [^)]*\)", "", text).strip(), f"{field.name}: no help text"
        if field.default is not None:
            assert f"(default: {field.default})" in text
    # what the command line builds without options is the task's own default configuration
    args = build_parser().parse_args(["train", task])
    parsed = {k.removeprefix("task_"): v for k, v in vars(args).items() if k.startswith("task_")}
    assert parsed == {f.name: f.default for f in shown}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["adding", "--hidden-size", "0"], "--hidden-size: expected a positive integer, got 0"),
        (["copy", "--T", "2.5"], "--T: invalid int value: '2.5'"),
        (["digits", "--seed", "-1"], "--seed: expected an integer ≥ 0, got -1"),
        (["forecast", "--val-fraction", "1"], "--val-fraction: expected a number in (0, 1)"),
        (["forecast", "--window", "many"], "--window: invalid int value: 'many'"),
        (["charlm", "--dtype", "float16"], "--dtype: expected float32 or float64, got float16"),
        (["charlm", "--dropout", "1"], "--dropout: expected a probability in [0, 1), got 1.0"),
        (["charlm", "--bptt", "8", "--stride", "9"], "--stride: expected 1 ≤ stride (k1) ≤ bptt"),
        (["adding", "--steps", "0"], "--steps: expected a positive integer, got 0"),
        (["adding", "--threads", "0"], "--threads: expected a positive integer, got 0"),
    ],
)
def test_a_bad_option_is_a_one_line_usage_error_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "train", *argv)
    assert code == 2 and out == "" and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"numpy-lstm train {argv[0]}: error: ")
    assert message in errors[0]


def test_a_bool_option_has_a_no_form() -> None:
    on = build_parser().parse_args(["train", "forecast"])
    off = build_parser().parse_args(["train", "forecast", "--no-relative", "--column", "a,b"])
    assert on.task_relative is True and off.task_relative is False
    assert off.task_column == "a,b" and on.task_seasonal_period is None


def test_a_checkpoint_from_before_forget_bias_keeps_the_start_it_had(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Char-LM runs stored before `--forget-bias` existed started with a forget bias of 1:
    resuming one accepts `--forget-bias 1` (no change) and refuses another value."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    checkpoint = str(tmp_path / "old.ckpt")
    argv = ["train", "charlm", "--text", str(corpus), "--hidden-size", "8", "--embedding-dim", "4",
            "--batch-size", "4", "--bptt", "8", "--steps", "2", "--eval-every", "2",
            "--no-progress", "--forget-bias", "1"]  # fmt: skip
    assert run(capsys, *argv, "--checkpoint", checkpoint)[0] == 0
    with safe_open(checkpoint, "numpy") as f:
        header = f.metadata()
    meta = json.loads(header["checkpoint"])
    del meta["task"]["config"]["forget_bias"]  # as an older version wrote it
    header = {k: v for k, v in header.items() if k != "content_sha256"}  # older files lack it
    save_file(load_file(checkpoint), checkpoint, header | {"checkpoint": json.dumps(meta)})
    resume = ["train", "charlm", "--resume", checkpoint, "--steps", "3", "--no-progress"]
    code, _, err = run(capsys, *resume, "--forget-bias", "1")
    assert code == 0, err
    code, _, err = run(capsys, *resume, "--forget-bias", "0")
    assert code == 2 and "--forget-bias: the checkpoint's run has 1.0, got 0.0" in err
