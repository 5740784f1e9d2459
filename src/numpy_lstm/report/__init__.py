"""Reports on traces: the self-contained HTML gate explorer and the features it highlights."""

from .explorer import write_explorer
from .features import rank_units, text_features

__all__ = ["rank_units", "text_features", "write_explorer"]
