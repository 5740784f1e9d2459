"""Pictures of a gate trace (matplotlib, the `[plot]` extra; Agg backend, PNG or SVG by suffix).

One idea per figure, said in its title and in a one-line caption written on the figure:

- :func:`unit_rows`: what a few named units do, character by character — per unit its Filter i,
  Eraser 1 − f (what is erased), Writer g, written i·g, memory c (on the unit's own scale) and
  output h, aligned with the characters read;
- :func:`gate_heatmaps`: units × steps, one panel per gate, the input on the time axis;
- :func:`saturation_scatter`: per unit, how often a gate is closed (< 0.1) vs open (> 0.9),
  the picture of Karpathy, Johnson & Fei-Fei (2015), its regions named and the named units marked;
- :func:`memory_span_histogram`: how long written values survive, per unit, the units whose
  memory outlasts the passage drawn apart (their span is only a lower bound);
- :func:`gradient_through_time`: ‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ over t for one loss;
- :func:`training_curves`: training and validation losses from a trainer, and a baseline.

Colours are colour-blind safe: cividis for values in [0, 1], the diverging RdBu for signed
values, and the Okabe–Ito palette for lines and points; every heatmap has a labelled colour bar.

Every function takes what it draws and a path, writes the file and returns the matplotlib
Figure, whose axes hold what was drawn (images, points, bars, lines) for a closer look. Figures are
made without pyplot, so no window, backend or global figure list is touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.cell import GATE_ROLES, GATES
from .trace import Trace

if TYPE_CHECKING:  # matplotlib is optional (the `plot` extra): imported only when drawing
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PathLike = str | os.PathLike[str]

UNIT_MAP, SIGNED_MAP = "cividis", "RdBu_r"  # colour-blind safe: sequential and diverging
# Okabe & Ito's colour-blind-safe palette
BLUE, ORANGE, VERMILLION, GREEN = "#0072B2", "#E69F00", "#D55E00", "#009E73"
PURPLE, BLACK, GREY = "#CC79A7", "#000000", "#777777"
LABEL_BOX = {"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
LOW, HIGH = 0.1, 0.9  # saturation thresholds (Karpathy, Johnson & Fei-Fei 2015)


def _figure(path: PathLike, figsize: tuple[float, float]) -> Figure:
    """A new Figure (after checking that `path` names a file type we write)."""
    if Path(path).suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"path: expected a .png or .svg file, got {os.fspath(path)!r}")
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - exercised via the extra
        raise ImportError("figures need matplotlib: pip install 'numpy-lstm[plot]'") from err
    return Figure(figsize=figsize, layout="constrained")


def _titled(figure: Figure, title: str, caption: str) -> None:
    """The figure's one idea: a title and, under it, a one-line caption."""
    figure.suptitle(title, fontsize=14, fontweight="bold")
    figure.supxlabel(caption, fontsize=10, color="0.25", style="italic")


def _save(figure: Figure, path: PathLike) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    return figure


def _labels(tokens: Sequence[str] | None, steps: int) -> list[str]:
    if tokens is None:
        return [str(t) for t in range(steps)]
    return ["↵" if tok == "\n" else "␣" if tok == " " else tok for tok in tokens]


def unit_names(ranked: Mapping[str, tuple[int, float]]) -> dict[int, str]:
    """{feature: (unit, r)} (from :func:`features.rank_units`) → {unit: "inside quotes, r = +0.62"}
    (a unit that tracks two features gets both, joined by "; ")."""
    names: dict[int, list[str]] = {}
    for feature, (unit, r) in ranked.items():
        names.setdefault(unit, []).append(f"{feature}, r = {r:+.2f}")
    return {unit: "; ".join(parts) for unit, parts in names.items()}


# -- what named units do, character by character ----------------------------------------------
# row label → (colour, fixed y range or None for the unit's own symmetric range)
UNIT_ROWS: dict[str, tuple[str, tuple[float, float] | None]] = {
    "Filter i": (GREEN, (0.0, 1.0)),
    "Eraser 1 − f (erased)": (VERMILLION, (0.0, 1.0)),
    "Writer g": (ORANGE, (-1.0, 1.0)),
    "written i·g": (BLUE, (-1.0, 1.0)),
    "memory c": (BLACK, None),
    "output h": (PURPLE, (-1.0, 1.0)),
}


def unit_row_values(
    trace: Trace, unit: int, *, layer: int = 0, direction: int = 0, batch: int = 0
) -> dict[str, np.ndarray]:
    """The rows :func:`unit_rows` draws for one unit, each (T,), keyed as in :data:`UNIT_ROWS`."""
    record = trace.layer(layer, direction)

    def gate(name: str) -> np.ndarray:
        return trace.gate(name, layer, direction)[:, batch, unit]

    return {
        "Filter i": gate("i"),
        "Eraser 1 − f (erased)": 1 - gate("f"),
        "Writer g": gate("g"),
        "written i·g": gate("i") * gate("g"),
        "memory c": record.c[:, batch, unit],
        "output h": record.h[:, batch, unit],
    }


def unit_rows(
    trace: Trace,
    path: PathLike,
    tokens: Sequence[str] | None,
    names: Mapping[int, str],
    *,
    layer: int = 0,
    direction: int = 0,
    batch: int = 0,
) -> Figure:
    """Per named unit (names: unit → what it tracks), six rows of bars over the steps — Filter i,
    Eraser 1 − f, Writer g, written i·g, memory c (on the unit's own scale) and output h — each
    bar above the character read at that step."""
    if not names:
        raise ValueError("names: expected at least one unit to draw, got none")
    steps, units = trace.steps, sorted(names)
    labels = _labels(tokens, steps)
    figure = _figure(path, (min(3 + 0.17 * steps, 60), 0.8 + 4.2 * len(units)))
    blocks = figure.subfigures(len(units), 1, squeeze=False)[:, 0]
    for block, unit in zip(blocks, units, strict=True):
        block.suptitle(
            f"unit {unit} — tracks {names[unit]}",
            fontsize=13,
            x=0.01,
            ha="left",
            fontweight="bold",
        )
        rows = unit_row_values(trace, unit, layer=layer, direction=direction, batch=batch)
        axes = block.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (label, values) in zip(axes, rows.items(), strict=True):
            colour, limits = UNIT_ROWS[label]
            if limits is None:  # c is unbounded (±10 and more): the unit's own scale
                top = max(float(np.abs(values).max()), 1e-6)
                limits = (-top, top)
            ax.bar(range(steps), values, width=0.85, color=colour)
            ax.set_ylim(limits)
            ax.set_yticks(sorted({limits[0], 0.0, limits[1]}))
            ax.yaxis.set_major_formatter("{x:.3g}")
            ax.tick_params(axis="y", labelsize=8)
            ax.axhline(0, color="0.6", lw=0.5)
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
            ax.tick_params(axis="x", length=0)
            ax.set_xlim(-0.6, steps - 0.4)
        axes[-1].set_xticks(range(steps), labels, fontsize=11, fontfamily="monospace")
        axes[0].set_xticks(range(steps), labels, fontsize=11, fontfamily="monospace")
        axes[0].tick_params(axis="x", labeltop=True, labelbottom=False)
    _titled(
        figure,
        "What the named units do, character by character",
        "Per unit: how much the Filter lets in, the Eraser erases, the Writer proposes, is "
        "written (i·g), the memory c (own scale) and the output h, above each character read.",
    )
    return _save(figure, path)


# -- all units, one panel per gate -------------------------------------------------------------
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
    """Four panels (Filter i, Eraser 1 − f, Writer g, Presenter o), each units × steps: the
    Eraser's panel shows what it erases, 1 − f, not the share kept."""
    steps = trace.steps
    chosen = list(range(trace.lstm.hidden_size)) if units is None else list(units)
    figure = _figure(path, (min(3 + 0.18 * steps, 40), 2.5 + 0.9 * len(chosen)))
    axes = figure.subplots(4, 1, sharex=True, squeeze=False)
    for ax, gate in zip(axes[:, 0], GATES, strict=True):
        values = trace.gate(gate, layer, direction)[:, batch][:, chosen].T  # (units, T)
        erases = gate == "f"  # the Eraser's number is what it erases
        values = 1 - values if erases else values
        signed = gate == "g"
        image = ax.imshow(
            values,
            aspect="auto",
            interpolation="nearest",
            cmap=SIGNED_MAP if signed else UNIT_MAP,
            vmin=-1 if signed else 0,
            vmax=1,
        )
        ax.set_ylabel(f"{GATE_ROLES[gate]} ({'1 − f' if erases else gate})\nunit")
        ax.set_yticks(range(len(chosen)), [str(u) for u in chosen], fontsize=7)
        bar = figure.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
        ends = "erased (1) / kept (0)" if erases else "open (1) / closed (0)"
        bar.set_label("value" if signed else ends, fontsize=7)
    labels = _labels(tokens, steps)
    axes[-1, 0].set_xticks(range(steps), labels, fontsize=9, fontfamily="monospace")
    axes[-1, 0].set_xlabel("step (input)")
    _titled(
        figure,
        "Each gate of each unit, step by step",
        "Rows are units, columns the steps read; bright = gate open, dark = closed "
        "(the Eraser: bright = memory wiped; the Writer: red positive, blue negative).",
    )
    return _save(figure, path)


# -- saturation ----------------------------------------------------------------------------------
SATURATION_REGIONS = {  # the region's name → where it is written: x, y (axes fractions), alignment
    "always open": (0.03, 0.97, "left", "top"),
    "always closed": (0.97, 0.03, "right", "bottom"),
    "in between\n(rarely saturated)": (0.03, 0.03, "left", "bottom"),
}


def saturation_scatter(
    trace: Trace,
    path: PathLike,
    *,
    layer: int = 0,
    direction: int = 0,
    names: Mapping[int, str] | None = None,
) -> Figure:
    """For each gate, every unit as a point: fraction closed (x) vs fraction open (y), the
    regions named and the `names` (unit → what it tracks) marked."""
    figure = _figure(path, (15, 5.6))
    axes = figure.subplots(1, 3, squeeze=False)[0]
    named = sorted(names or {})
    for ax, gate in zip(axes, ("i", "f", "o"), strict=True):
        closed, opened = trace.saturation(gate, layer, direction, LOW, HIGH)
        ax.scatter(closed, opened, s=14, alpha=0.6, color=BLUE, label="a unit")
        ax.plot([0, 1], [1, 0], color="0.75", lw=1, zorder=0)  # always saturated, either way
        for text, (x, y, ha, va) in SATURATION_REGIONS.items():
            ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=9, color="0.3")
        ax.text(  # the diagonal: saturated at every step, one way or the other
            0.51,
            0.52,
            "switching: on this line, saturated at every step, open or closed",
            transform=ax.transAxes,
            ha="center",
            va="bottom",
            fontsize=8,
            color="0.3",
            rotation=-45,
            rotation_mode="anchor",
        )
        if named:
            ax.scatter(
                closed[named],
                opened[named],
                s=70,
                marker="D",
                color=VERMILLION,
                edgecolor="black",
                label="a named unit",
                zorder=3,
            )
            for k, unit in enumerate(named):  # labels stepped down: points can coincide
                ax.annotate(
                    f"{unit}: {(names or {})[unit].split(',')[0]}",
                    (closed[unit], opened[unit]),
                    xytext=(8, 2 - 11 * k),
                    textcoords="offset points",
                    fontsize=8,
                    color=VERMILLION,
                    bbox=LABEL_BOX,
                )
        ax.set(
            xlim=(-0.02, 1.02),
            ylim=(-0.02, 1.02),
            xlabel=f"fraction of steps closed (< {LOW})",
            ylabel=f"fraction of steps open (> {HIGH})",
            title=(
                "forget gate f, the share kept\n(open = keeps the memory; the Eraser wipes 1 − f)"
                if gate == "f"
                else f"{GATE_ROLES[gate]} ({gate})"
            ),
        )
        ax.set_aspect("equal")
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", fontsize=9)
    _titled(
        figure,
        "Which gates act as switches",
        f"Each point is a unit: how often its gate is closed (< {LOW}) and open (> {HIGH}) "
        "over the passage (Karpathy, Johnson & Fei-Fei 2015).",
    )
    return _save(figure, path)


# -- memory span ---------------------------------------------------------------------------------
def outlives_passage(trace: Trace, layer: int = 0, direction: int = 0) -> np.ndarray:
    """(H,) bool: units for which at least half the written values still keep more than 1/e
    at the end of the passage — their memory span is longer than the passage can measure (the
    span :meth:`Trace.memory_span` gives them is a lower bound, set by the passage's length)."""
    f = trace.gate("f", layer, direction)  # (T, B, H)
    if direction == 1:
        f = f[::-1]  # the reverse direction's memory flows backwards in time
    log_keep = np.log(np.maximum(f, np.finfo(f.dtype).tiny)).astype(np.float64)
    # what a value written at step t still keeps at the end: Π_{s>t} f_s, as a log
    remaining = log_keep[::-1].cumsum(axis=0)[::-1] - log_keep  # (T, B, H)
    kept = remaining.reshape(-1, remaining.shape[-1]) > -1.0
    return np.asarray(kept.mean(axis=0) >= 0.5)


def memory_span_histogram(
    trace: Trace,
    path: PathLike,
    *,
    layer: int = 0,
    direction: int = 0,
    names: Mapping[int, str] | None = None,
) -> Figure:
    """Histogram over units of the median steps until 1/e of a written value remains; the units
    whose memory outlasts the passage (:func:`outlives_passage`) in a bar of their own."""
    spans = trace.memory_span(layer, direction)
    censored = outlives_passage(trace, layer, direction)
    figure = _figure(path, (8, 4.8))
    ax, apart = figure.subplots(1, 2, sharey=True, width_ratios=(6, 1))
    measured = spans[~censored]
    top = max(float(measured.max()) if measured.size else 2.0, 2.0)
    bins = np.unique(np.geomspace(1, top, 20).round())
    ax.hist(measured, bins=bins.tolist(), color=BLUE, edgecolor="white")
    ax.set_xscale("log")
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if t <= 1.5 * top]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set(xlabel="memory span: steps until 1/e of a written value remains", ylabel="units")
    kept = int(censored.sum())
    apart.bar([0], [kept], width=0.6, color=ORANGE, hatch="//", edgecolor="white")
    apart.annotate(
        f"{kept} unit{'' if kept == 1 else 's'}",
        (0, kept),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        fontsize=9,
    )
    apart.set_xticks([0], [f"kept longer\nthan the\npassage\n({trace.steps} steps)"], fontsize=9)
    apart.set_xlim(-0.6, 0.6)
    for unit, name in (names or {}).items():
        target = apart if censored[unit] else ax
        x = 0.0 if censored[unit] else spans[unit]
        target.annotate(
            f"{unit}: {name.split(',')[0]}",
            (x, 0),
            xytext=(0, 18 + 14 * (unit % 4)),
            textcoords="offset points",
            fontsize=8,
            color=VERMILLION,
            ha="center",
            arrowprops={"arrowstyle": "->", "color": VERMILLION},
            bbox=LABEL_BOX,
        )
    _titled(
        figure,
        "How long a unit's memory keeps what was written",
        "Per unit: the median number of steps until the forget gate's product f·f·… (the shares "
        "the Eraser leaves) has left 1/e of a written value.",
    )
    return _save(figure, path)


# -- gradient through time -----------------------------------------------------------------------
def gradient_through_time(
    trace: Trace,
    path: PathLike,
    *,
    layer: int = 0,
    direction: int = 0,
    batch: int = 0,
    loss: str = "the loss",
) -> Figure:
    """‖∂L/∂c_t‖ and ‖∂L/∂h_t‖ over t (log scale), after `trace.backward(...)` from `loss`
    (words for the caption, e.g. "the last character's loss")."""
    norms = trace.gradient_norms(layer, direction, batch)
    figure = _figure(path, (9, 4.6))
    ax = figure.subplots()
    steps = np.arange(trace.steps)
    tiny = np.finfo(np.float64).tiny  # a zero norm has no logarithm: drawn at the bottom
    ax.semilogy(steps, np.maximum(norms["c"], tiny), color=BLUE, label="‖∂L/∂c_t‖  memory c")
    ax.semilogy(
        steps, np.maximum(norms["h"], tiny), color=ORANGE, ls="--", label="‖∂L/∂h_t‖  output h"
    )
    ax.set(xlabel="step t", ylabel="gradient norm (log scale)")
    ax.legend()
    _titled(
        figure,
        "How far back one error reaches",
        f"The gradient of {loss} with respect to the memory and output at each earlier step t.",
    )
    return _save(figure, path)


# -- training curves -----------------------------------------------------------------------------
def training_curves(
    history: Sequence[Mapping[str, float]],
    path: PathLike,
    *,
    training: Sequence[Mapping[str, float]] = (),
    baseline: float | None = None,
    baseline_label: str = "baseline",
    metric: str = "loss",
) -> Figure:
    """Validation `metric` over steps (history: the trainer's evaluations), the training
    `metric` (entries with "step" and `metric`) if given, and a labelled baseline line, on a
    log axis so that a far baseline does not flatten the curves."""
    if not history:
        raise ValueError("history: nothing to plot (no evaluations recorded)")
    figure = _figure(path, (8, 4.8))
    ax = figure.subplots()
    if training:
        ax.plot(
            [h["step"] for h in training],
            [h[metric] for h in training],
            color=ORANGE,
            label=f"training {metric}",
        )
    ax.plot(
        [h["step"] for h in history],
        [h[metric] for h in history],
        color=BLUE,
        marker="o",
        label=f"validation {metric}",
    )
    if baseline is not None:
        ax.axhline(baseline, color=GREY, ls="--", label=baseline_label)
        ax.annotate(
            f"{baseline_label}: {baseline:.2f}",
            (0.99, baseline),
            xycoords=("axes fraction", "data"),
            xytext=(0, 4),
            textcoords="offset points",
            ha="right",
            fontsize=9,
            color=GREY,
        )
    _log_axis(ax)
    ax.set(xlabel="training step", ylabel=f"{metric} (log scale)")
    ax.legend()
    _titled(
        figure,
        "Learning: the loss over training",
        f"Training {metric} (averaged between logs) and validation {metric} at each evaluation;"
        " lower is better.",
    )
    return _save(figure, path)


def _log_axis(ax: Axes) -> None:
    """A log y axis with plain-number ticks (1.5, 2, 3 — not 10^0.2)."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    plain = ScalarFormatter()
    plain.set_scientific(False)
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())
