"""Where a text feature begins and ends: the characters worth narrating for a unit that tracks it.

A unit found to track "inside quotes" is best explained at the opening and the closing quote —
the steps where its feature switches — not at the steps where its memory happened to change
most. These pure functions find those steps from the text alone, for the feature names of
:func:`numpy_lstm.inspect.features.text_features`:

- "inside quotes": each opening and each closing double quote;
- "inside brackets": each opening bracket read at depth 0 and the closing bracket that brings
  the depth back to 0 (the same running depth as the feature: unmatched closers are ignored);
- "after newline" and "position in line": each newline (where the line count restarts).

Step t is the step that reads character t, as in a trace of the text.
"""

from __future__ import annotations

from typing import NamedTuple

OPENING, CLOSING = "([{", ")]}"


class Event(NamedTuple):
    step: int  # the step reading the character
    what: str  # "opening quote", "closing quote", "opening bracket", "closing bracket", "newline"


def quote_events(text: str) -> list[Event]:
    """Every double quote, alternately opening and closing."""
    quotes = [t for t, ch in enumerate(text) if ch == '"']
    return [Event(t, "closing quote" if k % 2 else "opening quote") for k, t in enumerate(quotes)]


def bracket_events(text: str) -> list[Event]:
    """The brackets where the depth leaves 0 (opening) and returns to 0 (closing)."""
    events, depth = [], 0
    for t, ch in enumerate(text):
        if ch in OPENING:
            if depth == 0:
                events.append(Event(t, "opening bracket"))
            depth += 1
        elif ch in CLOSING and depth > 0:
            depth -= 1
            if depth == 0:
                events.append(Event(t, "closing bracket"))
    return events


def newline_events(text: str) -> list[Event]:
    """Every newline."""
    return [Event(t, "newline") for t, ch in enumerate(text) if ch == "\n"]


FEATURE_EVENTS = {
    "inside quotes": quote_events,
    "inside brackets": bracket_events,
    "after newline": newline_events,
    "position in line": newline_events,
}


def feature_events(text: str, feature: str) -> list[Event]:
    """The steps where `feature` begins or ends in `text`, in order; [] for a feature without
    known events (a caller may then fall back to other steps)."""
    find = FEATURE_EVENTS.get(feature)
    return find(text) if find is not None else []


def first_of_each(events: list[Event], per_kind: int) -> list[Event]:
    """The first `per_kind` events of each kind, in step order: an opening *and* a closing
    quote rather than the passage's first few quotes of whichever kind."""
    if per_kind < 0:
        raise ValueError(f"per_kind: expected ≥ 0, got {per_kind}")
    seen: dict[str, int] = {}
    chosen = []
    for event in events:
        if seen.get(event.what, 0) < per_kind:
            seen[event.what] = seen.get(event.what, 0) + 1
            chosen.append(event)
    return chosen
