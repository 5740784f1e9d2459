"""The Deep-ML #59 `LSTM` class (`from numpy_lstm.deepml import LSTM`); it lives in
:mod:`numpy_lstm.nn.deepml`."""

from .nn.deepml import LSTM

__all__ = ["LSTM"]
