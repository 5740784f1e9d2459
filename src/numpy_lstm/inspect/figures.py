"""Pictures of a gate trace (matplotlib, the `[plot]` extra; Agg backend, PNG or SVG by suffix).

- :func:`gate_heatmaps`: units × steps, one panel per gate, the input on the time axis;
- :func:`saturation_scatter`: per unit, how often a gate is closed (< 0.1) vs open (> 0.9),
  the picture of Karpathy, Johnson & Fei-Fei (2015);
- :func:`memory_span_histogram`: how long written values survive, per unit;
- :func:`gradient_through_time`: ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ over t — the `+` highway made visible;
- :func:`training_curves`: losses from a trainer's history.

Every function takes what it draws and a path, writes the file and returns the path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cell import GATE_ROLES, GATES
from .trace import Trace

PathLike = str | os.PathLike


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - exercised via the extra
        raise ImportError("figures need matplotlib: pip install 'numpy-lstm[plot]'") from err
    matplotlib.use("Agg")  # files only: never open a window, work without a display
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"path: expected a .png or .svg file, got {os.fspath(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def _labels(tokens: Sequence[str] | None, steps: int) -> list[str]:
    if tokens is None:
        return [str(t) for t in range(steps)]
    return ["↵" if tok == "\n" else "␣" if tok == " " else tok for tok in tokens]


def gate_heatmaps(
    trace: Trace, path: PathLike, tokens: Sequence[str] | None = None, *, layer: int = 0,
    direction: int = 0, batch: int = 0, units: Sequence[int] | None = None,
) -> Path:  # fmt: skip
    """Four panels (Filter i, Eraser f, Writer g, Presenter o), each units × steps."""
    plt = _pyplot()
    steps = trace.steps
    chosen = list(range(trace.lstm.hidden_size)) if units is None else list(units)
    figure, axes = plt.subplots(4, 1, figsize=(min(2 + 0.18 * steps, 40), 2 + 0.9 * len(chosen)),
                                sharex=True, squeeze=False)  # fmt: skip
    for ax, gate in zip(axes[:, 0], GATES, strict=True):
        values = trace.gate(gate, layer, direction)[:, batch][:, chosen].T  # (units, T)
        signed = gate == "g"
        image = ax.imshow(values, aspect="auto", interpolation="nearest",
                          cmap="RdBu_r" if signed else "viridis",
                          vmin=-1 if signed else 0, vmax=1)  # fmt: skip
        ax.set_ylabel(f"{GATE_ROLES[gate]} ({gate})\nunit")
        ax.set_yticks(range(len(chosen)), [str(u) for u in chosen], fontsize=6)
        figure.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    labels = _labels(tokens, steps)
    axes[-1, 0].set_xticks(range(steps), labels, fontsize=7, fontfamily="monospace")
    axes[-1, 0].set_xlabel("step (input)")
    figure.suptitle("Gate values per unit and step")
    return _save(figure, path)


def saturation_scatter(trace: Trace, path: PathLike, *, layer: int = 0, direction: int = 0) -> Path:
    """For each gate, every unit as a point: fraction closed (x) vs fraction open (y)."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(12, 4), squeeze=False)
    for ax, gate in zip(axes[0], ("i", "f", "o"), strict=True):
        closed, opened = trace.saturation(gate, layer, direction)
        ax.scatter(closed, opened, s=12, alpha=0.7)
        ax.plot([0, 1], [1, 0], color="0.8", lw=1)  # the units that are always saturated
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="fraction closed (< 0.1)",
               ylabel="fraction open (> 0.9)", title=f"{GATE_ROLES[gate]} ({gate})")  # fmt: skip
    figure.suptitle("Gate saturation per unit (Karpathy, Johnson & Fei-Fei 2015)")
    return _save(figure, path)


def memory_span_histogram(
    trace: Trace, path: PathLike, *, layer: int = 0, direction: int = 0
) -> Path:
    """Histogram over units of the median steps until 1/e of a written value remains."""
    plt = _pyplot()
    spans = trace.memory_span(layer, direction)
    figure, ax = plt.subplots(figsize=(6, 4))
    bins = np.unique(np.geomspace(1, max(spans.max(), 2), 25).round())
    ax.hist(spans, bins=bins, color="tab:orange")
    ax.set_xscale("log")
    ax.set(xlabel="memory span (steps until 1/e remains)", ylabel="units",
           title="How long the Eraser lets the memory last")  # fmt: skip
    return _save(figure, path)


def gradient_through_time(
    trace: Trace, path: PathLike, *, layer: int = 0, direction: int = 0, batch: int = 0
) -> Path:
    """‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ over t (log scale), after `trace.backward(...)`."""
    plt = _pyplot()
    norms = trace.gradient_norms(layer, direction, batch)
    figure, ax = plt.subplots(figsize=(8, 4))
    steps = np.arange(trace.steps)
    tiny = np.finfo(np.float64).tiny
    ax.semilogy(steps, np.maximum(norms["c"], tiny), label="‖∂L/∂c_t‖ (memory: the + highway)")
    ax.semilogy(steps, np.maximum(norms["h"], tiny), label="‖∂L/∂h_t‖ (output)", ls="--")
    ax.set(xlabel="step t", ylabel="gradient norm", title="How far back the error reaches")
    ax.legend()
    return _save(figure, path)


def training_curves(history: Sequence[dict[str, float]], path: PathLike, *,
                    baseline: float | None = None, metric: str = "loss") -> Path:  # fmt: skip
    """Evaluation `metric` over steps, with a dashed baseline if given."""
    plt = _pyplot()
    if not history:
        raise ValueError("history: nothing to plot (no evaluations recorded)")
    figure, ax = plt.subplots(figsize=(7, 4))
    ax.plot([h["step"] for h in history], [h[metric] for h in history], marker="o", label="model")
    if baseline is not None:
        ax.axhline(baseline, color="0.5", ls="--", label="baseline")
    ax.set(xlabel="step", ylabel=metric, title=f"Validation {metric}")
    ax.legend()
    return _save(figure, path)
