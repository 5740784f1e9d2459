"""Feature events are found at the characters where each feature switches, on a hand-written
text whose quotes, brackets and newlines sit at positions counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_lstm.inspect.events import Event, feature_events, first_of_each
from numpy_lstm.inspect.features import text_features

# quotes at 5, 7, 23, 25; brackets ( 1, [ 14, ( 18, ) 20, ] 21, ) 27, { 29; newlines at 9, 22
TEXT = 'f(a, "b")\nx = [1, (2)]\n"c" ) {'


def test_quotes_open_and_close_at_the_quote_characters() -> None:
    assert feature_events(TEXT, "inside quotes") == [
        Event(5, "opening quote"),
        Event(7, "closing quote"),
        Event(23, "opening quote"),
        Event(25, "closing quote"),
    ]


def test_brackets_open_at_depth_zero_and_close_back_to_it() -> None:
    # "(" at 1 opens, ")" at 8 closes; "[" at 14 opens, "(" at 18 is nested, "]" at 21 closes;
    # the unmatched ")" at 27 is ignored; "{" at 29 opens and never closes
    assert feature_events(TEXT, "inside brackets") == [
        Event(1, "opening bracket"),
        Event(8, "closing bracket"),
        Event(14, "opening bracket"),
        Event(21, "closing bracket"),
        Event(29, "opening bracket"),
    ]


@pytest.mark.parametrize("feature", ["after newline", "position in line"])
def test_newline_features_switch_at_each_newline(feature: str) -> None:
    assert feature_events(TEXT, feature) == [Event(9, "newline"), Event(22, "newline")]


def test_events_are_where_the_feature_values_switch() -> None:
    """An independent check against the features themselves: a begin event is where the
    feature goes from 0 to 1, an end event where it goes back to 0 (state after reading)."""
    features = text_features(TEXT)
    for name in ("inside quotes", "inside brackets"):
        value = np.concatenate([[0.0], features[name]])
        begins = np.flatnonzero(np.diff(value) > 0).tolist()
        ends = np.flatnonzero(np.diff(value) < 0).tolist()
        events = feature_events(TEXT, name)
        assert [e.step for e in events if e.what.startswith("opening")] == begins
        assert [e.step for e in events if e.what.startswith("closing")] == ends
    position = text_features(TEXT)["position in line"]
    resets = [e.step for e in feature_events(TEXT, "position in line")]
    assert resets == np.flatnonzero(position == 0).tolist()


def test_unknown_features_have_no_events_and_first_of_each_keeps_both_kinds() -> None:
    assert feature_events(TEXT, "indentation depth") == []
    events = feature_events('"a" "b" "c"', "inside quotes")
    assert first_of_each(events, 1) == [Event(0, "opening quote"), Event(2, "closing quote")]
    assert first_of_each(events, 0) == []
    with pytest.raises(ValueError, match=r"per_kind: expected ≥ 0, got -1"):
        first_of_each(events, -1)
