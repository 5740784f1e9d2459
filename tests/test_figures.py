"""The figures render from real traces into PNG and SVG files (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import numpy_lstm
from numpy_lstm.inspect import figures


@pytest.fixture
def traced(rng: np.random.Generator) -> numpy_lstm.Trace:
    lstm = numpy_lstm.LSTM(3, 6, dtype=np.float64, rng=rng)
    tr = numpy_lstm.trace(lstm, rng.standard_normal((12, 2, 3)))
    return tr.backward(np.ones((12, 2, 6)))


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_every_figure_is_written(tmp_path: Path, traced: numpy_lstm.Trace, suffix: str) -> None:
    written = [
        figures.gate_heatmaps(traced, tmp_path / f"heat{suffix}", list("hello world!")),
        figures.saturation_scatter(traced, tmp_path / f"sat{suffix}"),
        figures.memory_span_histogram(traced, tmp_path / f"span{suffix}"),
        figures.gradient_through_time(traced, tmp_path / f"grad{suffix}"),
        figures.training_curves(
            [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}],
            tmp_path / f"curve{suffix}",
            baseline=2.5,
        ),
    ]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in data[:2000]


def test_figure_errors(tmp_path: Path, traced: numpy_lstm.Trace) -> None:
    with pytest.raises(ValueError, match=r"path: expected a \.png or \.svg file"):
        figures.saturation_scatter(traced, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="history: nothing to plot"):
        figures.training_curves([], tmp_path / "x.png")
