"""numpy_lstm.deepml.LSTM is the Deep-ML #59 class: its published test cases pass as written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import to_torch
from numpy_lstm.deepml import LSTM


def test_deepml_case_1() -> None:
    """Published: x = [[1], [2], [3]], H = 1 → final_h [[0.73698596]]."""
    lstm = LSTM(input_size=1, hidden_size=1)
    lstm.Wf = np.array([[0.5, 0.5]])
    lstm.Wi = np.array([[0.5, 0.5]])
    lstm.Wc = np.array([[0.3, 0.3]])
    lstm.Wo = np.array([[0.5, 0.5]])
    lstm.bf = np.array([[0.1]])
    lstm.bi = np.array([[0.1]])
    lstm.bc = np.array([[0.1]])
    lstm.bo = np.array([[0.1]])
    x = np.array([[1.0], [2.0], [3.0]])
    outputs, final_h, final_c = lstm.forward(x, np.zeros((1, 1)), np.zeros((1, 1)))
    assert outputs.shape == (3, 1, 1)
    assert final_h.shape == final_c.shape == (1, 1)
    np.testing.assert_allclose(final_h, [[0.73698596]], atol=5e-9)
    np.testing.assert_array_equal(outputs[-1], final_h)


def test_deepml_case_2() -> None:
    """Published: H = 2, all W = [[.1,.2,.3,.4],[.5,.6,.7,.8]] → [[0.16613133],[0.40299449]].

    With the wrong concatenation order [x, h] the result would be [0.10978, 0.33860].
    """
    lstm = LSTM(input_size=2, hidden_size=2)
    weights = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    biases = np.array([[0.1], [0.2]])
    lstm.Wf, lstm.Wi, lstm.Wc, lstm.Wo = weights, weights, weights, weights
    lstm.bf, lstm.bi, lstm.bc, lstm.bo = biases, biases, biases, biases
    x = np.array([[0.1, 0.2], [0.3, 0.4]])
    outputs, final_h, _ = lstm.forward(x, np.zeros((2, 1)), np.zeros((2, 1)))
    assert outputs.shape == (2, 2, 1)
    np.testing.assert_allclose(final_h, [[0.16613133], [0.40299449]], atol=5e-9)


def test_every_attribute_changes_the_computation(rng: np.random.Generator) -> None:
    """A widely shared solution silently ignored these attributes; ours reads them every call."""
    lstm = LSTM(3, 4, rng=rng)
    x = rng.standard_normal((5, 3))
    h0, c0 = np.zeros((4, 1)), np.zeros((4, 1))
    _, before, _ = lstm.forward(x, h0, c0)
    for name in ("Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo"):
        original = getattr(lstm, name)
        setattr(lstm, name, original + 0.5)
        _, after, _ = lstm.forward(x, h0, c0)
        assert np.abs(after - before).max() > 1e-3, f"setting {name} had no effect"
        setattr(lstm, name, original)
        np.testing.assert_array_equal(lstm.forward(x, h0, c0)[1], before)


def test_distinct_gates_match_torch_through_the_documented_mapping(
    rng: np.random.Generator,
) -> None:
    """Each gate gets its own weights, so a gate mapped to the wrong torch block would fail."""
    I, H, T = 3, 4, 6
    lstm = LSTM(I, H, rng=rng)
    for k, name in enumerate(("Wf", "Wi", "Wc", "Wo")):
        setattr(lstm, name, (k + 1) * 0.3 * rng.standard_normal((H, H + I)))
    for k, name in enumerate(("bf", "bi", "bc", "bo")):
        setattr(lstm, name, (k - 1.5) * 0.4 + 0.1 * rng.standard_normal((H, 1)))
    x = rng.standard_normal((T, I))
    h0, c0 = rng.standard_normal((H, 1)), rng.standard_normal((H, 1))
    outputs, final_h, final_c = lstm.forward(x, h0, c0)

    reference = torch.nn.LSTM(I, H, dtype=torch.float64)
    reference.load_state_dict({k: to_torch(v) for k, v in lstm.torch_state_dict().items()})
    out_t, (h_t, c_t) = reference(to_torch(x), (to_torch(h0.T), to_torch(c0.T)))
    np.testing.assert_allclose(outputs[:, :, 0], out_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(final_h, h_t.detach().numpy().T, atol=1e-12)
    np.testing.assert_allclose(final_c, c_t.detach().numpy().T, atol=1e-12)


def test_deepml_equations_written_out_by_hand(rng: np.random.Generator) -> None:
    """The problem's own equations over [h, x], evaluated directly, give the same numbers."""
    I, H = 2, 3
    lstm = LSTM(I, H, rng=rng)
    lstm.bf, lstm.bi = rng.standard_normal((H, 1)), rng.standard_normal((H, 1))
    x = rng.standard_normal((4, I))
    h, c = rng.standard_normal((H, 1)), rng.standard_normal((H, 1))
    outputs, _, final_c = lstm.forward(x, h, c)

    def sigma(z: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-z))

    for t in range(len(x)):
        hx = np.vstack([h, x[t].reshape(-1, 1)])
        f, i = sigma(lstm.Wf @ hx + lstm.bf), sigma(lstm.Wi @ hx + lstm.bi)
        c = f * c + i * np.tanh(lstm.Wc @ hx + lstm.bc)
        h = sigma(lstm.Wo @ hx + lstm.bo) * np.tanh(c)
        np.testing.assert_allclose(outputs[t], h, atol=1e-13)
    np.testing.assert_allclose(final_c, c, atol=1e-13)


def test_default_init_is_deepmls_and_seeded() -> None:
    a, b, c = LSTM(3, 5, rng=1), LSTM(3, 5, rng=1), LSTM(3, 5, rng=2)
    assert a.Wf.shape == (5, 8) and a.bf.shape == (5, 1)
    assert not a.bf.any() and not a.bo.any()
    np.testing.assert_array_equal(a.Wc, b.Wc)
    assert not np.array_equal(a.Wc, c.Wc)
    assert not np.array_equal(a.Wf, a.Wi)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("Wf", np.zeros((2, 2)), r"Wf: expected shape \(2, 5\), got \(2, 2\)"),
        ("bo", np.zeros((2,)), r"bo: expected shape \(2, 1\), got \(2,\)"),
        ("Wi", np.array([["a"] * 5] * 2), r"Wi: expected real numbers, got dtype <U1"),
    ],
)
def test_bad_attributes_are_rejected_when_set(name: str, value: np.ndarray, message: str) -> None:
    lstm = LSTM(3, 2, rng=0)
    before = getattr(lstm, name).copy()
    with pytest.raises((ValueError, TypeError), match=message):
        setattr(lstm, name, value)
    np.testing.assert_array_equal(getattr(lstm, name), before)


def test_bad_forward_arguments() -> None:
    lstm = LSTM(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(T, 3\) with T ≥ 1, got \(4, 2\)"):
        lstm.forward(np.zeros((4, 2)), np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"initial_hidden_state: expected shape \(2, 1\)"):
        lstm.forward(np.zeros((4, 3)), np.zeros((3, 1)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"initial_cell_state: contains a non-finite value"):
        lstm.forward(np.zeros((4, 3)), np.zeros((2, 1)), np.full((2, 1), np.nan))
