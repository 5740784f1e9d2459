"""`numpy-lstm convert` and numpy_lstm.io.convert: every format in and out, checked by
running the written file in its own library (torch, onnxruntime, Keras); torch files are read
with weights_only=True only; unsupported models and files fail with a reason and write
nothing; and `import numpy_lstm` loads none of the optional libraries."""

from __future__ import annotations

import os
import subprocess
import sys

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import onnxruntime
import pytest
import torch

import numpy_lstm
from numpy_lstm.cli import main
from numpy_lstm.io import convert
from numpy_lstm.io.native import load_model, save_model
from numpy_lstm.nn.models import SequenceModel

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning")
]
I, H = 3, 4


@pytest.fixture
def model(rng: np.random.Generator) -> SequenceModel:
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True, rng=rng)
    return SequenceModel(lstm, numpy_lstm.Linear(2 * H, 2, rng=rng)).eval()


@pytest.fixture
def x(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((3, 5, I)).astype(np.float32)


def convert_ok(capsys, *args: object) -> None:
    assert main(["convert", *map(str, args)]) == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out


def convert_fails(capsys, *args: object) -> str:
    assert main(["convert", *map(str, args)]) == 1
    return capsys.readouterr().err


def test_importing_numpy_lstm_loads_no_optional_library() -> None:
    code = (
        "import sys, numpy_lstm, numpy_lstm.interop, numpy_lstm.nn.models, numpy_lstm.cli, "
        "numpy_lstm.io.native, numpy_lstm.io.convert; "
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'keras', 'h5py') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_torch_state_dict_in_and_out(capsys, tmp_path, model, x) -> None:
    save_model(model, tmp_path / "m.safetensors")
    convert_ok(capsys, tmp_path / "m.safetensors", tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    theirs = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True)
    head = torch.nn.Linear(2 * H, 2)
    theirs.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
    with torch.no_grad():
        y = head(theirs(torch.tensor(x))[0]).numpy()
    np.testing.assert_allclose(model(x)[0], y, atol=1e-5)
    convert_ok(capsys, tmp_path / "m.pt", tmp_path / "back.safetensors", "--batch-first")
    back = load_model(tmp_path / "back.safetensors")
    assert back.config() == model.config()
    np.testing.assert_array_equal(back(x)[0], model(x)[0])


def test_torch_files_are_read_with_weights_only(tmp_path, monkeypatch, model) -> None:
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    convert.save(model, tmp_path / "m.pt")
    convert.load(tmp_path / "m.pt")
    assert calls and all(k.get("weights_only") is True for k in calls)


def test_torch_files_that_are_not_state_dicts_are_refused(capsys, tmp_path) -> None:
    torch.save(torch.nn.LSTM(I, H), tmp_path / "module.pt")  # a pickled module, not weights
    error = convert_fails(capsys, tmp_path / "module.pt", tmp_path / "m.safetensors")
    assert "not a plain state dict — torch.load(weights_only=True) refused it" in error
    torch.save({"epoch": 3, "model": torch.nn.LSTM(I, H).state_dict()}, tmp_path / "ckpt.pt")
    error = convert_fails(capsys, tmp_path / "ckpt.pt", tmp_path / "m.safetensors")
    assert "expected a state dict (name → tensor), got a dict with keys ['epoch', 'model']" in error
    assert not (tmp_path / "m.safetensors").exists()


def test_onnx_out_runs_in_onnxruntime_and_comes_back(capsys, tmp_path, model, x) -> None:
    save_model(model, tmp_path / "m.safetensors")
    convert_ok(capsys, tmp_path / "m.safetensors", tmp_path / "m.onnx", "--with-lengths")
    session = onnxruntime.InferenceSession(tmp_path / "m.onnx", providers=["CPUExecutionProvider"])
    lengths = np.array([5, 2, 4], np.int32)
    y = session.run(None, {"x": x, "lengths": lengths})[0]
    np.testing.assert_allclose(model(x, lengths=lengths)[0], y, atol=1e-5)
    convert_ok(capsys, tmp_path / "m.onnx", tmp_path / "back.safetensors")
    back = load_model(tmp_path / "back.safetensors")
    assert back.config() == model.config()
    np.testing.assert_array_equal(back(x)[0], model(x)[0])


def test_keras_files_in_and_out(capsys, tmp_path, model, x) -> None:
    import keras

    save_model(model, tmp_path / "m.safetensors")
    convert_ok(capsys, tmp_path / "m.safetensors", tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    y = np.asarray(keras.ops.convert_to_numpy(theirs(x)))
    np.testing.assert_allclose(model(x)[0], y, atol=1e-5)
    convert_ok(capsys, tmp_path / "m.keras", tmp_path / "back.safetensors")
    np.testing.assert_allclose(load_model(tmp_path / "back.safetensors")(x)[0], y, atol=1e-5)
    convert_ok(capsys, tmp_path / "m.safetensors", tmp_path / "m.weights.h5")
    error = convert_fails(capsys, tmp_path / "m.weights.h5", tmp_path / "w.safetensors")
    assert "holds no architecture" in error and "--like" in error
    like = tmp_path / "m.safetensors"
    convert_ok(capsys, tmp_path / "m.weights.h5", tmp_path / "w.safetensors", "--like", like)
    np.testing.assert_allclose(load_model(tmp_path / "w.safetensors")(x)[0], y, atol=1e-5)


def test_unsupported_conversions_fail_with_a_reason(capsys, tmp_path, rng) -> None:
    save_model(numpy_lstm.LSTM(I, H, peephole=True, rng=rng), tmp_path / "p.safetensors")
    error = convert_fails(capsys, tmp_path / "p.safetensors", tmp_path / "p.pt")
    assert "torch.nn.LSTM cannot represent this LSTM: it has no peephole=True" in error
    save_model(numpy_lstm.LSTM(I, H, layer_norm=True, rng=rng), tmp_path / "n.safetensors")
    error = convert_fails(capsys, tmp_path / "n.safetensors", tmp_path / "n.onnx")
    assert "ONNX cannot represent this LSTM: it has no layer_norm=True" in error
    error = convert_fails(capsys, tmp_path / "p.safetensors", tmp_path / "p.txt")
    assert "unknown extension" in error
    argv = ["convert", str(tmp_path / "p.safetensors"), str(tmp_path / "p.x"), "--to", "tflite"]
    assert main(argv) == 2  # a usage error
    assert "argument --to: invalid choice: 'tflite'" in capsys.readouterr().err
    error = convert_fails(capsys, tmp_path / "absent.pt", tmp_path / "p.safetensors")
    assert "no such file" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.safetensors", "p.safetensors"]


def test_a_missing_library_names_its_extra(tmp_path, monkeypatch, model) -> None:
    for name in [m for m in sys.modules if m.startswith("numpy_lstm.io.onnx")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'numpy-lstm\[onnx\]'"):
        convert.save(model, tmp_path / "m.onnx")


def test_help_lists_the_formats(capsys) -> None:
    assert main(["convert", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f in out for f in ("safetensors", ".pt", ".keras", ".weights.h5", "onnx"))
