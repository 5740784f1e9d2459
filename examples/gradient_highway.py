"""The adding problem at T = 100, an LSTM against a plain tanh RNN with the same budget, and the
gradient highway that makes the difference.

    python examples/gradient_highway.py        # writes docs/gradient_highway.png

Both models have 32 units and are trained identically (same steps, batch, optimizer, learning
rate, clipping and seed). Prints each one's final test MSE next to the always-predict-1
baseline, then draws how much of one error at the final step reaches each earlier step.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from numpy_lstm.inspect.highway import gradient_reach, highway_figure
from numpy_lstm.tasks import AddingTask
from numpy_lstm.train import Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam

OUT = Path(__file__).resolve().parent.parent / "docs" / "gradient_highway.png"
T, HIDDEN, BATCH, STEPS, LR = 100, 32, 64, 3000, 1e-2


def train(cell: str) -> AddingTask:
    task = AddingTask(T=T, hidden_size=HIDDEN, batch_size=BATCH, eval_size=1000, seed=0, cell=cell)
    config = TrainerConfig(steps=STEPS, eval_every=STEPS, progress=False)
    start = time.perf_counter()
    Trainer(task, Adam(task.model, lr=LR), config=config, out=io.StringIO()).fit()
    task.model.eval()
    seconds = time.perf_counter() - start
    print(
        f"{cell.upper():4s} test MSE {task.evaluate()['mse']:.4f}  "
        f"(always-predict-1 baseline {task.baseline()['mse']:.4f}; {seconds:.0f} s)"
    )
    return task


def main(out: Path = OUT) -> None:
    print(f"adding problem, T = {T}: {HIDDEN} units, {STEPS} Adam steps (lr {LR}) of {BATCH}")
    lstm, rnn = train("lstm"), train("rnn")
    x = lstm.eval_x[:, 0]  # one test sequence (T, 2); both tasks hold the same held-out set
    assert np.array_equal(x, rnn.eval_x[:, 0])
    lstm_reach, rnn_reach = gradient_reach(lstm.model, x), gradient_reach(rnn.model, x)
    for name, reach in (("LSTM ‖∂L/∂c_t‖", lstm_reach), ("RNN  ‖∂L/∂h_t‖", rnn_reach)):
        print(f"{name}: at t = T−1 {reach[-1]:.3g}, at t = 0 {reach[0]:.3g}")
    marks = np.flatnonzero(x[:, 1] > 0.5)
    highway_figure(lstm_reach, rnn_reach, out, marks=marks)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
