"""What a learner sees: gate traces, the features units track, figures and the HTML explorer.

trace      numpy_lstm.trace(lstm, x): every gate, memory and output per step and unit
features   text features (inside quotes, bracket depth, …) and the units that track them
figures    matplotlib figures of a trace (the `plot` extra)
explorer   the self-contained HTML gate explorer
predict    a char-LM's next-character predictions and what drove them (gradient × input)
"""

from .explorer import write_explorer
from .features import rank_units, text_features
from .predict import Predictions, next_characters
from .trace import Trace, trace

__all__ = [
    "Predictions",
    "Trace",
    "next_characters",
    "rank_units",
    "text_features",
    "trace",
    "write_explorer",
]
