"""Parameters are named and shaped exactly like torch's, and state dicts move between the two."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_lstm


def torch_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("bias", [True, False])
def test_names_and_shapes_are_torchs(bias: bool) -> None:
    ours = numpy_lstm.LSTM(3, 5, bias=bias)
    theirs = torch.nn.LSTM(3, 5, bias=bias)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    assert list(ours.state_dict()) == list(theirs.state_dict())  # same order, too
    cell, torch_cell = numpy_lstm.LSTMCell(3, 5, bias=bias), torch.nn.LSTMCell(3, 5, bias=bias)
    assert {k: v.shape for k, v in cell.state_dict().items()} == {
        k: tuple(v.shape) for k, v in torch_cell.state_dict().items()
    }


def test_a_torch_state_dict_loads_as_is_and_computes_the_same() -> None:
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 5)
    ours = numpy_lstm.LSTM(3, 5)
    assert ours.load_state_dict(torch_state(theirs)) == ([], [])
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    out, _ = ours(x)
    expected, _ = theirs(torch.tensor(x))
    np.testing.assert_allclose(out, expected.detach().numpy(), atol=1e-6)
    # ...and back: our state dict loads into torch.
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})


def test_state_dict_is_a_copy_and_attributes_are_live() -> None:
    lstm = numpy_lstm.LSTM(2, 3, rng=0)
    state = lstm.state_dict()
    state["weight_ih_l0"][...] = 42
    assert not (lstm.weight_ih_l0 == 42).any()
    lstm.weight_ih_l0 = np.full((12, 2), 0.5, np.float32)
    np.testing.assert_array_equal(lstm.state_dict()["weight_ih_l0"], 0.5)


def test_loaded_arrays_are_copied() -> None:
    lstm = numpy_lstm.LSTM(2, 3, rng=0)
    state = lstm.state_dict()
    lstm.load_state_dict(state)
    state["bias_hh_l0"][...] = 9
    assert not (lstm.bias_hh_l0 == 9).any()


def check_rejected(state: dict, error: type, message: str, strict: bool = True) -> None:
    """The load fails with `message`, and no parameter changed."""
    lstm = numpy_lstm.LSTM(2, 3, rng=0)
    before = lstm.state_dict()
    with pytest.raises(error, match=message):
        lstm.load_state_dict(state, strict=strict)
    for name, value in lstm.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def good_state() -> dict[str, np.ndarray]:
    # Different values from the rng=0 layer, so a partial load would be visible.
    return {k: v + 1 for k, v in numpy_lstm.LSTM(2, 3, rng=1).state_dict().items()}


def test_missing_key_is_named() -> None:
    state = good_state()
    del state["bias_hh_l0"]
    check_rejected(state, ValueError, r"missing keys \['bias_hh_l0'\]")


def test_unexpected_key_is_named() -> None:
    state = good_state() | {"weight_hr_l0": np.zeros((2, 3), np.float32)}
    check_rejected(state, ValueError, r"unexpected keys \['weight_hr_l0'\]")


def test_misshaped_key_names_both_shapes() -> None:
    state = good_state() | {"weight_hh_l0": np.zeros((12, 4), np.float32)}
    check_rejected(state, ValueError, r"weight_hh_l0: expected shape \(12, 3\), got \(12, 4\)")


def test_wrong_dtype_names_both_dtypes() -> None:
    state = good_state() | {"bias_ih_l0": np.zeros(12, np.float64)}
    check_rejected(state, TypeError, r"bias_ih_l0: expected dtype float32, got dtype float64")


def test_non_finite_parameter_is_rejected() -> None:
    state = good_state()
    state["weight_ih_l0"][0, 0] = np.nan
    check_rejected(state, ValueError, r"weight_ih_l0: contains NaN or Inf")


def test_every_problem_is_reported_at_once() -> None:
    state = good_state() | {"extra": np.zeros(1)}
    del state["bias_ih_l0"]
    state["weight_ih_l0"] = np.zeros((1, 1), np.float32)
    check_rejected(state, ValueError, r"missing keys .*unexpected keys .*weight_ih_l0: expected")


def test_not_a_mapping() -> None:
    check_rejected([1, 2], TypeError, r"state: expected a mapping of name → array, got list")  # type: ignore[arg-type]


def test_non_strict_load_reports_what_it_skipped() -> None:
    lstm = numpy_lstm.LSTM(2, 3, rng=0)
    partial = {"weight_ih_l0": np.ones((12, 2), np.float32), "other": np.zeros(1)}
    result = lstm.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(lstm.weight_ih_l0, 1)
    # Present keys are still validated without strictness.
    check_rejected({"weight_ih_l0": np.ones((3, 3), np.float32)}, ValueError, "expected", False)


@pytest.mark.parametrize(
    "value, error, message",
    [
        (np.zeros((12, 5), np.float32), ValueError, r"weight_ih_l0: expected shape \(12, 2\)"),
        (np.zeros((12, 2), np.float64), TypeError, r"weight_ih_l0: expected dtype float32"),
    ],
)
def test_assigning_a_parameter_attribute_is_checked(
    value: np.ndarray, error: type, message: str
) -> None:
    lstm = numpy_lstm.LSTM(2, 3, rng=0)
    before = lstm.weight_ih_l0.copy()
    with pytest.raises(error, match=message):
        lstm.weight_ih_l0 = value
    np.testing.assert_array_equal(lstm.weight_ih_l0, before)


def test_nested_modules_use_dotted_torch_names() -> None:
    class Model(numpy_lstm.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = numpy_lstm.LSTM(2, 3, rng=0)
            self.head = numpy_lstm.Linear(3, 1, rng=0)

    class TorchModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(2, 3)
            self.head = torch.nn.Linear(3, 1)

    ours, theirs = Model(), TorchModel()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours.grads) == list(theirs.state_dict())
    ours.load_state_dict(torch_state(theirs))
    np.testing.assert_array_equal(ours.head.weight, theirs.head.weight.detach().numpy())
    ours.eval()
    assert not ours.lstm.training and not ours.head.training
