"""Hand-made features of a text, and the units of a trace that track them best.

Karpathy, Johnson & Fei-Fei (2015) found char-LM cells that switch on inside quotes, count the
position in a line, or track bracket depth. These functions make that search repeatable: a few
features computed from the text alone, and for each the unit whose value correlates with it most.

Every feature at step t describes the state *after reading* character t — what an LSTM's c_t and
h_t can know. So the opening quote is already "inside" and the closing quote already "outside".
"""

from __future__ import annotations

import numpy as np

from .trace import Trace

OPENING, CLOSING = "([{", ")]}"
QUANTITIES = ("c", "h", "i", "f", "g", "o")
# The memory and the output are coloured on each unit's own scale: this percentile of |value|.
# A high percentile rather than the maximum, so one spike does not wash out the rest of the text.
SCALE_PERCENTILE = 98.0
SCALED = ("c", "h")
MIN_R = 0.3  # a weaker correlation is not visible in the colours, so it is not offered


def text_features(text: str) -> dict[str, np.ndarray]:
    """Four features of `text`, each (N,) float64 with N = len(text):

    - "inside quotes": 1 between a double quote (") and the next one — opening quote included,
      closing quote excluded (the state after reading it);
    - "inside brackets": 1 while at least one (, [ or { is open; unmatched closers are ignored;
    - "position in line": characters read since the last newline (0 right after one), divided
      by the largest such count in the text, so it lies in [0, 1];
    - "after newline": 1 at the steps whose character is a newline.
    """
    chars = np.array(list(text), dtype="<U1") if text else np.zeros(0, dtype="<U1")
    quotes = np.cumsum(chars == '"') % 2 == 1
    depth, inside_brackets = 0, np.zeros(len(text), dtype=bool)
    for t, ch in enumerate(text):  # a running depth clipped at 0: no vectorised form needed
        if ch in OPENING:
            depth += 1
        elif ch in CLOSING:
            depth = max(depth - 1, 0)
        inside_brackets[t] = depth > 0
    newline = chars == "\n"
    steps = np.arange(len(text))
    last_newline = np.maximum.accumulate(np.where(newline, steps, -1)) if len(text) else steps
    position = (steps - last_newline).astype(np.float64)
    if position.size and position.max() > 0:
        position /= position.max()
    return {
        "inside quotes": quotes.astype(np.float64),
        "inside brackets": inside_brackets.astype(np.float64),
        "position in line": position,
        "after newline": newline.astype(np.float64),
    }


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of values (N, H) with feature (N,) → (H,).

    A constant column (or a constant feature) correlates 0 with everything, rather than NaN.
    """
    x = values.astype(np.float64) - values.mean(axis=0, dtype=np.float64)
    y = feature.astype(np.float64) - feature.mean(dtype=np.float64)
    scale = np.sqrt((x * x).sum(axis=0) * (y @ y))
    covariance = y @ x
    return np.divide(covariance, scale, out=np.zeros_like(covariance), where=scale > 0)


def best_units(values: np.ndarray, features: dict[str, np.ndarray]) -> dict[str, tuple[int, float]]:
    """For each feature (N,), the column of values (N, H) with the largest |Pearson r|, and r.

    Features that are constant over the N steps (a text without quotes…) are left out: every
    unit correlates 0 with them, so no unit can be said to track them.
    """
    ranked = {}
    for name, feature in features.items():
        if len(feature) != len(values):
            raise ValueError(f"{name}: expected {len(values)} steps, got {len(feature)}")
        if np.ptp(feature) == 0:
            continue
        r = correlations(values, feature)
        unit = int(np.argmax(np.abs(r)))
        ranked[name] = (unit, float(r[unit]))
    return ranked


def robust_scale(values: np.ndarray) -> np.ndarray:
    """values (N, H) → (H,) float64: each unit's SCALE_PERCENTILE-th percentile of |value|, the
    value its colour saturates at; a unit that is (nearly) always 0 gets 1, so it stays pale."""
    if len(values) == 0:
        return np.ones(values.shape[1:], dtype=np.float64)
    scale = np.percentile(np.abs(values.astype(np.float64)), SCALE_PERCENTILE, axis=0)
    return np.where(scale > 1e-6, scale, 1.0)


def displayed_values(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """values (N, H) on each unit's scale (H,) → (N, H) in [−1, 1]: what the page's colours show
    (−1 and +1 are the palette's ends; anything beyond the scale is drawn at the end)."""
    return np.clip(values.astype(np.float64) / scale, -1.0, 1.0)


def colour_spread(shown: np.ndarray, width: float = 0.2) -> float:
    """shown (N,) in [−1, 1] → the largest share of the N values inside any one window of
    `width` (0.2 is a tenth of the 2-wide colour scale). Near 1: the unit looks like one flat
    colour, whatever it computes; a pick that tracks a feature visibly stays well below."""
    x = np.sort(np.asarray(shown, dtype=np.float64))
    if x.size == 0:
        return 0.0
    # for each value, how many lie in [x, x + width]: the densest window starts at a value
    ends = np.searchsorted(x, x + width + 1e-12, side="right")
    return float((ends - np.arange(x.size)).max() / x.size)


def unit_values(
    trace: Trace, quantity: str = "c", layer: int = 0, direction: int = 0, batch: int = 0
) -> np.ndarray:
    """(T, H) the values of one quantity for one sequence: the memory c, the output h, or a gate
    (i, f, g, o or their role names)."""
    if quantity == "c":
        return trace.layer(layer, direction).c[:, batch]
    if quantity == "h":
        return trace.layer(layer, direction).h[:, batch]
    return trace.gate(quantity, layer, direction)[:, batch]


def rank_units(
    trace: Trace,
    features: dict[str, np.ndarray],
    quantity: str = "c",
    *,
    layer: int = 0,
    direction: int = 0,
    batch: int = 0,
    displayed: bool = True,
    min_r: float = MIN_R,
    max_spread: float = 0.8,
) -> dict[str, tuple[int, float]]:
    """For each feature (N,) of the first N steps, the unit whose `quantity` tracks it best:
    {name: (unit, r)}, by |Pearson r| over the valid steps of sequence `batch`.

    displayed: correlate what the explorer page *shows* — c and h on each unit's robust scale,
    clipped (:func:`displayed_values`) — so a pick is a unit whose colours visibly follow the
    feature, not one whose raw memory drifts with it while its colour stays saturated. Then a
    unit qualifies only if |r| ≥ min_r and its colours are not flat (:func:`colour_spread` ≤
    max_spread); a feature no unit qualifies for is left out.
    """
    values = unit_values(trace, quantity, layer, direction, batch)
    lengths = {len(f) for f in features.values()}
    if len(lengths) > 1 or (lengths and max(lengths) > len(values)):
        raise ValueError(f"features: expected one length ≤ {len(values)} steps, got {lengths}")
    n = lengths.pop() if lengths else 0
    valid = trace.valid[:n, batch]
    chosen = {k: f[valid] for k, f in features.items()}
    if not displayed:
        return best_units(values[:n][valid], chosen)
    shown = values[:n][valid].astype(np.float64)
    if quantity in SCALED:
        shown = displayed_values(shown, robust_scale(shown))
    width = 0.2 if quantity in ("c", "h", "g") else 0.1  # a tenth of [−1, 1] or of [0, 1]
    spread = np.array([colour_spread(shown[:, u], width) for u in range(shown.shape[1])])
    ranked = {}
    for name, feature in chosen.items():
        if np.ptp(feature) == 0:
            continue
        r = np.where(spread <= max_spread, correlations(shown, feature), 0.0)
        unit = int(np.argmax(np.abs(r)))
        if abs(r[unit]) >= min_r:
            ranked[name] = (unit, float(r[unit]))
    return ranked
