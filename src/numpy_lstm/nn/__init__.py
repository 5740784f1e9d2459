"""Stateful layers with torch's names over the pure functions: `Module`, `Linear`, `Embedding`,
`LSTMCell`, `LSTM`, the plain `RNN`, the composite models, initialisation, and the Deep-ML
#59 class."""

from .layers import Embedding, Linear, LSTMCell
from .lstm import LSTM
from .models import SequenceModel, SequenceToOne
from .module import Module
from .rnn import RNN

__all__ = [
    "LSTM",
    "RNN",
    "Embedding",
    "LSTMCell",
    "Linear",
    "Module",
    "SequenceModel",
    "SequenceToOne",
]
