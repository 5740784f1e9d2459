"""Seeded fuzzing of the foreign file loaders (.pt through torch, .keras through Keras): random
bytes, truncations, flipped bytes and mutated .keras configs either load the very model that was
saved or raise FileFormatError naming the file — never IndexError, KeyError, EOFError, a zipfile
or torch error — and files declaring more weights than they hold are refused before anything
that size is built."""

from __future__ import annotations

import copy
import json
import os
import sys
import zipfile
from pathlib import Path

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import pytest
import torch

import numpy_lstm
from numpy_lstm.io import convert
from numpy_lstm.io.errors import FileFormatError
from numpy_lstm.nn.models import SequenceModel

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Keras's notes on odd configs
]
I, H = 3, 4
X = np.random.default_rng(7).standard_normal((2, 5, I)).astype(np.float32)


def model() -> SequenceModel:
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, batch_first=True, rng=0)
    return SequenceModel(lstm, numpy_lstm.Linear(H, 2, rng=1)).eval()


def mutations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    """`count` damaged copies of `data`: random bytes, truncations, 1–4 flipped bytes."""
    cases = []
    for k in range(count):
        kind = k % 3
        if kind == 0:
            cases.append(rng.bytes(int(rng.integers(0, 2 * len(data)))))
        elif kind == 1:
            cases.append(data[: int(rng.integers(0, len(data)))])
        else:
            damaged = bytearray(data)
            for at in rng.integers(0, len(data), int(rng.integers(1, 5))):
                damaged[at] ^= int(rng.integers(1, 256))
            cases.append(bytes(damaged))
    return cases


def loads_same_or_refuses(path: Path, reference: np.ndarray, atol: float, **options: object) -> str:
    """Load `path`: the reference output (within `atol`), or a FileFormatError naming the file."""
    try:
        loaded = convert.load(path, **options)
    except FileFormatError as err:
        assert err.path == os.fspath(path) and str(err).startswith(os.fspath(path))
        return "refused"
    np.testing.assert_allclose(loaded.eval()(X)[0], reference, rtol=0, atol=atol)  # not others
    return "loaded"


def test_damaged_torch_files(tmp_path: Path) -> None:
    source = model()
    convert.save(source, tmp_path / "m.pt")
    reference = source(X)[0]
    data = (tmp_path / "m.pt").read_bytes()
    outcomes = []
    for k, damaged in enumerate(mutations(data, np.random.default_rng(13), 240)):
        path = tmp_path / f"case{k}.pt"
        path.write_bytes(damaged)
        outcomes.append(loads_same_or_refuses(path, reference, 0.0, batch_first=True))
    assert outcomes.count("refused") > 200  # the CRCs catch flipped data bytes


@pytest.mark.parametrize(
    "content, message",
    [
        ([torch.zeros(3)], r"expected a state dict \(name → tensor\), got a list"),
        (torch.zeros(3), r"expected a state dict \(name → tensor\), got a Tensor"),
        ({"weight_ih_l0": 3}, r"expected a state dict .* got a dict with keys \['weight_ih_l0'\]"),
        ({}, r"expected a non-empty state dict"),
        ({"weight": torch.zeros(3)}, r"weight: expected a matrix, got shape \(3,\)"),
        ({"weight_ih_l0": torch.zeros(4 * H)}, r"weight_ih_l0: expected a matrix"),
        ({"weight_ih_l0": torch.zeros(4 * H, I, dtype=torch.int32)}, r"expected dtype float32"),
        # 14,000 units declared by a 224 kB tensor: LSTM(1, 14000) would allocate a 3 GB W_hh.
        ({"weight_ih_l0": torch.zeros(4 * 14_000, 1)}, r"state: missing keys \['weight_hh_l0'"),
        ({"weight_ih": torch.zeros(4 * 14_000, 1)}, r"state: missing keys \['weight_hh'"),
    ],
    ids=["list", "tensor", "int-values", "empty", "vector-linear", "vector-lstm", "int32",
         "huge-lstm", "huge-cell"],
)  # fmt: skip
def test_torch_files_that_are_not_state_dicts(
    tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "m.pt"
    torch.save(content, path)
    with pytest.raises(FileFormatError, match=message) as caught:
        convert.load(path)
    assert caught.value.path == os.fspath(path)


def test_legacy_and_compressed_torch_files_are_refused(tmp_path: Path) -> None:
    state = torch.nn.LSTM(I, H).state_dict()
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(FileFormatError, match=r"legacy\.pt: not a torch\.save zip archive"):
        convert.load(tmp_path / "legacy.pt")
    torch.save(state, tmp_path / "m.pt")
    with (
        zipfile.ZipFile(tmp_path / "m.pt") as src,
        zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    with pytest.raises(FileFormatError, match=r"is compressed \(torch\.save never is\)"):
        convert.load(tmp_path / "deflated.pt")


# -- .keras -----------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["ours", "functional"])
def keras_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, np.ndarray]:
    """A .keras file numpy-lstm wrote (Sequential), or one Keras wrote for a functional model
    with a Bidirectional LSTM, and the output of the model it holds."""
    path = tmp_path_factory.mktemp("keras") / "m.keras"
    if request.param == "ours":
        source = model()
        convert.save(source, path)
        return path, source(X)[0]
    import keras

    inputs = keras.Input((None, I))
    hidden = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))(inputs)
    theirs = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    theirs.save(path)
    return path, np.asarray(keras.ops.convert_to_numpy(theirs(X)))


def rewrite(source: Path, target: Path, config: object) -> Path:
    """`source` with config.json replaced by `config` (JSON) — a well-formed archive."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            out.writestr(
                info.filename, json.dumps(config) if info.filename == "config.json" else data
            )
    return target


def test_damaged_keras_files(tmp_path: Path, keras_file: tuple[Path, np.ndarray]) -> None:
    path, reference = keras_file
    data = path.read_bytes()
    outcomes = []
    for k, damaged in enumerate(mutations(data, np.random.default_rng(17), 240)):
        case = tmp_path / f"case{k}.keras"
        case.write_bytes(damaged)
        outcomes.append(loads_same_or_refuses(case, reference, 1e-5))  # Keras's bias: ≤ 1 ulp
    assert outcomes.count("refused") > 200


POOL = [None, 0, -1, 14_000, 2**40, "x", "", [], {}, True, 1.5, [None], [3], {"units": 2},
        {"class_name": "Lambda", "config": {}}]  # fmt: skip


def nodes(value: object, path: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into a JSON value."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += nodes(item, (*path, index))
    return found


def test_mutated_keras_configs(tmp_path: Path, keras_file: tuple[Path, np.ndarray]) -> None:
    path, _ = keras_file
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    paths = [p for p in nodes(config) if p]
    rng = np.random.default_rng(19)
    outcomes = []
    for k in range(200):
        mutated = copy.deepcopy(config)
        where = paths[int(rng.integers(len(paths)))]
        parent = mutated
        for key in where[:-1]:
            parent = parent[key]
        if rng.random() < 0.2 and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = copy.deepcopy(POOL[int(rng.integers(len(POOL)))])
        case = rewrite(path, tmp_path / f"case{k}.keras", mutated)
        try:
            loaded = convert.load(case)  # a different but valid model may load: that is fine
            outcomes.append(type(loaded).__name__)
        except FileFormatError as err:
            assert err.path == os.fspath(case)
            outcomes.append("refused")
    assert outcomes.count("refused") > 40 and len(set(outcomes)) > 1


@pytest.mark.parametrize(
    "config, message",
    [
        ([1, 2], r"config.json: expected an object, got list"),
        ("model", r"config.json: expected an object, got str"),
        ({"class_name": "Sequential", "config": []}, r"config.json: config: expected an object"),
        (
            {"class_name": "Sequential", "config": {"layers": {}}},
            r"layers are not a non-empty list",
        ),
        ({"class_name": "Lambda"}, r"expected a model .* got 'Lambda'"),
    ],
)
def test_keras_configs_that_are_not_models(
    tmp_path: Path, keras_file: tuple[Path, np.ndarray], config: object, message: str
) -> None:
    case = rewrite(keras_file[0], tmp_path / "bad.keras", config)
    with pytest.raises(FileFormatError, match=message) as caught:
        convert.load(case)
    assert caught.value.path == os.fspath(case)


def test_keras_config_declaring_huge_sizes_is_refused_before_building(
    tmp_path: Path, keras_file: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("Keras built it"))
    with zipfile.ZipFile(keras_file[0]) as archive:
        config = json.loads(archive.read("config.json"))
    lstm = next(
        layer["config"]["layer"] if layer["class_name"] == "Bidirectional" else layer
        for layer in config["config"]["layers"]
        if layer["class_name"] in ("LSTM", "Bidirectional")
    )
    lstm["config"]["units"] = 14_000  # 3.1 GB of weights declared; the file holds kilobytes
    case = rewrite(keras_file[0], tmp_path / "huge.keras", config)
    with pytest.raises(FileFormatError, match=r"declares \d+ weights but model.weights.h5 holds"):
        convert.load(case)


def test_keras_file_with_an_unsupported_model_names_the_file(tmp_path: Path) -> None:
    import keras

    theirs = keras.Sequential([keras.Input((None, I)), keras.layers.GRU(H)])
    theirs.save(tmp_path / "gru.keras")
    with pytest.raises(
        FileFormatError, match=r"gru\.keras: config.json: layer 1: unsupported layer 'GRU'"
    ):
        convert.load(tmp_path / "gru.keras")
    theirs = keras.Sequential([keras.Input((None, I)), keras.layers.LSTM(H, dropout=0.2)])
    theirs.save(tmp_path / "dropout.keras")
    with pytest.raises(FileFormatError, match=r"dropout\.keras: .*dropout: unsupported value 0.2"):
        convert.load(tmp_path / "dropout.keras")


def test_damaged_keras_weight_files(tmp_path: Path) -> None:
    """A .weights.h5 (HDF5 keeps no checksums, so only random bytes and truncations: a flipped
    data byte is a different weight, which no reader can tell)."""
    like = model()
    convert.save(like, tmp_path / "m.weights.h5")
    data = (tmp_path / "m.weights.h5").read_bytes()
    rng = np.random.default_rng(23)
    cases = [rng.bytes(int(rng.integers(0, 4096))) for _ in range(15)]
    cases += [data[: int(rng.integers(0, len(data)))] for _ in range(15)]
    for k, damaged in enumerate(cases):
        path = tmp_path / f"case{k}.weights.h5"
        path.write_bytes(damaged)
        with pytest.raises(FileFormatError, match=r"Keras cannot read it") as caught:
            convert.load(path, like=like)
        assert caught.value.path == os.fspath(path)
