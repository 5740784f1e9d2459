"""Hand-made features of a text, and the units of a trace that track them best.

Karpathy, Johnson & Fei-Fei (2015) found char-LM cells that switch on inside quotes, count the
position in a line, or track bracket depth. These functions make that search repeatable: a few
features computed from the text alone — here of Python source, the demo's corpus, read the way
Python's own tokenizer reads it — and for each the unit whose value correlates with it most.

Every feature at step t describes the state *after reading* character t — what an LSTM's c_t and
h_t can know. So the opening quote is already "inside" and the closing quote already "outside".
"""

from __future__ import annotations

import io
import tokenize

import numpy as np

from .trace import Trace

OPENING, CLOSING = "([{", ")]}"
QUOTES = "'\""
# The letters that may stand right before a string's opening quote: r"…", b'…', f"…", rb'…'…
STRING_PREFIXES = frozenset({"", "r", "u", "b", "f", "br", "rb", "fr", "rf"})
QUANTITIES = ("c", "h", "i", "f", "g", "o")
# The memory and the output are coloured on each unit's own scale: this percentile of |value|.
# A high percentile rather than the maximum, so one spike does not wash out the rest of the text.
SCALE_PERCENTILE = 98.0
SCALED = ("c", "h")
MIN_R = 0.3  # a weaker correlation is not visible in the colours, so it is not offered


def text_features(text: str) -> dict[str, np.ndarray]:
    """Seven features of `text`, each (N,) float64 with N = len(text), read as Python source
    (:func:`strings_and_comments`); on other text the string and comment features are rarely
    set, the rest mean the same:

    - "inside a string": 1 from a string's opening quote up to, not including, the last
      character of its closing quote(s) (the state after reading it is outside) — ', ", triple
      quotes, prefixes (r"…" is inside from the quote), escapes;
    - "inside a comment": 1 from # to the end of its line, the newline excluded;
    - "inside brackets": 1 while at least one (, [ or { of the code is open — brackets in
      strings and comments do not count; unmatched closers are ignored;
    - "bracket depth": how many are open, divided by the most at once in the text, in [0, 1];
    - "indentation": the spaces and tabs read since the newline before any other character
      (0 right after a newline, constant once the line's first other character is read),
      divided by the largest such count in the text;
    - "position in line": characters read since the last newline (0 right after one), divided
      by the largest such count in the text, so it lies in [0, 1];
    - "after newline": 1 at the steps whose character is a newline.
    """
    in_string, in_comment = strings_and_comments(text)
    depth = bracket_depth(text, in_string | in_comment)
    chars = np.array(list(text), dtype="<U1") if text else np.zeros(0, dtype="<U1")
    newline = chars == "\n"
    steps = np.arange(len(text))
    last_newline = np.maximum.accumulate(np.where(newline, steps, -1)) if len(text) else steps
    position = (steps - last_newline).astype(np.float64)
    return {
        "inside a string": in_string.astype(np.float64),
        "inside a comment": in_comment.astype(np.float64),
        "inside brackets": (depth > 0).astype(np.float64),
        "bracket depth": _normalised(depth),
        "indentation": _normalised(leading_whitespace(text)),
        "position in line": _normalised(position),
        "after newline": newline.astype(np.float64),
    }


def _normalised(counts: np.ndarray) -> np.ndarray:
    """counts (N,) ≥ 0 → float64 divided by their maximum (unchanged when that is 0)."""
    values = counts.astype(np.float64)
    return values / values.max() if values.size and values.max() > 0 else values


def leading_whitespace(text: str) -> np.ndarray:
    """(N,) int: the spaces and tabs read since the last newline before any other character —
    counting up through a line's indentation, then constant to the end of the line; 0 at a
    newline."""
    count, counting, counts = 0, True, np.zeros(len(text), dtype=np.int64)
    for t, ch in enumerate(text):
        if ch == "\n":
            count, counting = 0, True
        elif counting and ch in " \t":
            count += 1
        else:
            counting = False
        counts[t] = count
    return counts


def bracket_depth(text: str, ignored: np.ndarray) -> np.ndarray:
    """(N,) int: the brackets open after reading character t, counting only characters where
    `ignored` (N,) bool is False (strings and comments); unmatched closers are ignored."""
    depth, depths = 0, np.zeros(len(text), dtype=np.int64)
    for t, ch in enumerate(text):  # a running depth clipped at 0: no vectorised form needed
        if not ignored[t]:
            if ch in OPENING:
                depth += 1
            elif ch in CLOSING:
                depth = max(depth - 1, 0)
        depths[t] = depth
    return depths


def strings_and_comments(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(inside a string, inside a comment), each (N,) bool, for `text` read as Python source
    from outside any string (the state after reading each character, as in
    :func:`text_features`).

    Exact where the text tokenizes: Python's own `tokenize` finds the strings and comments.
    A passage cut out of a file often does not (an unclosed bracket or string at its end, an
    indentation its start never opened), and prose never does; then :func:`scan_strings`, a
    scanner with the tokenizer's rules for quotes, prefixes, escapes and comments, reads it.
    """
    spans = _tokenized_spans(text)
    if spans is None:
        return scan_strings(text)
    in_string, in_comment = np.zeros(len(text), bool), np.zeros(len(text), bool)
    for kind, start, end in spans:
        if kind == "string":
            opening = start + next(k for k, ch in enumerate(text[start:end]) if ch in QUOTES)
            in_string[opening : end - 1] = True
        else:
            in_comment[start:end] = True
    return in_string, in_comment


def _tokenized_spans(text: str) -> list[tuple[str, int, int]] | None:
    """[("string" | "comment", start, end)] character offsets from `tokenize`, or None where
    the text does not tokenize cleanly."""
    line_starts = [0]
    for line in io.StringIO(text):  # the lines tokenize sees: split after each "\n"
        line_starts.append(line_starts[-1] + len(line))
    fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python ≥ 3.12
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    spans: list[tuple[str, int, int]] = []
    open_fstrings: list[int] = []  # where each f-string still open began (they nest)
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.ERRORTOKEN:
                return None
            start = line_starts[token.start[0] - 1] + token.start[1]
            end = line_starts[token.end[0] - 1] + token.end[1]
            if token.type == tokenize.STRING and not open_fstrings:
                spans.append(("string", start, end))
            elif token.type == tokenize.COMMENT and not open_fstrings:
                spans.append(("comment", start, end))
            elif token.type == fstring_start:
                open_fstrings.append(start)
            elif token.type == fstring_end:
                first = open_fstrings.pop()
                if not open_fstrings:  # an f-string and everything nested in it: one string
                    spans.append(("string", first, end))
    except (tokenize.TokenError, SyntaxError):  # IndentationError is a SyntaxError
        return None
    return spans


def scan_strings(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(inside a string, inside a comment), each (N,) bool: a character scanner with Python's
    rules, for text that may start or end anywhere.

    Outside strings, # starts a comment that the newline ends; ' or " opens a string unless a
    name other than a string prefix (r, b, f, rb…) stands right before it — the apostrophe of
    "don't" opens nothing. A string of one quote ends at the same quote or, unclosed, at the
    newline; a triple-quoted one at the same three quotes; a backslash makes the next
    character part of the string, whatever it is (a quote, a newline).
    """
    n = len(text)
    in_string, in_comment = np.zeros(n, bool), np.zeros(n, bool)
    t = 0
    while t < n:
        ch = text[t]
        if ch == "#":
            end = text.find("\n", t)
            end = n if end < 0 else end
            in_comment[t:end] = True
            t = end
        elif ch in QUOTES and _may_open_string(text, t):
            t = _scan_one_string(text, t, in_string)
        else:
            t += 1
    return in_string, in_comment


def _may_open_string(text: str, t: int) -> bool:
    """Whether the quote at t may open a string: the name right before it, if any, is a string
    prefix (and is not itself the end of a longer name)."""
    start = t
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    return text[start:t].lower() in STRING_PREFIXES


def _scan_one_string(text: str, t: int, in_string: np.ndarray) -> int:
    """Mark the string whose opening quote is at t; return the index after it."""
    quote = text[t]
    triple = text.startswith(quote * 3, t)
    closing = quote * 3 if triple else quote
    k = t + len(closing)
    while k < len(text):
        ch = text[k]
        if ch == "\\":
            k += 2
        elif text.startswith(closing, k):
            in_string[t : k + len(closing) - 1] = True
            return k + len(closing)
        elif ch == "\n" and not triple:  # a one-quote string cannot cross a line
            in_string[t:k] = True
            return k
        else:
            k += 1
    in_string[t:] = True  # still open where the text ends
    return len(text)


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
