"""Quantitative demonstrations that the gates do what their names say, found automatically."""

from __future__ import annotations

import io

import numpy as np

import numpy_lstm
from numpy_lstm.tasks import AddingTask
from numpy_lstm.tasks.synthetic import adding_gate_evidence
from numpy_lstm.train import Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam


def test_adding_problem_units_filter_the_marked_values_and_keep_them() -> None:
    """Trained to MSE < 0.01 at T = 50, some unit's Filter opens at the two marked steps (mean
    ≥ 10× elsewhere) while its Eraser stays ≥ 0.95 between them — read from the trace."""
    task = AddingTask(T=50, hidden_size=16, batch_size=64, eval_size=500, seed=0)
    config = TrainerConfig(steps=1000, eval_every=1000, progress=False)
    result = Trainer(task, Adam(task.model, lr=1e-2), config=config, out=io.StringIO()).fit()
    assert result["last"]["mse"] < 0.01 < task.baseline()["mse"]
    task.model.eval()
    evidence = adding_gate_evidence(numpy_lstm.trace(task.model.lstm, task.eval_x), task.eval_x)
    assert len(evidence["units"]) >= 1
    best = evidence["units"][np.argmax(evidence["filter_ratio"][evidence["units"]])]
    assert evidence["filter_ratio"][best] >= 10 and evidence["eraser_between"][best] >= 0.95
    # The other units are not like that: the finding is specific, not a property of any LSTM.
    untrained = AddingTask(T=50, hidden_size=16, eval_size=500, seed=0)
    baseline = adding_gate_evidence(
        numpy_lstm.trace(untrained.model.lstm, untrained.eval_x), untrained.eval_x
    )
    assert len(baseline["units"]) == 0
