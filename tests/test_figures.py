"""The figures draw the trace's numbers (read back from the figures' artists) and the saved files
are real pictures: PNGs with many colours and ink on them, SVGs that parse."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

import numpy_lstm
from numpy_lstm.inspect import figures

T, B, I, H = 12, 2, 3, 6
HISTORY = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 4, "loss": 1.1}]


@pytest.fixture
def traced(rng: np.random.Generator) -> numpy_lstm.Trace:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    tr = numpy_lstm.trace(lstm, 2 * rng.standard_normal((T, B, I)))
    return tr.backward(np.ones((T, B, H)))


def assert_is_a_picture(path: Path, min_colours: int, coloured: float) -> None:
    """Not blank: many distinct colours, a spread of brightness, some dark ink (the text) and at
    least a `coloured` share of pixels in colour — the data marks (axes and text are grey)."""
    pixels = imread(path)[..., :3]  # (rows, columns, RGB) in [0, 1]
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200, pixels.shape
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    brightness = pixels.mean(axis=-1)
    chroma = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert colours >= min_colours, colours
    assert brightness.std() > 0.05, brightness.std()
    assert (brightness < 0.3).mean() > 0.001
    assert (chroma > 0.25).mean() >= coloured, (chroma > 0.25).mean()


def test_gate_heatmaps_show_each_gate_of_the_chosen_units(
    tmp_path: Path, traced: numpy_lstm.Trace
) -> None:
    units = [0, 2, 5]
    path = tmp_path / "heat.png"
    figure = figures.gate_heatmaps(traced, path, list("hello world!"), batch=1, units=units)
    panels = [ax for ax in figure.axes if ax.images]  # the colour bars have none
    gates = traced.layer().gates[:, 1]  # (T, 4H) blocks i, f, g, o
    assert len(panels) == 4
    for k, ax in enumerate(panels):
        drawn = np.asarray(ax.images[0].get_array())  # (units, T)
        np.testing.assert_array_equal(drawn, gates[:, k * H + np.array(units)].T)
    assert [t.get_text() for t in panels[-1].get_xticklabels()] == list("hello␣world!")
    assert_is_a_picture(path, min_colours=200, coloured=0.2)  # the cells


def test_saturation_scatter_places_each_unit_at_its_closed_and_open_shares(
    tmp_path: Path, traced: numpy_lstm.Trace
) -> None:
    path = tmp_path / "saturation.png"
    figure = figures.saturation_scatter(traced, path)
    for ax, k in zip(figure.axes, (0, 1, 3), strict=True):  # i, f, o
        values = traced.layer().gates[..., k * H : (k + 1) * H].reshape(-1, H)  # every step
        expected = np.stack([(values < 0.1).mean(axis=0), (values > 0.9).mean(axis=0)], axis=1)
        np.testing.assert_array_equal(ax.collections[0].get_offsets(), expected)
    assert_is_a_picture(path, min_colours=20, coloured=1e-4)  # a few dots


def test_memory_span_histogram_counts_every_unit_once(
    tmp_path: Path, traced: numpy_lstm.Trace
) -> None:
    path = tmp_path / "span.png"
    figure = figures.memory_span_histogram(traced, path)
    bars = figure.axes[0].patches
    spans = traced.memory_span()
    heights = [bar.get_height() for bar in bars]
    last = len(bars) - 1  # numpy's last bin is closed on the right
    expected = [
        np.sum((bar.get_x() <= spans) & ((spans < bar.get_x() + bar.get_width()) | (k == last)))
        for k, bar in enumerate(bars)
    ]
    assert heights == expected and sum(heights) == H
    assert_is_a_picture(path, min_colours=20, coloured=0.1)  # the bars


def test_gradient_through_time_draws_the_norms_of_the_recorded_gradients(
    tmp_path: Path, traced: numpy_lstm.Trace
) -> None:
    path = tmp_path / "grad.png"
    figure = figures.gradient_through_time(traced, path, batch=1)
    memory, output = figure.axes[0].lines
    record = traced.layer()  # dc and dh match torch's autograd (tests/test_trace.py)
    np.testing.assert_array_equal(memory.get_xdata(), np.arange(T))
    np.testing.assert_allclose(memory.get_ydata(), np.sqrt((record.dc[:, 1] ** 2).sum(-1)))
    np.testing.assert_allclose(output.get_ydata(), np.sqrt((record.dh[:, 1] ** 2).sum(-1)))
    assert_is_a_picture(path, min_colours=20, coloured=2e-3)  # two lines


def test_training_curves_draw_the_history_and_the_baseline(tmp_path: Path) -> None:
    path = tmp_path / "curve.png"
    figure = figures.training_curves(HISTORY, path, baseline=2.5)
    model, baseline = figure.axes[0].lines
    np.testing.assert_array_equal(model.get_xdata(), [1, 2, 4])
    np.testing.assert_array_equal(model.get_ydata(), [2.0, 1.5, 1.1])
    np.testing.assert_array_equal(baseline.get_ydata(), [2.5, 2.5])
    assert_is_a_picture(path, min_colours=20, coloured=2e-3)  # a line and its markers


DRAWINGS: dict[str, Callable[[numpy_lstm.Trace, Path], Any]] = {
    "heat": lambda tr, path: figures.gate_heatmaps(tr, path),
    "saturation": lambda tr, path: figures.saturation_scatter(tr, path),
    "span": lambda tr, path: figures.memory_span_histogram(tr, path),
    "grad": lambda tr, path: figures.gradient_through_time(tr, path),
    "curve": lambda tr, path: figures.training_curves(HISTORY, path),
}


@pytest.mark.parametrize("name", DRAWINGS)
def test_every_figure_is_also_a_valid_svg(
    tmp_path: Path, traced: numpy_lstm.Trace, name: str
) -> None:
    path = tmp_path / f"{name}.svg"
    DRAWINGS[name](traced, path)
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 10  # axes, marks, glyphs


def test_figure_errors(tmp_path: Path, traced: numpy_lstm.Trace) -> None:
    with pytest.raises(ValueError, match=r"path: expected a \.png or \.svg file"):
        figures.saturation_scatter(traced, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="history: nothing to plot"):
        figures.training_curves([], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"call trace\.backward"):
        figures.gradient_through_time(numpy_lstm.trace(traced.lstm, np.zeros((3, I))), "g.png")
