"""Where a text feature begins and ends: the characters worth narrating for a unit that tracks it.

A unit found to track "inside a string" is best explained at the opening and the closing quote —
the steps where its feature switches — not at the steps where its memory happened to change
most. These pure functions find those steps from the text alone, for the feature names of
:func:`numpy_lstm.inspect.features.text_features`, with the same reading of the text (strings
and comments as Python's tokenizer finds them, brackets in code only):

- "inside a string": each opening quote and the last character of each closing quote (a
  one-quote string left open ends at the newline: "unclosed string ends");
- "inside a comment": each # that starts a comment and the newline that ends it;
- "inside brackets": each opening bracket read at depth 0 and the closing bracket that brings
  the depth back to 0 (unmatched closers are ignored);
- "bracket depth": every opening and every (matched) closing bracket;
- "indentation": "indent" at the last space or tab of a line indented deeper than the line
  before (the previous line with other characters), "dedent" at the first other character of a
  line indented less;
- "after newline" and "position in line": each newline (where the line count restarts).

Step t is the step that reads character t, as in a trace of the text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .features import CLOSING, OPENING, strings_and_comments


class Event(NamedTuple):
    step: int  # the step reading the character
    what: str  # "opening quote", "closing quote", "comment starts", "opening bracket", "newline"…


def _edges(mask: np.ndarray, begins: str, ends: str) -> list[Event]:
    """The steps where mask (N,) bool switches on (`begins`) and off (`ends`)."""
    padded = np.concatenate([[False], mask]).astype(np.int8)
    change = np.diff(padded)
    return [Event(int(t), begins if change[t] > 0 else ends) for t in np.flatnonzero(change)]


def string_events(text: str) -> list[Event]:
    """Each string's opening quote and the last character of its closing quote(s)."""
    events = _edges(strings_and_comments(text)[0], "opening quote", "closing quote")
    return [Event(e.step, "unclosed string ends") if text[e.step] == "\n" else e for e in events]


def comment_events(text: str) -> list[Event]:
    """Each # that starts a comment and the newline that ends it."""
    return _edges(strings_and_comments(text)[1], "comment starts", "comment ends")


def _code_brackets(text: str) -> list[tuple[int, int]]:
    """(step, depth after it) for each bracket of the code that changes the depth."""
    in_string, in_comment = strings_and_comments(text)
    brackets, depth = [], 0
    for t, ch in enumerate(text):
        if in_string[t] or in_comment[t]:
            continue
        if ch in OPENING:
            depth += 1
            brackets.append((t, depth))
        elif ch in CLOSING and depth > 0:
            depth -= 1
            brackets.append((t, depth))
    return brackets


def bracket_events(text: str) -> list[Event]:
    """The brackets where the depth leaves 0 (opening) and returns to 0 (closing)."""
    events, before = [], 0
    for t, depth in _code_brackets(text):
        if before == 0:
            events.append(Event(t, "opening bracket"))
        elif depth == 0:
            events.append(Event(t, "closing bracket"))
        before = depth
    return events


def depth_events(text: str) -> list[Event]:
    """Every bracket of the code that changes the depth, opening or closing."""
    events, before = [], 0
    for t, depth in _code_brackets(text):
        events.append(Event(t, "opening bracket" if depth > before else "closing bracket"))
        before = depth
    return events


def indentation_events(text: str) -> list[Event]:
    """Where a line's indentation turns out deeper ("indent", at its last space or tab) or
    shallower ("dedent", at its first other character) than the line before's. Lines of only
    spaces and tabs are skipped; the text's first line has nothing to compare with."""
    events, previous, start = [], None, 0
    for line in text.split("\n"):
        width = len(line) - len(line.lstrip(" \t"))
        if width < len(line):  # a line with other characters
            if previous is not None and width > previous:
                events.append(Event(start + width - 1, "indent"))
            elif previous is not None and width < previous:
                events.append(Event(start + width, "dedent"))
            previous = width
        start += len(line) + 1
    return events


def newline_events(text: str) -> list[Event]:
    """Every newline."""
    return [Event(t, "newline") for t, ch in enumerate(text) if ch == "\n"]


FEATURE_EVENTS: dict[str, Callable[[str], list[Event]]] = {
    "inside a string": string_events,
    "inside a comment": comment_events,
    "inside brackets": bracket_events,
    "bracket depth": depth_events,
    "indentation": indentation_events,
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
