"""Feature events are found at the characters where each feature switches, on a hand-written
piece of Python whose quotes, comments, brackets, indents and newlines sit at positions counted
by hand."""

from __future__ import annotations

import numpy as np
import pytest

from numpy_lstm.inspect.events import Event, feature_events, first_of_each
from numpy_lstm.inspect.features import text_features

# offsets, counted by hand:
#   0 "def f(a):"  ( 5, ) 7, newline 9
#  10 "    s = 'x(' # y"  4 spaces 10-13, ' 18, ( in the string 20, ' 21, # 23, newline 26
#  27 "    if [a, (1)]:"  [ 34, ( 38, ) 40, ] 41, newline 43
#  44 "        return \"\"\"z"  8 spaces 44-51, triple quotes 59-61, newline 63
#  64 '"""'  closing quotes 64-66, newline 67
#  68 "g)"  g 68 (a dedent), the unmatched ) at 69 is ignored
TEXT = 'def f(a):\n    s = \'x(\' # y\n    if [a, (1)]:\n        return """z\n"""\ng)'


def test_the_hand_counted_offsets_are_right() -> None:
    assert TEXT[5] + TEXT[7] + TEXT[18] + TEXT[21] + TEXT[23] == "()''#"
    assert TEXT[34] + TEXT[38] + TEXT[40] + TEXT[41] + TEXT[59:62] + TEXT[64:67] == '[()]""""""'
    assert [t for t, ch in enumerate(TEXT) if ch == "\n"] == [9, 26, 43, 63, 67]


def test_strings_open_at_their_first_quote_and_close_at_their_last() -> None:
    assert feature_events(TEXT, "inside a string") == [
        Event(18, "opening quote"),
        Event(21, "closing quote"),
        Event(59, "opening quote"),
        Event(66, "closing quote"),
    ]
    assert feature_events("x = 'open\ny", "inside a string") == [
        Event(4, "opening quote"),
        Event(9, "unclosed string ends"),
    ]


def test_a_comment_starts_at_its_hash_and_ends_at_the_newline() -> None:
    assert feature_events(TEXT, "inside a comment") == [
        Event(23, "comment starts"),
        Event(26, "comment ends"),
    ]


def test_brackets_in_code_open_at_depth_zero_and_close_back_to_it() -> None:
    # the ( inside the string 'x(' and the unmatched ) at the end do not count
    assert feature_events(TEXT, "inside brackets") == [
        Event(5, "opening bracket"),
        Event(7, "closing bracket"),
        Event(34, "opening bracket"),
        Event(41, "closing bracket"),
    ]
    assert [e.step for e in feature_events(TEXT, "bracket depth")] == [5, 7, 34, 38, 40, 41]
    kinds = [e.what.split()[0] for e in feature_events(TEXT, "bracket depth")]
    assert kinds == ["opening", "closing", "opening", "opening", "closing", "closing"]


def test_indents_end_at_the_last_leading_space_and_dedents_at_the_first_other_character() -> None:
    # line 2 is deeper than line 1 (space 13), line 4 deeper than line 3 (space 51); the
    # closing quotes' line (64) and g (68) are at column 0, shallower than the line before
    assert feature_events(TEXT, "indentation") == [
        Event(13, "indent"),
        Event(51, "indent"),
        Event(64, "dedent"),
    ]


@pytest.mark.parametrize("feature", ["after newline", "position in line"])
def test_newline_features_switch_at_each_newline(feature: str) -> None:
    assert [e.step for e in feature_events(TEXT, feature)] == [9, 26, 43, 63, 67]


def test_events_are_where_the_feature_values_switch() -> None:
    """An independent check against the features themselves: a begin event is where the
    feature goes from 0 to 1, an end event where it goes back to 0 (state after reading)."""
    features = text_features(TEXT)
    for name in ("inside a string", "inside a comment", "inside brackets"):
        value = np.concatenate([[0.0], features[name]])
        begins = np.flatnonzero(np.diff(value) > 0).tolist()
        ends = np.flatnonzero(np.diff(value) < 0).tolist()
        events = feature_events(TEXT, name)
        kinds = ("opening", "comment starts")
        assert [e.step for e in events if e.what.startswith(kinds)] == begins, name
        assert [e.step for e in events if not e.what.startswith(kinds)] == ends, name
    depth = np.concatenate([[0.0], features["bracket depth"]])
    assert [e.step for e in feature_events(TEXT, "bracket depth")] == np.flatnonzero(
        np.diff(depth)
    ).tolist()
    position = features["position in line"]
    resets = [e.step for e in feature_events(TEXT, "position in line")]
    assert resets == np.flatnonzero(position == 0).tolist()
    indentation = features["indentation"]
    for event in feature_events(TEXT, "indentation"):  # the line's indentation is known here
        line_start = TEXT.rfind("\n", 0, event.step) + 1
        assert TEXT[line_start : event.step + 1].strip(" ") in ("", TEXT[event.step])
        assert indentation[event.step] == indentation[TEXT.find("\n", event.step) - 1]


def test_unknown_features_have_no_events_and_first_of_each_keeps_both_kinds() -> None:
    assert feature_events(TEXT, "inside quotes") == []
    events = feature_events('"a" "b" "c"', "inside a string")
    assert first_of_each(events, 1) == [Event(0, "opening quote"), Event(2, "closing quote")]
    assert first_of_each(events, 0) == []
    with pytest.raises(ValueError, match=r"per_kind: expected ≥ 0, got -1"):
        first_of_each(events, -1)
