"""The gradient-highway measurement equals torch autograd's, and its figure draws exactly it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from numpy_lstm import LSTM, RNN, Linear
from numpy_lstm.inspect.highway import gradient_reach, highway_figure
from numpy_lstm.nn.models import SequenceToOne

pytest.importorskip("matplotlib")

T, I, H = 12, 2, 5


def lstm_model(seed: int) -> SequenceToOne:
    rng = np.random.default_rng(seed)
    return SequenceToOne(
        LSTM(I, H, dtype=np.float64, rng=rng, forget_bias=1.0),
        Linear(H, 2, dtype=np.float64, rng=rng),
    )


def rnn_model(seed: int) -> SequenceToOne:
    rng = np.random.default_rng(seed)
    return SequenceToOne(
        RNN(I, H, dtype=np.float64, rng=rng), Linear(H, 2, dtype=np.float64, rng=rng)
    )


def torch_reach(model: SequenceToOne, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """‖∂L/∂c_t‖ (LSTM) or ‖∂L/∂h_t‖ (RNN) per step, L = dy·head(h_T): torch's cells stepped by
    hand, every state's gradient kept with retain_grad."""
    state = model.state_dict()
    is_lstm = "lstm.weight_ih_l0" in state
    prefix = "lstm" if is_lstm else "rnn"
    cell = (torch.nn.LSTMCell if is_lstm else torch.nn.RNNCell)(I, H).double()
    cell.load_state_dict(
        {k: torch.from_numpy(state[f"{prefix}.{k}_l0"]) for k in dict(cell.named_parameters())}
    )
    h = torch.zeros(1, H, dtype=torch.float64)
    c = torch.zeros(1, H, dtype=torch.float64)
    kept = []
    for t in range(x.shape[0]):
        step_input = torch.from_numpy(x[t : t + 1])
        if is_lstm:
            h, c = cell(step_input, (h, c))
            c.retain_grad()
            kept.append(c)
        else:
            h = cell(step_input, h)
            h.retain_grad()
            kept.append(h)
    y = h @ torch.from_numpy(state["head.weight"]).T + torch.from_numpy(state["head.bias"])
    (y * torch.from_numpy(dy)).sum().backward()
    return np.array([float(k.grad.norm()) for k in kept])


@pytest.mark.parametrize("make", [lstm_model, rnn_model], ids=["lstm", "rnn"])
@pytest.mark.parametrize("d_prediction", [None, np.array([0.7, -1.3])])
def test_reach_equals_torch_autograd(make, d_prediction) -> None:
    model = make(3)
    x = np.random.default_rng(4).standard_normal((T, I))
    reach = gradient_reach(model, x, d_prediction)
    dy = np.ones((1, 2)) if d_prediction is None else d_prediction[None]
    expected = torch_reach(model, x, dy)
    assert reach.shape == (T,)
    np.testing.assert_allclose(reach, expected, rtol=1e-10, atol=1e-14)
    assert all(not g.any() for g in model.grads.values())  # the model's grads are untouched


def test_reach_refuses_a_batch_and_a_misshapen_error() -> None:
    model = rnn_model(0)
    with pytest.raises(ValueError, match=r"x: expected one sequence of shape \(T, I\)"):
        gradient_reach(model, np.zeros((T, 1, I)))
    with pytest.raises(ValueError, match=r"d_prediction: expected shape \(2,\)"):
        gradient_reach(model, np.zeros((T, I)), np.ones(3))


def test_figure_draws_the_reach_and_is_not_blank(tmp_path: Path) -> None:
    from matplotlib.image import imread

    x = np.random.default_rng(1).standard_normal((T, I))
    lstm_reach, rnn_reach = gradient_reach(lstm_model(1), x), gradient_reach(rnn_model(1), x)
    path = tmp_path / "highway.png"
    figure = highway_figure(lstm_reach, rnn_reach, path, marks=[2, 9])
    (ax,) = figure.axes
    lines = ax.get_lines()
    assert len(lines) == 4  # the two curves, then one dotted line per mark
    curves, mark_lines = lines[:2], lines[2:]
    for line, reach in zip(curves, (lstm_reach, rnn_reach), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(T))
        np.testing.assert_array_equal(line.get_ydata(), reach)
    assert ax.get_yscale() == "log"
    assert "step t" in ax.get_xlabel() and "gradient" in ax.get_ylabel()
    assert "LSTM" in curves[0].get_label() and "RNN" in curves[1].get_label()
    assert "highway" in figure.get_suptitle()
    assert ax.get_title()  # the one-line caption
    assert [line.get_xdata()[0] for line in mark_lines] == [2, 9]
    assert mark_lines[0].get_label() == "marked steps"

    pixels = imread(path)[..., :3]  # (rows, cols, RGB) in [0, 1]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert (pixels.min(axis=-1) < 0.9).mean() > 0.02  # ink, not an empty canvas
    blue = (pixels[..., 2] > 0.5) & (pixels[..., 0] < 0.2)  # the LSTM's #0072B2
    vermillion = (pixels[..., 0] > 0.7) & (pixels[..., 2] < 0.2)  # the RNN's #D55E00
    assert blue.sum() > 200 and vermillion.sum() > 200

    svg = tmp_path / "highway.svg"
    highway_figure(lstm_reach, rnn_reach, svg)
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


def test_figure_refuses_other_formats_and_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"path: expected a \.png or \.svg"):
        highway_figure(np.ones(3), np.ones(3), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"rnn_reach: expected a non-empty 1-D array"):
        highway_figure(np.ones(3), np.ones((3, 1)), tmp_path / "x.png")
