"""Serve a numpy-lstm model with ONNX Runtime: variable-length requests, one batch, one graph.

    python examples/ort_serving.py

A server collects requests of different lengths, pads them into one batch and passes the true
lengths; the exported graph feeds them to ONNX's `sequence_lens`, so padding never leaks into a
request's outputs or final state. Each request's answer equals what numpy-lstm computes for that
request alone. The same graph (symbolic `batch` and `sequence` axes) serves any batch shape, and
ONNX Runtime runs it from C, C++, C#, Java, JavaScript or Python alike.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

import numpy_lstm
from numpy_lstm.io.onnx import export_onnx
from numpy_lstm.nn.models import SequenceModel

FEATURES, HIDDEN, LAYERS, CLASSES = 4, 32, 2, 3


def build_model() -> SequenceModel:
    """A 2-layer, batch-first LSTM with a Linear head on every step, in evaluation mode."""
    lstm = numpy_lstm.LSTM(FEATURES, HIDDEN, num_layers=LAYERS, batch_first=True, rng=0)
    model = SequenceModel(lstm, numpy_lstm.Linear(HIDDEN, CLASSES, rng=1))
    model.eval()  # no dropout here, but a served model is always in evaluation mode
    return model


def open_session(model: SequenceModel, path: Path) -> onnxruntime.InferenceSession:
    """Export `model` to `path` with a `lengths` input and open it in ONNX Runtime (CPU)."""
    export_onnx(model, path, with_lengths=True)
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def pad(requests: list[np.ndarray], fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """requests, each (T_i, I) → x (B, max T_i, I) padded with `fill`, lengths (B,) int32."""
    lengths = np.array([len(r) for r in requests], dtype=np.int32)
    x = np.full((len(requests), int(lengths.max()), FEATURES), fill, dtype=np.float32)
    for row, request in zip(x, requests, strict=True):
        row[: len(request)] = request
    return x, lengths


@dataclass
class Answer:
    """One request's result: y (T_i, classes) for its own steps, h_n and c_n (layers, H)."""

    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray


def serve(
    session: onnxruntime.InferenceSession, requests: list[np.ndarray], fill: float = 0.0
) -> list[Answer]:
    """Every request through one `session.run`; the answers cut back to each request's length."""
    x, lengths = pad(requests, fill)
    y, h_n, c_n = session.run(["output", "h_n", "c_n"], {"x": x, "lengths": lengths})
    return [Answer(y[b, :n], h_n[:, b], c_n[:, b]) for b, n in enumerate(lengths)]


def alone(model: SequenceModel, request: np.ndarray) -> Answer:
    """What numpy-lstm computes for `request` (T, I) by itself: a batch of one, no padding."""
    y, (h_n, c_n) = model(request[None])
    return Answer(y[0], h_n[:, 0], c_n[:, 0])


def worst_gap(answers: list[Answer], references: list[Answer]) -> float:
    """max |difference| over every request's y, h_n and c_n."""
    return max(
        float(np.max(np.abs(getattr(a, f) - getattr(r, f))))
        for a, r in zip(answers, references, strict=True)
        for f in ("y", "h_n", "c_n")
    )


def requests_of(lengths: list[int], seed: int) -> list[np.ndarray]:
    """Random requests (T_i, I) float32 of the given lengths."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, FEATURES)).astype(np.float32) for n in lengths]


def main() -> float:
    model = build_model()
    with tempfile.TemporaryDirectory() as tmp:
        session = open_session(model, Path(tmp) / "model.onnx")
        names = [(i.name, i.shape) for i in session.get_inputs()]
        print(f"graph inputs {names}; outputs {[o.name for o in session.get_outputs()]}")
        gaps = []
        for lengths, seed in (([5, 17, 1, 9, 12, 3], 0), ([40, 2], 1)):
            requests = requests_of(lengths, seed)
            answers = serve(session, requests)
            gaps.append(worst_gap(answers, [alone(model, r) for r in requests]))
            print(
                f"{len(requests)} requests of lengths {lengths}, padded to {max(lengths)}, one "
                f"run: max |ONNX Runtime − numpy-lstm alone| = {gaps[-1]:.1e} (y, h_n, c_n)"
            )
    return max(gaps)


if __name__ == "__main__":
    main()
