"""numpy-lstm: an LSTM from scratch in NumPy — forward, BPTT and training — exact against PyTorch.

Gate vocabulary (PyTorch order i, f, g, o): the Filter (input gate i), the Eraser (forget gate f),
the Writer (candidate g) and the Presenter (output gate o).
"""

from .core.cell import GATE_ROLES, GATES, LSTMWeights, sigmoid
from .inspect.trace import Trace, trace
from .nn.layers import Embedding, Linear, LSTMCell
from .nn.lstm import LSTM
from .nn.module import Module
from .nn.rnn import RNN

__version__ = "0.1.0"

__all__ = [
    "GATES",
    "GATE_ROLES",
    "LSTM",
    "RNN",
    "Embedding",
    "LSTMCell",
    "LSTMWeights",
    "Linear",
    "Module",
    "Trace",
    "sigmoid",
    "trace",
]
