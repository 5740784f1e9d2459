"""LSTMConfig is the one list of the LSTM's options: every option reaches the constructor,
`config()`, the native file, `repr`, and each format's "cannot represent" check.

OTHER_VALUE must name every option with a default — a new option without an entry fails
`test_every_option_has_a_test_value` — so each test below covers every option there is.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import numpy_lstm
from numpy_lstm.core.options import LSTMConfig
from numpy_lstm.io.native import load_model, save_model
from numpy_lstm.io.representable import Lacks

I, H = 3, 4

# A valid value other than the default, per option (with I = 3, H = 4).
OTHER_VALUE = {
    "num_layers": 2,
    "bias": False,
    "batch_first": True,
    "dropout": 0.25,
    "bidirectional": True,
    "proj_size": 2,
    "dtype": np.dtype(np.float64),
    "mask_output": "carry",
    "peephole": True,
    "coupled_input_forget": True,
    "clip": 3.0,
    "activations": ("hard_sigmoid", "tanh", "relu"),
    "layer_norm": True,
    "recurrent_dropout": 0.1,
    "zoneout": (0.1, 0.2),
}

# The JSON `config` an LSTM wrote into native files before LSTMConfig existed (all options set).
STORED_CONFIG = {
    "input_size": 3,
    "hidden_size": 4,
    "num_layers": 2,
    "bias": False,
    "batch_first": True,
    "dropout": 0.25,
    "bidirectional": True,
    "proj_size": 2,
    "dtype": "float64",
    "mask_output": "carry",
    "peephole": True,
    "coupled_input_forget": True,
    "clip": 3.0,
    "activations": ["hard_sigmoid", "tanh", "relu"],
    "layer_norm": True,
    "recurrent_dropout": 0.1,
    "zoneout": [0.1, 0.2],
}


def test_every_option_has_a_test_value() -> None:
    assert set(OTHER_VALUE) == set(LSTMConfig.defaults())
    assert [f.name for f in fields(LSTMConfig)] == ["input_size", "hidden_size", *OTHER_VALUE]
    for name, value in OTHER_VALUE.items():
        assert value != LSTMConfig.defaults()[name], name


@pytest.mark.parametrize("name", OTHER_VALUE)
def test_each_option_survives_config_and_the_native_file(name: str, tmp_path: Path) -> None:
    value = OTHER_VALUE[name]
    lstm = numpy_lstm.LSTM(I, H, **{name: value}, rng=0)
    assert lstm.options.non_defaults() == {name: value}

    rebuilt = numpy_lstm.LSTM(**lstm.config())
    assert rebuilt.options == lstm.options
    assert list(rebuilt.state_dict()) == list(lstm.state_dict())

    loaded = load_model(save_model(lstm, tmp_path / "model.safetensors"))
    assert isinstance(loaded, numpy_lstm.LSTM)
    assert loaded.options == lstm.options
    for key, array in lstm.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], array, err_msg=key)


@pytest.mark.parametrize("name", OTHER_VALUE)
def test_repr_shows_each_option_that_differs_from_its_default(name: str) -> None:
    value = OTHER_VALUE[name]
    shown = repr(numpy_lstm.LSTM(I, H, **{name: value}))
    expected = f"dtype={value.name}" if name == "dtype" else f"{name}={value!r}"
    assert expected in shown
    assert repr(numpy_lstm.LSTM(I, H)) == "LSTM(3, 4, dtype=float32)"


def test_a_config_stored_before_lstmconfig_loads_unchanged() -> None:
    lstm = numpy_lstm.LSTM(**STORED_CONFIG)
    assert lstm.config() == STORED_CONFIG
    assert lstm.options.non_defaults() == OTHER_VALUE


def test_the_positional_arguments_are_torchs() -> None:
    positional = numpy_lstm.LSTM(I, H, 2, False, True, 0.25, True, 2)
    by_name = numpy_lstm.LSTM(
        input_size=I,
        hidden_size=H,
        num_layers=2,
        bias=False,
        batch_first=True,
        dropout=0.25,
        bidirectional=True,
        proj_size=2,
    )
    assert positional.options == by_name.options
    with pytest.raises(TypeError):
        numpy_lstm.LSTM(I, H, 1, True, False, 0.0, False, 0, np.float64)  # dtype is keyword-only


def test_the_attributes_read_the_options() -> None:
    lstm = numpy_lstm.LSTM(I, H, **{k: v for k, v in OTHER_VALUE.items() if k != "bias"})
    for name in ("num_layers", "batch_first", "dropout", "bidirectional", "proj_size", "dtype"):
        assert getattr(lstm, name) == OTHER_VALUE[name], name
    for name in ("mask_output", "peephole", "recurrent_dropout", "zoneout"):
        assert getattr(lstm, name) == OTHER_VALUE[name], name
    assert lstm.variant.activations == OTHER_VALUE["activations"]
    assert (lstm.num_directions, lstm.output_size) == (2, 2)


def test_a_lacks_list_cannot_name_an_option_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="zonout"):
        Lacks("somewhere", ("zonout",))
    with pytest.raises(ValueError, match="hidden_size"):
        Lacks("somewhere", ("hidden_size",))  # no default, so never "unused"


def exporters() -> list:
    """(lacks, export) of every format with a bridge whose library is installed."""
    found = []
    try:
        from numpy_lstm.io.torch import TORCH_LACKS, to_torch

        found.append(pytest.param(TORCH_LACKS, to_torch, id="torch"))
    except ImportError:
        pass
    try:
        from numpy_lstm.io.keras import KERAS_LACKS, to_keras

        found.append(pytest.param(KERAS_LACKS, to_keras, id="keras"))
    except ImportError:
        pass
    try:
        from numpy_lstm.io.onnx.export import export_onnx
        from numpy_lstm.io.onnx.layout import ONNX_LACKS

        found.append(pytest.param(ONNX_LACKS, export_onnx, id="onnx"))
    except ImportError:
        pass
    return found


@pytest.mark.parametrize("lacks, export", exporters())
def test_each_format_refuses_a_model_using_an_option_it_lacks(lacks: Lacks, export) -> None:
    assert lacks.options, "a format that lacks nothing needs no Lacks"
    for name in lacks.options:
        lstm = numpy_lstm.LSTM(I, H, **{name: OTHER_VALUE[name]})
        with pytest.raises(ValueError, match=rf"{lacks.target} cannot represent .*\b{name}="):
            export(lstm)
    export(numpy_lstm.LSTM(I, H))  # and the plain LSTM goes through
