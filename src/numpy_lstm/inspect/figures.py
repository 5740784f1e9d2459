"""Pictures of a gate trace (matplotlib, the `[plot]` extra; Agg backend, PNG or SVG by suffix).

- :func:`gate_heatmaps`: units × steps, one panel per gate, the input on the time axis;
- :func:`saturation_scatter`: per unit, how often a gate is closed (< 0.1) vs open (> 0.9),
  the picture of Karpathy, Johnson & Fei-Fei (2015);
- :func:`memory_span_histogram`: how long written values survive, per unit;
- :func:`gradient_through_time`: ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ over t — the `+` highway made visible;
- :func:`training_curves`: losses from a trainer's history.

Every function takes what it draws and a path, writes the file and returns the matplotlib
Figure, whose axes hold what was drawn (images, points, bars, lines) for a closer look. Figures are
made without pyplot, so no window, backend or global figure list is touched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.cell import GATE_ROLES, GATES
from .trace import Trace

if TYPE_CHECKING:  # matplotlib is optional (the `plot` extra): imported only when drawing
    from matplotlib.figure import Figure

PathLike = str | os.PathLike[str]


def _figure(path: PathLike, figsize: tuple[float, float]) -> Figure:
    """A new Figure (after checking that `path` names a file type we write)."""
    if Path(path).suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"path: expected a .png or .svg file, got {os.fspath(path)!r}")
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - exercised via the extra
        raise ImportError("figures need matplotlib: pip install 'numpy-lstm[plot]'") from err
    return Figure(figsize=figsize)


def _save(figure: Figure, path: PathLike) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    return figure


def _labels(tokens: Sequence[str] | None, steps: int) -> list[str]:
    if tokens is None:
        return [str(t) for t in range(steps)]
    return ["↵" if tok == "\n" else "␣" if tok == " " else tok for tok in tokens]


def gate_heatmaps(
    trace: Trace,
    path: PathLike,
    tokens: Sequence[str] | None = None,
    *,
    layer: int = 0,
    direction: int = 0,
    batch: int = 0,
    units: Sequence[int] | None = None,
) -> Figure:
    """Four panels (Filter i, Eraser f, Writer g, Presenter o), each units × steps."""
    steps = trace.steps
    chosen = list(range(trace.lstm.hidden_size)) if units is None else list(units)
    figure = _figure(path, (min(2 + 0.18 * steps, 40), 2 + 0.9 * len(chosen)))
    axes = figure.subplots(4, 1, sharex=True, squeeze=False)
    for ax, gate in zip(axes[:, 0], GATES, strict=True):
        values = trace.gate(gate, layer, direction)[:, batch][:, chosen].T  # (units, T)
        signed = gate == "g"
        image = ax.imshow(
            values,
            aspect="auto",
            interpolation="nearest",
            cmap="RdBu_r" if signed else "viridis",
            vmin=-1 if signed else 0,
            vmax=1,
        )
        ax.set_ylabel(f"{GATE_ROLES[gate]} ({gate})\nunit")
        ax.set_yticks(range(len(chosen)), [str(u) for u in chosen], fontsize=6)
        figure.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    labels = _labels(tokens, steps)
    axes[-1, 0].set_xticks(range(steps), labels, fontsize=7, fontfamily="monospace")
    axes[-1, 0].set_xlabel("step (input)")
    figure.suptitle("Gate values per unit and step")
    return _save(figure, path)


def saturation_scatter(
    trace: Trace, path: PathLike, *, layer: int = 0, direction: int = 0
) -> Figure:
    """For each gate, every unit as a point: fraction closed (x) vs fraction open (y)."""
    figure = _figure(path, (12, 4))
    axes = figure.subplots(1, 3, squeeze=False)
    for ax, gate in zip(axes[0], ("i", "f", "o"), strict=True):
        closed, opened = trace.saturation(gate, layer, direction)
        ax.scatter(closed, opened, s=12, alpha=0.7)
        ax.plot([0, 1], [1, 0], color="0.8", lw=1)  # the units that are always saturated
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="fraction closed (< 0.1)",
            ylabel="fraction open (> 0.9)",
            title=f"{GATE_ROLES[gate]} ({gate})",
        )
    figure.suptitle("Gate saturation per unit (Karpathy, Johnson & Fei-Fei 2015)")
    return _save(figure, path)


def memory_span_histogram(
    trace: Trace, path: PathLike, *, layer: int = 0, direction: int = 0
) -> Figure:
    """Histogram over units of the median steps until 1/e of a written value remains."""
    spans = trace.memory_span(layer, direction)
    figure = _figure(path, (6, 4))
    ax = figure.subplots()
    bins = np.unique(np.geomspace(1, max(spans.max(), 2), 25).round())
    ax.hist(spans, bins=bins.tolist(), color="tab:orange")
    ax.set_xscale("log")
    ax.set(
        xlabel="memory span (steps until 1/e remains)",
        ylabel="units",
        title="How long the Eraser lets the memory last",
    )
    return _save(figure, path)


def gradient_through_time(
    trace: Trace, path: PathLike, *, layer: int = 0, direction: int = 0, batch: int = 0
) -> Figure:
    """‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ over t (log scale), after `trace.backward(...)`."""
    norms = trace.gradient_norms(layer, direction, batch)
    figure = _figure(path, (8, 4))
    ax = figure.subplots()
    steps = np.arange(trace.steps)
    tiny = np.finfo(np.float64).tiny  # a zero norm has no logarithm: drawn at the bottom
    ax.semilogy(steps, np.maximum(norms["c"], tiny), label="‖∂L/∂c_t‖ (memory: the + highway)")
    ax.semilogy(steps, np.maximum(norms["h"], tiny), label="‖∂L/∂h_t‖ (output)", ls="--")
    ax.set(xlabel="step t", ylabel="gradient norm", title="How far back the error reaches")
    ax.legend()
    return _save(figure, path)


def training_curves(
    history: Sequence[dict[str, float]],
    path: PathLike,
    *,
    baseline: float | None = None,
    metric: str = "loss",
) -> Figure:
    """Evaluation `metric` over steps, with a dashed baseline if given."""
    if not history:
        raise ValueError("history: nothing to plot (no evaluations recorded)")
    figure = _figure(path, (7, 4))
    ax = figure.subplots()
    ax.plot([h["step"] for h in history], [h[metric] for h in history], marker="o", label="model")
    if baseline is not None:
        ax.axhline(baseline, color="0.5", ls="--", label="baseline")
    ax.set(xlabel="step", ylabel=metric, title=f"Validation {metric}")
    ax.legend()
    return _save(figure, path)
