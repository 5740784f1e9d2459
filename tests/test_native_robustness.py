"""Native model files against hostile or damaged bytes (random bytes, truncation, byte flips,
declared sizes beyond the bytes present), the tensor checksum, refusing to save what cannot be
loaded, leftover temporary files; and updates that change nothing when they fail."""

from __future__ import annotations

import json
import os
import stat
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import numpy_lstm
from numpy_lstm.io.errors import FileFormatError
from numpy_lstm.io.native import load_model, model_metadata, save_model
from numpy_lstm.nn.models import SequenceModel
from numpy_lstm.train.optim import SGD, Adam, NonFiniteError, RMSprop


def small_model(seed: int = 0) -> SequenceModel:
    rng = np.random.default_rng(seed)
    return SequenceModel(numpy_lstm.LSTM(3, 5, rng=rng), numpy_lstm.Linear(5, 2, rng=rng))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.safetensors"
    save_model(small_model(), path)
    return path


def header_size(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


def assert_same_model(loaded: numpy_lstm.Module, original: numpy_lstm.Module) -> None:
    assert loaded.config() == original.config()
    for name, value in original.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)


# -- fuzzing: only FileFormatError, naming the file -----------------------------------------------
def test_random_bytes_and_truncations_raise_file_format_errors(
    tmp_path: Path, model_file: Path
) -> None:
    data = model_file.read_bytes()
    rng = np.random.default_rng(1)
    bad = tmp_path / "bad.safetensors"
    cases = [rng.bytes(int(n)) for n in rng.integers(0, 3000, 40)]
    cases += [data[:n] for n in range(0, len(data), max(1, len(data) // 80))]
    cases += [data[:8] + rng.bytes(len(data) - 8) for _ in range(20)]
    for case in cases:
        bad.write_bytes(case)
        with pytest.raises(FileFormatError) as caught:
            load_model(bad)
        assert caught.value.path == str(bad)


def test_every_flipped_tensor_byte_is_detected(tmp_path: Path, model_file: Path) -> None:
    """The checksum in the header: before it, 37–49% of such flips loaded silently."""
    data = model_file.read_bytes()
    start = header_size(data)
    rng = np.random.default_rng(2)
    bad = tmp_path / "bad.safetensors"
    for at in rng.integers(start, len(data), 200):
        flipped = bytearray(data)
        flipped[at] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(flipped))
        with pytest.raises(
            FileFormatError, match=r"contents do not match the header's content_sha256"
        ):
            load_model(bad)


def test_flipped_header_bytes_are_refused_or_harmless(tmp_path: Path, model_file: Path) -> None:
    """A flip in the header is refused, unless it lands where the format ignores it (the
    padding spaces): then the model loads exactly as saved."""
    data = model_file.read_bytes()
    original = small_model()
    rng = np.random.default_rng(3)
    bad = tmp_path / "bad.safetensors"
    for at in rng.integers(0, header_size(data), 300):
        flipped = bytearray(data)
        flipped[at] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(flipped))
        try:
            loaded = load_model(bad)
        except FileFormatError as err:
            assert err.path == str(bad)
            continue
        assert_same_model(loaded, original)


@pytest.mark.parametrize("hidden_size", [5000, 14000])
def test_declared_sizes_beyond_the_bytes_are_refused_before_allocating(
    tmp_path: Path, hidden_size: int
) -> None:
    """A 2 KB file whose config declares hidden_size 14,000 used to allocate ~1.2 GB."""
    model = small_model()
    metadata = model_metadata(model)
    config = json.loads(metadata["config"])
    config["lstm"]["hidden_size"] = hidden_size
    metadata["config"] = json.dumps(config)
    path = tmp_path / "big.safetensors"
    save_file(model.state_dict(), path, metadata=metadata)  # no checksum: an old-style file
    assert path.stat().st_size < 8192
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"config declares [\d,]+ parameter values"):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"not a regular file"):
        load_model(tmp_path)  # a folder
    if os.path.exists("/dev/zero"):
        with pytest.raises(FileFormatError, match=r"/dev/zero: not a regular file"):
            load_model("/dev/zero")


def test_files_without_a_checksum_still_load(tmp_path: Path) -> None:
    """Written by the reference `safetensors` package (as by older numpy-lstm versions)."""
    model = small_model()
    save_file(model.state_dict(), tmp_path / "old.safetensors", metadata=model_metadata(model))
    assert_same_model(load_model(tmp_path / "old.safetensors"), model)


# -- saving: non-finite weights, leftover temporary files -----------------------------------------
def test_non_finite_weights_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    model = small_model()
    model.state_dict()  # a copy: set the live parameter instead
    with model.editing():
        dict(model.named_parameters())["head.bias"][1] = np.inf
    with pytest.raises(ValueError, match=r"head.bias: contains NaN or Inf; refusing to save"):
        save_model(model, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_save_removes_only_our_stale_temporary_files(tmp_path: Path) -> None:
    """A kill during a save leaves `.tmp-<12 hex>-<name>`; the next save into the folder removes
    those older than an hour, and nothing else."""
    old = time.time() - 2 * 3600
    stale = tmp_path / ".tmp-0123456789ab-m.safetensors"
    fresh = tmp_path / ".tmp-ba9876543210-m.safetensors"  # a save in progress elsewhere
    other = [tmp_path / ".tmp-notours-m.safetensors", tmp_path / "notes.txt"]
    for path in (stale, fresh, *other):
        path.write_bytes(b"x" * 100)
    for path in (stale, *other):
        os.utime(path, (old, old))
    save_model(small_model(), tmp_path / "m.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["m.safetensors", fresh.name, *(p.name for p in other)]
    )


# -- updates that fail change nothing -------------------------------------------------------------
@pytest.mark.parametrize(
    "make, grad_value",
    [
        (lambda m: Adam(m, lr=1e38), 1.0),  # the step lr / (1 − β1) overflows float32
        (lambda m: SGD(m, lr=1e39, momentum=0.9), 1.0),
        (lambda m: RMSprop(m), 1e30),  # the squared gradient overflows
    ],
    ids=["Adam", "SGD", "RMSprop"],
)
def test_an_overflowing_update_leaves_the_weights_unchanged(make, grad_value: float) -> None:
    """Before, the first parameters were written (inf) before a later one failed."""
    model = small_model()
    optimizer = make(model)
    for grad in model.grads.values():
        grad[...] = grad_value
    before = {k: v.copy() for k, v in model.state_dict().items()}
    buffers = optimizer.state_dict()
    with pytest.raises(NonFiniteError, match=r"step 1: the .* of (lstm|head)\.\w+ is not finite"):
        optimizer.step()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    after = optimizer.state_dict()
    assert after["step"] == buffers["step"] == 0
    for key, value in buffers.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_a_bad_d_state_changes_no_gradient() -> None:
    model = small_model()
    y, _ = model(np.ones((4, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"dh_n"):
        model.backward(np.ones_like(y), (np.ones((9, 9), dtype=np.float32), None))
    assert all(not grad.any() for grad in model.grads.values())


def test_an_edited_config_value_is_detected(tmp_path: Path, model_file: Path) -> None:
    """The checksum covers the metadata too: dropout 0.0 → 0.5, same length, same parameters."""
    data = model_file.read_bytes()
    edited = data.replace(b'\\"dropout\\": 0.0', b'\\"dropout\\": 0.5', 1)
    assert edited != data and len(edited) == len(data)
    (tmp_path / "edited.safetensors").write_bytes(edited)
    with pytest.raises(FileFormatError, match=r"contents do not match the header's content_sha"):
        load_model(tmp_path / "edited.safetensors")


def test_a_save_never_replaces_something_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """As root, a rename over /dev/null would turn the device into a file: refuse any such path."""
    pipe = tmp_path / "pipe.safetensors"
    os.mkfifo(pipe)
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    model = numpy_lstm.LSTM(2, 3, rng=0)
    for target in (pipe, folder):
        with pytest.raises(FileExistsError, match="not a regular file"):
            save_model(model, target)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode) and folder.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.safetensors", "pipe.safetensors"]
