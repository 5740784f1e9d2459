"""The native format (numpy_lstm.io.native): safetensors files that the reference
`safetensors` package reads and writes, with the architecture in the header; loading validates
every field and refuses tampered or malformed files; writes are atomic."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import numpy_lstm
from numpy_lstm.io.native import atomic_path, load_model, model_metadata, save_model
from numpy_lstm.nn.models import SequenceModel

I, H = 3, 4

MODELS = {
    "plain": lambda rng: numpy_lstm.LSTM(I, H, rng=rng),
    "every option": lambda rng: numpy_lstm.LSTM(
        I,
        H,
        2,
        bidirectional=True,
        batch_first=True,
        proj_size=2,
        peephole=True,
        layer_norm=True,
        clip=3.0,
        activations=("hard_sigmoid", "tanh", "softsign"),
        mask_output="carry",
        zoneout=(0.1, 0.2),
        dtype=np.float64,
        rng=rng,
    ),
    "cell": lambda rng: numpy_lstm.LSTMCell(I, H, bias=False, rng=rng),
    "linear": lambda rng: numpy_lstm.Linear(I, 2, rng=rng),
    "lstm + head": lambda rng: SequenceModel(
        numpy_lstm.LSTM(I, H, bidirectional=True, rng=rng), numpy_lstm.Linear(2 * H, 2, rng=rng)
    ),
    "lstm, no head": lambda rng: SequenceModel(numpy_lstm.LSTM(I, H, rng=rng)),
}


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_is_exact(rng: np.random.Generator, tmp_path, name: str) -> None:
    model = MODELS[name](rng).eval()
    save_model(model, tmp_path / "m.safetensors")
    back = load_model(tmp_path / "m.safetensors").eval()
    assert type(back) is type(model) and back.config() == model.config()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value, err_msg=key)
        assert back.state_dict()[key].dtype == value.dtype
    if isinstance(model, numpy_lstm.LSTMCell):
        x = rng.standard_normal((2, I)).astype(model.dtype)
    elif isinstance(model, numpy_lstm.Linear):
        x = rng.standard_normal((5, I)).astype(model.dtype)
    else:
        x = rng.standard_normal((5, 2, I)).astype(model.dtype)
    np.testing.assert_array_equal(np.asarray(back(x)[0]), np.asarray(model(x)[0]))


def test_the_file_is_plain_safetensors(rng: np.random.Generator, tmp_path) -> None:
    """The reference reader sees our tensors and metadata; a file it writes, we read."""
    model = MODELS["lstm + head"](rng)
    save_model(model, tmp_path / "ours.safetensors")
    tensors = load_file(tmp_path / "ours.safetensors")
    assert tensors.keys() == model.state_dict().keys()
    for key, value in tensors.items():
        np.testing.assert_array_equal(value, model.state_dict()[key])
    header = read_header(tmp_path / "ours.safetensors")
    assert header["__metadata__"]["format"] == "numpy-lstm"
    assert json.loads(header["__metadata__"]["config"]) == model.config()
    save_file(model.state_dict(), tmp_path / "theirs.safetensors", metadata=model_metadata(model))
    assert load_model(tmp_path / "theirs.safetensors").config() == model.config()


def read_header(path) -> dict:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size])


def write_with_header(path, header: dict, payload: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + payload)


def tampered(tmp_path, rng, change) -> str:
    """A valid model file whose header has been edited by `change(header)`, without the tensor
    checksum (as other tools and older versions write them), so each field's own check shows."""
    save_model(numpy_lstm.LSTM(I, H, rng=rng), tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"].pop("content_sha256")
    change(header)
    write_with_header(tmp_path / "bad.safetensors", header, data[8 + size :])
    return tmp_path / "bad.safetensors"


def set_meta(key, value):
    return lambda header: header["__metadata__"].__setitem__(key, value)


def set_config(key, value):
    def change(header):
        config = json.loads(header["__metadata__"]["config"])
        config[key] = value
        header["__metadata__"]["config"] = json.dumps(config)

    return change


def rename(old, new):
    return lambda header: header.__setitem__(new, header.pop(old))


@pytest.mark.parametrize(
    "change, message",
    [
        (set_meta("format", "other"), r"format: expected 'numpy-lstm', got 'other'"),
        (set_meta("format_version", "2"), r"format_version: expected '1'.* got '2'"),
        (set_meta("architecture", "GRU"), r"architecture: expected one of .* got 'GRU'"),
        (set_meta("config", "{not json"), r"config: not valid JSON"),
        (set_meta("config", "[1, 2]"), r"config: expected a JSON object"),
        (set_meta("extra", "x"), r"unexpected header metadata \['extra'\]"),
        (lambda h: h["__metadata__"].pop("config"), r"header metadata lacks \['config'\]"),
        (lambda h: h.pop("__metadata__"), r"header metadata lacks"),
        (set_config("hidden_size", -1), r"config rejected by LSTM: hidden_size: expected a posi"),
        (set_config("colour", "red"), r"config rejected by LSTM: .*unexpected keyword .*colour"),
        (set_config("hidden_size", 5), r"config declares 200 parameter values but the file h"),
        (
            set_config("dtype", "float64"),
            r"weight_ih_l0: expected dtype float64, got dtype float32",
        ),
        (set_config("bias", False), r"config declares 112 parameter values but the file holds 144"),
        (rename("bias_hh_l0", "bias_hh_l9"), r"missing keys \['bias_hh_l0'\]"),
    ],
)
def test_tampered_headers_are_refused(tmp_path, rng, change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_model(tampered(tmp_path, rng, change))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: data[:-3],  # truncated payload
        lambda data: data[:6],  # not even a header size
        lambda data: struct.pack("<Q", 10**12) + data[8:],  # header size beyond the file
        lambda data: data[:8] + b"{" * (len(data) - 8),  # garbage header
        lambda data: data.replace(b'"F32"', b'"X32"', 1),  # unknown dtype
        lambda data: data.replace(b'"data_offsets":[0,', b'"data_offsets":[4,', 1),  # overlap
    ],
    ids=["truncated", "short", "huge header", "garbage", "dtype", "offsets"],
)
def test_malformed_files_are_refused(tmp_path, rng, corrupt) -> None:
    save_model(numpy_lstm.LSTM(I, H, rng=rng), tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(corrupt(data))
    with pytest.raises(ValueError, match=r"bad.safetensors: not a valid safetensors file"):
        load_model(tmp_path / "bad.safetensors")


def test_non_finite_weights_are_refused(tmp_path, rng) -> None:
    model = numpy_lstm.LSTM(I, H, rng=rng)
    state = model.state_dict()
    state["weight_hh_l0"][0, 0] = np.nan
    save_file(state, tmp_path / "nan.safetensors", metadata=model_metadata(model))
    with pytest.raises(ValueError, match=r"weight_hh_l0: contains NaN or Inf"):
        load_model(tmp_path / "nan.safetensors")


def test_missing_file_and_unsupported_model(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such file"):
        load_model(tmp_path / "absent.safetensors")
    with pytest.raises(TypeError, match=r"model: expected one of .* got Module"):
        save_model(numpy_lstm.Module(), tmp_path / "m.safetensors")


def test_writes_are_atomic(rng: np.random.Generator, tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(numpy_lstm.LSTM(I, H, rng=rng), path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="crash"), atomic_path(path) as temp:
        temp.write_bytes(b"half a fil")
        raise RuntimeError("crash")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp left
    save_model(numpy_lstm.LSTM(I, 2 * H, rng=rng), path)  # replaced in one step
    assert load_model(path).hidden_size == 2 * H
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
