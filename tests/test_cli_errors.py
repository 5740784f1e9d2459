"""The command line's user errors, met the way a user meets them: every bad invocation ends in
one line on stderr that names the argument or the file, with exit status 2 for a usage error and
1 otherwise, and never a traceback. Each row of the table runs the real `numpy-lstm` (its `main`,
in this process) on tiny inputs; a few run the installed entry point in a subprocess."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from numpy_lstm.cli import main
from numpy_lstm.io.native import save_model
from numpy_lstm.nn.layers import Linear
from numpy_lstm.nn.lstm import LSTM

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 20
TINY_LM = ["--hidden-size", "4", "--embedding-dim", "2", "--batch-size", "2", "--bptt", "4"]
TINY_ADDING = ["--T", "6", "--hidden-size", "4", "--batch-size", "2", "--eval-size", "4"]
ONE_STEP = ["--steps", "1", "--eval-every", "1", "--threads", "1", "--no-progress"]
UNWRITABLE = "/sys/numpy-lstm-test"  # a read-only file system: refused even to root


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths for the table's {placeholders}: good files (a char-LM and an adding checkpoint, a
    model, a text) and bad ones (missing, a folder, garbage, empty, truncated, not UTF-8)."""
    root = tmp_path_factory.mktemp("cli-errors")
    corpus = root / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    lm, adding = root / "lm.ckpt", root / "adding.ckpt"
    assert main(["train", "charlm", "--text", str(corpus), *TINY_LM, *ONE_STEP,
                 "--checkpoint", str(lm)]) == 0  # fmt: skip
    assert main(["train", "adding", *TINY_ADDING, *ONE_STEP, "--checkpoint", str(adding)]) == 0
    model = save_model(LSTM(2, 3, rng=0), root / "lstm.safetensors")
    linear = save_model(Linear(2, 3, rng=0), root / "linear.safetensors")
    (root / "garbage.ckpt").write_bytes(b"\x07not a checkpoint at all" * 10)
    (root / "empty.ckpt").write_bytes(b"")
    (root / "truncated.ckpt").write_bytes(lm.read_bytes()[: lm.stat().st_size // 2])
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00\x81 not utf-8")
    (root / "bad.csv").write_text("a,b\n1,x\n2,\n", encoding="utf-8")
    (root / "folder").mkdir()
    os.mkfifo(root / "fifo")
    (root / "afile").write_text("a file, not a folder", encoding="utf-8")
    return {
        "lm": str(lm),
        "adding": str(adding),
        "model": str(model),
        "linear": str(linear),
        "text": str(corpus),
        "missing": str(root / "missing.ckpt"),
        "folder": str(root / "folder"),
        "garbage": str(root / "garbage.ckpt"),
        "empty": str(root / "empty.ckpt"),
        "truncated": str(root / "truncated.ckpt"),
        "binary": str(root / "binary.txt"),
        "badcsv": str(root / "bad.csv"),
        "afile": str(root / "afile"),
        "fifo": str(root / "fifo"),
        "out": str(root / "out"),
        "unwritable": UNWRITABLE,
    }


# (command line with {placeholders}, exit status, what the one line must name)
USAGE_ERRORS = [
    ("train adding --T 1", "--T"),
    ("train adding --T 0", "--T"),
    ("train copy --batch-size 0", "--batch-size"),
    ("train charlm --bptt 0", "--bptt"),
    ("train charlm --dropout 1", "--dropout"),
    ("train forecast --horizon -3", "--horizon"),
    ("train digits --val-fraction 0", "--val-fraction"),
    ("train adding --steps -1", "--steps"),
    ("train adding --lr -1", "--lr"),
    ("train adding --lr nan", "--lr"),
    ("train adding --lr fast", "--lr"),
    ("train adding --weight-decay -0.1", "--weight-decay"),
    ("train adding --clip inf", "--clip"),
    ("train adding --epochs 0", "--epochs"),
    ("train adding --minutes -1", "--minutes"),
    ("train adding --eval-every 0", "--eval-every"),
    ("train adding --log-every 0", "--log-every"),
    ("train adding --patience 0", "--patience"),
    ("train adding --warmup -1", "--warmup"),
    ("train adding --threads 0", "--threads"),
    ("train adding --optimizer Adamm", "--optimizer"),
    ("train adding --no-such-flag", "--no-such-flag"),
    ("train no-such-task", "no-such-task"),
    ("train copy --resume {adding}", "--resume"),
    ("sample {lm} --length -5", "--length"),
    ("sample {lm} --length 0", "--length"),
    ("sample {lm} --temperature 0", "--temperature"),
    ("sample {lm} --top-k 0", "--top-k"),
    ("sample {lm} --seed -1", "--seed"),
    ("sample", "checkpoint"),
    ("explore {lm}", "--text"),
    ("explore {lm} --text the --layer -1", "--layer"),
    ("explore {lm} --text the --max-chars 0", "--max-chars"),
    ("demo --minutes -1", "--minutes"),
    ("demo --minutes nan", "--minutes"),
    ("demo --steps 0", "--steps"),
    ("demo --seed -1", "--seed"),
    ("demo --task nonsense", "--task"),
    ("bench --cases zzz", "--cases"),
    ("bench --threads 0", "--threads"),
    ("bench --repeats 0", "--repeats"),
    ("bench --min-sample -1", "--min-sample"),
    ("bench --min-sample nan", "--min-sample"),
    ("convert {model} {out}.x --to tflite", "--to"),
    ("convert {model}", "dst"),
]

FILE_ERRORS = [
    ("sample {missing}", "{missing}"),
    ("sample {folder}", "{folder}"),
    ("sample {garbage}", "{garbage}"),
    ("sample {empty}", "{empty}"),
    ("sample {truncated}", "{truncated}"),
    ("sample {adding}", "{adding}"),
    ("sample {lm} --prime €", "prime"),
    ("explore {missing} --text the", "{missing}"),
    ("explore {garbage} --text the", "{garbage}"),
    ("explore {lm} --text-file {missing}", "{missing}"),
    ("explore {lm} --text-file {folder}", "{folder}"),
    ("explore {lm} --text-file {binary}", "{binary}"),
    ("explore {lm} --text the --layer 3", "layer"),
    ("explore {lm} --text the --out {unwritable}/page.html", "--out"),
    ("explore {lm} --text the --out {folder}", "--out"),
    ("train adding --checkpoint {unwritable}/run.ckpt", "--checkpoint"),
    ("train adding --checkpoint {afile}/run.ckpt", "--checkpoint"),
    ("train adding --checkpoint {folder}", "--checkpoint"),
    ("train adding --checkpoint {fifo}", "--checkpoint"),  # like /dev/null: not to be replaced
    ("demo --out {fifo}", "--out"),
    ("train adding --resume {missing}", "{missing}"),
    ("train adding --resume {garbage}", "{garbage}"),
    ("train adding --resume {truncated}", "{truncated}"),
    ("train charlm --text {missing}", "{missing}"),
    ("train charlm --text {folder}", "{folder}"),
    ("train charlm --text {binary}", "{binary}"),
    ("train forecast --csv {missing}", "{missing}"),
    ("train forecast --csv {binary}", "{binary}"),
    ("train forecast --csv {badcsv}", "{badcsv}"),
    ("convert {missing} {out}.pt", "{missing}"),
    ("convert {garbage} {out}.pt --from safetensors", "{garbage}"),
    ("convert {folder} {out}.pt --from safetensors", "{folder}"),
    ("convert {model} {unwritable}/model.onnx", "{unwritable}/model.onnx"),
    ("convert {model} {out}.txt", "{out}.txt"),
    ("convert {linear} {out}.onnx", "{out}.onnx"),
    ("demo --out {unwritable}/report", "{unwritable}/report"),
    ("demo --out {afile}", "{afile}"),
    ("bench --quick --json {unwritable}/bench.json", "--json"),
    ("bench --quick --markdown {folder}", "--markdown"),
]


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


LOG_LINES = ("baseline: ", "step ")  # what training writes to stderr before it fails


def check_one_line(err: str, name: str, logged: bool = False) -> str:
    """The stderr of a failed command: one line, no traceback, naming `name` (after the
    training log's lines if `logged`)."""
    lines = err.splitlines()
    if logged:
        lines = [line for line in lines if not line.startswith(LOG_LINES)]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("numpy-lstm"), err
    assert " error: " in lines[0] and name in lines[0], (name, err)
    return lines[0]


@pytest.mark.parametrize(("command", "name"), USAGE_ERRORS)
def test_a_usage_error_is_one_line_naming_the_argument_with_status_2(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], command: str, name: str
) -> None:
    code, out, err = run_cli(capsys, command.format(**files).split(" "))
    assert code == 2, err
    assert out == ""
    check_one_line(err, name.format(**files))


@pytest.mark.parametrize(("command", "name"), FILE_ERRORS)
def test_a_file_or_input_error_is_one_line_naming_it_with_status_1(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], command: str, name: str
) -> None:
    started = time.perf_counter()
    code, _, err = run_cli(capsys, [*command.format(**files).split(" "), *tiny_if_adding(command)])
    assert code == 1, err
    line = check_one_line(err, name.format(**files))
    assert ".tmp-" not in line and ".probe-" not in line  # our temporary files stay ours
    assert time.perf_counter() - started < 30  # refused up front, not after a demo's training


def tiny_if_adding(command: str) -> list[str]:
    """A train adding row runs a tiny task, so that a late error would not cost minutes."""
    return TINY_ADDING + ONE_STEP if command.startswith("train adding") else []


def test_an_unwritable_checkpoint_is_refused_before_training(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from numpy_lstm.train.trainer import Trainer

    def no_training(*_: object, **__: object) -> None:
        raise AssertionError("training started before the checkpoint path was checked")

    monkeypatch.setattr(Trainer, "fit", no_training)
    monkeypatch.setattr(Trainer, "__init__", no_training)
    code, _, err = run_cli(capsys, ["train", "adding", "--checkpoint", f"{UNWRITABLE}/run.ckpt"])
    assert code == 1
    check_one_line(err, f"--checkpoint: cannot write {UNWRITABLE}/run.ckpt")


def test_a_full_disk_names_the_checkpoint_not_its_temporary_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the checkpoint is written: fsync is where a full disk shows."""
    checkpoint = tmp_path / "run.ckpt"

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    argv = ["train", "adding", *TINY_ADDING, *ONE_STEP, "--checkpoint", str(checkpoint)]
    code, _, err = run_cli(capsys, argv)
    assert code == 1
    line = check_one_line(err, str(checkpoint), logged=True)
    assert "No space left on device" in line and ".tmp-" not in line
    assert os.listdir(tmp_path) == []  # and no temporary file is left behind


def test_a_diverged_run_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from numpy_lstm.tasks.synthetic import AddingTask

    monkeypatch.setattr(AddingTask, "train_step", lambda self: float("nan"))
    code, _, err = run_cli(capsys, ["train", "adding", *TINY_ADDING, *ONE_STEP])
    assert code == 1
    check_one_line(err, "step 1: the loss is nan", logged=True)


def test_a_missing_optional_library_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = save_model(Linear(2, 3, rng=0), tmp_path / "linear.safetensors")
    for name in [m for m in sys.modules if m == "torch" or m.startswith("numpy_lstm.io.torch")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    code, _, err = run_cli(capsys, ["convert", str(model), str(tmp_path / "linear.pt")])
    assert code == 1
    check_one_line(err, "pip install 'numpy-lstm[torch]'")
    code, _, err = run_cli(capsys, ["bench", "--quick"])
    assert code == 1
    check_one_line(err, "pip install 'numpy-lstm[bench]'")


def test_debug_shows_the_traceback_of_a_user_error(
    capsys: pytest.CaptureFixture[str], files: dict[str, str]
) -> None:
    code, _, err = run_cli(capsys, ["sample", files["garbage"], "--debug"])
    assert code == 1 and "Traceback" in err and files["garbage"] in err.splitlines()[-1]
    code, _, err = run_cli(capsys, ["--debug", "sample", files["missing"]])
    assert code == 1 and "Traceback" in err and files["missing"] in err.splitlines()[-1]


def test_a_bug_keeps_its_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from numpy_lstm.tasks.synthetic import AddingTask

    def bug(self: AddingTask) -> float:
        raise KeyError("a bug, not the user's error")

    monkeypatch.setattr(AddingTask, "train_step", bug)
    with pytest.raises(KeyError, match="a bug"):
        main(["train", "adding", *TINY_ADDING, *ONE_STEP])


@pytest.mark.parametrize(
    ("argv", "status", "name"),
    [
        (["sample", "{missing}"], 1, "{missing}"),
        (["sample", "{lm}", "--length", "-5"], 2, "--length"),
        (["train", "adding", "--T", "1"], 2, "--T"),
    ],
)
def test_the_installed_command_exits_with_one_line(
    files: dict[str, str], argv: list[str], status: int, name: str
) -> None:
    argv = [a.format(**files) for a in argv]
    result = subprocess.run(
        [sys.executable, "-m", "numpy_lstm", *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == status, result.stderr
    check_one_line(result.stderr, name.format(**files))


def test_a_refused_write_leaves_no_probe_behind(files: dict[str, str]) -> None:
    for folder in (Path(files["folder"]), Path(files["out"]).parent):
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
