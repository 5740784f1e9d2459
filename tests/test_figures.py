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
        block = gates[:, k * H + np.array(units)].T
        # the Eraser's panel shows what it erases: 1 − f
        np.testing.assert_array_equal(drawn, 1 - block if k == 1 else block)
    assert panels[1].get_ylabel().startswith("Eraser (1 − f)")
    assert [t.get_text() for t in panels[-1].get_xticklabels()] == list("hello␣world!")
    bars = [ax for ax in figure.axes if not ax.images]  # a labelled colour bar for each panel
    assert [ax.get_ylabel() for ax in bars] == [
        "open (1) / closed (0)",
        "erased (1) / kept (0)",
        "value",
        "open (1) / closed (0)",
    ]
    # the cells (cividis is muted, greyest mid-scale, where this Eraser's 1 − f mostly lies)
    assert_is_a_picture(path, min_colours=200, coloured=0.05)


def texts_of(figure: Any) -> list[str]:
    """Every piece of text on a figure: titles, labels, tick labels, annotations."""
    from matplotlib.text import Text

    return [t.get_text() for t in figure.findobj(Text)]


def test_unit_rows_draw_each_named_units_gates_memory_and_output(
    tmp_path: Path, traced: numpy_lstm.Trace
) -> None:
    names = figures.unit_names({"inside quotes": (2, 0.62), "after newline": (5, -0.41)})
    assert names == {2: "inside quotes, r = +0.62", 5: "after newline, r = -0.41"}
    path = tmp_path / "units.png"
    figure = figures.unit_rows(traced, path, list("hello world!"), names, batch=1)
    record = traced.layer()
    i, f, g = (record.gates[:, 1, k * H : (k + 1) * H] for k in range(3))  # (T, H) each
    rows = [ax for ax in figure.axes if ax.patches]
    assert len(rows) == 2 * 6  # six rows per named unit
    for block, unit in zip((rows[:6], rows[6:]), (2, 5), strict=True):
        expected = {
            "Filter i": i[:, unit],
            "Eraser 1 − f (erased)": 1 - f[:, unit],
            "Writer g": g[:, unit],
            "written i·g": i[:, unit] * g[:, unit],
            "memory c": record.c[:, 1, unit],
            "output h": record.h[:, 1, unit],
        }
        for ax, (label, values) in zip(block, expected.items(), strict=True):
            assert ax.get_ylabel() == label
            drawn = [bar.get_height() for bar in ax.patches]
            np.testing.assert_allclose(drawn, values, rtol=1e-12, err_msg=label)
            low, high = ax.get_ylim()
            if label == "memory c":  # its own scale: the unit's largest |c| fills the row
                assert high == -low == pytest.approx(np.abs(values).max())
            else:
                assert (low, high) in ((0, 1), (-1, 1))
        assert [t.get_text() for t in block[-1].get_xticklabels()] == list("hello␣world!")
    texts = texts_of(figure)
    assert "unit 2 — tracks inside quotes, r = +0.62" in texts
    assert "unit 5 — tracks after newline, r = -0.41" in texts
    assert "What the named units do, character by character" in texts
    assert_is_a_picture(path, min_colours=50, coloured=0.02)  # the bars
    with pytest.raises(ValueError, match="names: expected at least one unit"):
        figures.unit_rows(traced, path, None, {})


def test_saturation_scatter_places_each_unit_at_its_closed_and_open_shares(
    tmp_path: Path, traced: numpy_lstm.Trace
) -> None:
    path = tmp_path / "saturation.png"
    names = {4: "inside quotes, r = +0.62", 1: "after newline, r = -0.41"}
    figure = figures.saturation_scatter(traced, path, names=names)
    assert len(figure.axes) == 3  # one panel per gate
    for ax, k in zip(figure.axes, (0, 1, 3), strict=True):  # i, f, o
        values = traced.layer().gates[..., k * H : (k + 1) * H].reshape(-1, H)  # every step
        expected = np.stack([(values < 0.1).mean(axis=0), (values > 0.9).mean(axis=0)], axis=1)
        everyone, marked = ax.collections
        np.testing.assert_array_equal(everyone.get_offsets(), expected)
        np.testing.assert_array_equal(marked.get_offsets(), expected[[1, 4]])
        texts = [t.get_text() for t in ax.texts]
        for region in ("always open", "always closed", "switching", "in between"):
            assert any(text.startswith(region) for text in texts), (region, texts)
        assert "4: inside quotes" in texts and "1: after newline" in texts
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0].startswith("Filter") and titles[1].startswith("forget gate f, the share kept")
    assert "the Eraser wipes 1 − f" in titles[1]
    assert "Which gates act as switches" in texts_of(figure)
    assert_is_a_picture(path, min_colours=20, coloured=1e-3)  # dots and marked units


def test_memory_span_histogram_draws_units_that_outlive_the_passage_apart(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    with lstm.editing():
        lstm.bias_ih_l0[H : H + 2] = 30.0  # units 0 and 1: the Eraser never erases (f ≈ 1)
    tr = numpy_lstm.trace(lstm, 2 * rng.standard_normal((T, B, I)))
    path = tmp_path / "span.png"
    names = {0: "inside quotes, r = +0.62", 3: "after newline, r = -0.41"}
    figure = figures.memory_span_histogram(tr, path, names=names)
    spans = tr.memory_span()
    # a unit that never forgets gets the cut-off: the median over starts t of the T − t steps left
    np.testing.assert_array_equal(spans[:2], np.median(T - np.arange(T)))
    assert (spans[2:] < spans[0]).all()
    np.testing.assert_array_equal(figures.outlives_passage(tr), [1, 1, 0, 0, 0, 0])
    measured_axes, apart = figure.axes
    bars = measured_axes.patches
    heights = [bar.get_height() for bar in bars]
    last = len(bars) - 1  # numpy's last bin is closed on the right
    measured = spans[2:]
    expected = [
        np.sum((b.get_x() <= measured) & ((measured < b.get_x() + b.get_width()) | (k == last)))
        for k, b in enumerate(bars)
    ]
    assert heights == expected and sum(heights) == H - 2
    assert [bar.get_height() for bar in apart.patches] == [2]  # the censored bin, on its own
    assert apart.get_xticklabels()[0].get_text().startswith("kept longer\nthan the\npassage")
    texts = texts_of(figure)
    assert "0: inside quotes" in texts and "3: after newline" in texts
    assert_is_a_picture(path, min_colours=20, coloured=0.05)  # the bars


def test_gradient_through_time_draws_the_norms_of_the_recorded_gradients(
    tmp_path: Path, traced: numpy_lstm.Trace
) -> None:
    path = tmp_path / "grad.png"
    figure = figures.gradient_through_time(traced, path, batch=1, loss="the last step's loss")
    assert any("The gradient of the last step's loss" in text for text in texts_of(figure))
    memory, output = figure.axes[0].lines
    record = traced.layer()  # dc and dh match torch's autograd (tests/test_trace.py)
    np.testing.assert_array_equal(memory.get_xdata(), np.arange(T))
    np.testing.assert_allclose(memory.get_ydata(), np.sqrt((record.dc[:, 1] ** 2).sum(-1)))
    np.testing.assert_allclose(output.get_ydata(), np.sqrt((record.dh[:, 1] ** 2).sum(-1)))
    assert_is_a_picture(path, min_colours=20, coloured=2e-3)  # two lines


def test_training_curves_draw_the_history_and_the_baseline(tmp_path: Path) -> None:
    path = tmp_path / "curve.png"
    training = [{"step": 1, "loss": 2.2}, {"step": 3, "loss": 1.4}, {"step": 4, "loss": 0.9}]
    figure = figures.training_curves(
        HISTORY, path, training=training, baseline=4.5, baseline_label="unigram baseline"
    )
    ax = figure.axes[0]
    trained, validated, baseline = ax.lines
    np.testing.assert_array_equal(trained.get_xdata(), [1, 3, 4])
    np.testing.assert_array_equal(trained.get_ydata(), [2.2, 1.4, 0.9])
    np.testing.assert_array_equal(validated.get_xdata(), [1, 2, 4])
    np.testing.assert_array_equal(validated.get_ydata(), [2.0, 1.5, 1.1])
    np.testing.assert_array_equal(baseline.get_ydata(), [4.5, 4.5])
    assert ax.get_yscale() == "log"  # a far baseline does not flatten the curves
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "training loss",
        "validation loss",
        "unigram baseline",
    ]
    assert "unigram baseline: 4.50" in texts_of(figure)
    assert_is_a_picture(path, min_colours=20, coloured=4e-3)  # two lines and markers


DRAWINGS: dict[str, Callable[[numpy_lstm.Trace, Path], Any]] = {
    "heat": lambda tr, path: figures.gate_heatmaps(tr, path),
    "units": lambda tr, path: figures.unit_rows(tr, path, None, {1: "inside quotes, r = +0.6"}),
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
