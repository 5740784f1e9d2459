"""`evaluating(model)`: evaluation mode (no dropout) inside the block, and every sub-module's
previous mode back after it — also when the block raises."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_lstm.nn.layers import Linear
from numpy_lstm.nn.lstm import LSTM
from numpy_lstm.nn.models import SequenceModel
from numpy_lstm.nn.module import evaluating


def dropout_model() -> SequenceModel:
    lstm = LSTM(3, 4, num_layers=2, dropout=0.5, dtype=np.float64, rng=0)
    return SequenceModel(lstm, Linear(4, 2, dtype=np.float64, rng=1))


def test_dropout_is_off_inside_and_every_mode_comes_back_after_an_error() -> None:
    x = np.random.default_rng(2).normal(size=(5, 2, 3))
    model = dropout_model()
    model.head.eval()  # a mixed state: only the exact previous modes will do afterwards
    expected = dropout_model().eval()(x)[0]  # the same weights, evaluated without dropout

    with pytest.raises(RuntimeError, match="inside"), evaluating(model) as inside:
        assert inside is model
        assert not any(module.training for module in model.modules())
        np.testing.assert_array_equal(model(x)[0], expected)  # no dropout mask drawn
        np.testing.assert_array_equal(model(x)[0], expected)
        raise RuntimeError("inside")

    assert model.training and model.lstm.training and not model.head.training
    # dropout is back: two training-mode passes draw different masks and differ from eval
    first, second = model(x)[0], model(x)[0]
    assert not np.allclose(first, second) and not np.allclose(first, expected)


def test_an_eval_mode_model_stays_in_eval_mode() -> None:
    model = dropout_model().eval()
    with evaluating(model):
        pass
    assert not any(module.training for module in model.modules())
