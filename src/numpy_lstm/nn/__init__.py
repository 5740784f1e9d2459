"""Stateful layers with torch's names over the pure functions: `Module`, `Linear`, `Embedding`,
`LSTMCell`, `LSTM`, the composite models, initialisation, and the Deep-ML
#59 class."""

from .layers import Embedding, Linear, LSTMCell
from .lstm import LSTM
from .models import SequenceModel, SequenceToOne
from .module import Module

__all__ = ["LSTM", "Embedding", "LSTMCell", "Linear", "Module", "SequenceModel", "SequenceToOne"]
