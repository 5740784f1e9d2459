"""Train an LSTM on the adding problem (T = 50) and draw what its gates do.

    python examples/adding_gates.py            # writes docs/adding_gates.png

Finds, from the trace alone, the unit whose Filter opens only at the two marked steps and
whose forget gate keeps the memory in between (the Eraser wipes almost nothing, 1 − f ≈ 0),
and plots all four gates of the top units for one test sequence.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

import numpy_lstm
from numpy_lstm.inspect.figures import gate_heatmaps
from numpy_lstm.tasks import AddingTask
from numpy_lstm.tasks.synthetic import adding_gate_evidence
from numpy_lstm.train import Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam

OUT = Path(__file__).resolve().parent.parent / "docs" / "adding_gates.png"


def main(out: Path = OUT) -> None:
    task = AddingTask(T=50, hidden_size=16, batch_size=64, eval_size=500, seed=0)
    config = TrainerConfig(steps=1000, eval_every=500, progress=False)
    Trainer(task, Adam(task.model, lr=1e-2), config=config, out=io.StringIO()).fit()
    task.model.eval()
    trace = numpy_lstm.trace(task.model.lstm, task.eval_x)
    evidence = adding_gate_evidence(trace, task.eval_x)
    ranked = np.argsort(-evidence["filter_ratio"])[:4]
    for unit in ranked:
        print(
            f"unit {unit}: Filter {evidence['filter_ratio'][unit]:.1f}× higher at the marks, "
            f"forget gate f (kept) {evidence['eraser_between'][unit]:.3f} between them"
        )
    one = task.eval_x[:, :1]
    tokens = ["●" if mark else "·" for mark in one[:, 0, 1] > 0.5]
    gate_heatmaps(numpy_lstm.trace(task.model.lstm, one), out, tokens, units=sorted(ranked))
    print(f"MSE {task.evaluate()['mse']:.4f} (baseline {task.baseline()['mse']:.3f}); wrote {out}")


if __name__ == "__main__":
    main()
