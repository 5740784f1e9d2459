"""The gradient highway: how much of one late error reaches each earlier step, LSTM vs plain RNN.

    reach = gradient_reach(model, x)          # (T,): ‖∂L/∂c_t‖ (LSTM) or ‖∂L/∂h_t‖ (RNN)
    highway_figure(lstm_reach, rnn_reach, "highway.png")

The error is the one at the final step of a many-to-one model (:class:`SequenceToOne`): its
prediction ŷ = head(h_T). Going back one step, the LSTM's memory gradient is multiplied by the
forget gate f_t (the share kept: near 1 when the Eraser wipes nothing — the highway), the plain
RNN's by W_hhᵀ·diag(1 − h_t²) (which shrinks it step after step). So the LSTM's curve stays
level where the RNN's falls by orders of magnitude: the reason the plain RNN cannot learn long
spans.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..nn.lstm import LSTM
from ..nn.models import SequenceToOne
from .trace import trace

if TYPE_CHECKING:  # matplotlib is optional (the `plot` extra): imported only when drawing
    from matplotlib.figure import Figure

PathLike = str | os.PathLike[str]

# Okabe & Ito's colour-blind-safe palette: blue and vermillion differ for every colour vision.
LSTM_COLOUR, RNN_COLOUR = "#0072B2", "#D55E00"


def gradient_reach(
    model: SequenceToOne, x: ArrayLike, d_prediction: ArrayLike | None = None
) -> np.ndarray:
    """For one sequence x (T, I), the norm of the gradient of the final step's error at every
    step t (T,): ‖∂L/∂c_t‖ through the memory of an LSTM model (its last layer), ‖∂L/∂h_t‖ of a
    plain RNN model (its last layer).

    L = d_prediction · ŷ, i.e. `d_prediction` (out,) is ∂L/∂ŷ: for the MSE of a target y that
    is 2(ŷ − y); the default, ones, is an error of unit size — the same for both models, so
    their curves compare the paths and not how wrong each model happens to be. The model's own
    gradients (`grads`) are not touched.
    """
    recurrent = model.recurrent
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x: expected one sequence of shape (T, I), got {x.shape}")
    if isinstance(recurrent, LSTM) and recurrent.bidirectional:
        raise ValueError("model: expected a unidirectional LSTM (the final step is its last)")
    head = model.head
    out_features = head.out_features
    if d_prediction is None:
        dy = np.ones((1, out_features), dtype=recurrent.dtype)
    else:
        dy = np.asarray(d_prediction, dtype=recurrent.dtype).reshape(1, -1)
        if dy.shape != (1, out_features):
            raise ValueError(
                f"d_prediction: expected shape ({out_features},), got {np.shape(d_prediction)}"
            )
    d_last = dy @ head.weight  # (1, H): ∂L/∂h_T, without the head accumulating gradients
    top = recurrent.num_layers - 1
    if isinstance(recurrent, LSTM):
        recorded = trace(recurrent, x[:, None])
        dh_n = np.zeros((recurrent.num_layers, 1, recurrent.output_size), dtype=recurrent.dtype)
        dh_n[top] = d_last
        recorded.backward(None, (dh_n, None))
        dc = recorded.layer(top).dc
        assert dc is not None  # backward recorded it
        return np.linalg.norm(dc[:, 0], axis=-1)
    recurrent(x[:, None])
    dh_n = np.zeros((recurrent.num_layers, 1, recurrent.hidden_size), dtype=recurrent.dtype)
    dh_n[top] = d_last
    _, _, grads = recurrent.backward_pass(None, dh_n, record=True)
    dh = grads[top].dh
    assert dh is not None  # backward_pass recorded it
    return np.linalg.norm(dh[:, 0], axis=-1)


def highway_figure(
    lstm_reach: ArrayLike,
    rnn_reach: ArrayLike,
    path: PathLike,
    *,
    lstm_label: str = "LSTM, through its memory c:  ‖∂L/∂c_t‖",
    rnn_label: str = "plain RNN, through h:  ‖∂L/∂h_t‖",
    marks: ArrayLike | None = None,
) -> Figure:
    """The two curves of :func:`gradient_reach` (T,) each, on a log scale over the step t, saved
    as PNG or SVG (by the extension of `path`). Returns the Figure; its axes' two lines hold
    exactly the numbers given (zeros drawn at the smallest positive float: no log of 0), in that
    order. `marks`: steps to flag with a dotted vertical line (the adding problem's marked
    steps, where the inputs that matter enter)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise ValueError(f"path: expected a .png or .svg file, got {os.fspath(path)!r}")
    curves = {"lstm_reach": np.asarray(lstm_reach), "rnn_reach": np.asarray(rnn_reach)}
    for name, curve in curves.items():
        if curve.ndim != 1 or curve.size == 0:
            raise ValueError(f"{name}: expected a non-empty 1-D array (T,), got {curve.shape}")
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - exercised via the extra
        raise ImportError("figures need matplotlib: pip install 'numpy-lstm[plot]'") from err
    figure = Figure(figsize=(9, 4.8), layout="constrained")
    ax = figure.subplots()
    tiny = np.finfo(np.float64).tiny
    for curve, label, colour, style in (
        (curves["lstm_reach"], lstm_label, LSTM_COLOUR, "-"),
        (curves["rnn_reach"], rnn_label, RNN_COLOUR, "--"),
    ):
        steps = np.arange(curve.size)
        ax.semilogy(
            steps,
            np.maximum(curve.astype(np.float64), tiny),
            color=colour,
            ls=style,
            lw=2,
            label=label,
        )
    for k, step in enumerate(np.asarray([] if marks is None else marks).ravel()):
        ax.axvline(
            float(step), color="0.45", ls=":", lw=1.2, label="marked steps" if k == 0 else None
        )
    last = max(curves["lstm_reach"].size, curves["rnn_reach"].size) - 1
    ax.set(
        xlabel="step t  (the error is at the final step, on the right)",
        ylabel="gradient norm reaching step t (log scale)",
        xlim=(0, last),
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right")
    # The one idea as the title; the caption as the axes' title, so that the layout stacks
    # them instead of overlapping.
    figure.suptitle(
        "The gradient highway: the LSTM's memory carries the error back",
        fontsize=14,
        fontweight="bold",
    )
    ax.set_title(
        "How much of one error at the final step reaches each earlier step, in an LSTM and a "
        "plain RNN of the same size trained alike",
        fontsize=10,
        color="0.25",
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=130, bbox_inches="tight")
    return figure
