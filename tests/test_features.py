"""Text features are computed right on hand-made strings and agree with Python's own tokenizer
on whole modules, and rank_units finds the unit that tracks a feature: planted in synthetic
values, and built into an LSTM by hand."""

from __future__ import annotations

import importlib.util
import io
import tokenize
from pathlib import Path

import numpy as np
import pytest

import numpy_lstm
from numpy_lstm.inspect.features import (
    best_units,
    colour_spread,
    correlations,
    displayed_values,
    rank_units,
    robust_scale,
    scan_strings,
    text_features,
)

FEATURES = {
    "inside a string",
    "inside a comment",
    "inside brackets",
    "bracket depth",
    "indentation",
    "position in line",
    "after newline",
}


def marks(mask: np.ndarray) -> str:
    """A feature as a string of x (1) and . (0), one per character, to compare at a glance."""
    return "".join("x" if value else "." for value in mask)


# -- strings and comments: hand-marked snippets (the state *after* reading each character) -------
@pytest.mark.parametrize(
    ("text", "string", "comment"),
    [
        # one-quote strings: the opening quote is inside, the closing one already outside
        ("a = 'bc' + \"d\"", "....xxx....xx.", ".............."),
        ("''", "x.", ".."),
        # a backslash keeps the escaped quote (and an escaped backslash) inside
        ("s = 'a\\'b\\\\'", "....xxxxxxx.", "............"),
        # triple quotes: inside up to the last character of the closing three
        ('"""a"b"""', "xxxxxxxx.", "........."),
        ("'''x\n'''y", "xxxxxxx..", "........."),
        # a prefix stands before the string; a name that is not a prefix opens nothing
        ("rb'x' don't", "..xx.......", "..........."),
        # # inside a string is text, a quote inside a comment is text; the newline ends both
        ("'#' # it's\nx", "xx..........", "....xxxxxx.."),
        # a one-quote string left open ends at the newline; a text cut inside a string stays in
        ("'ab\ncd '''ef", "xxx....xxxxx", "............"),
    ],
)
def test_strings_and_comments_are_read_as_python_reads_them(
    text: str, string: str, comment: str
) -> None:
    features = text_features(text)
    assert marks(features["inside a string"]) == string
    assert marks(features["inside a comment"]) == comment
    assert marks(scan_strings(text)[0]) == string  # the scanner alone, as on a cut passage


def tokenize_oracle(source: str) -> tuple[str, str]:
    """Python's own tokenizer: STRING tokens (from their first quote; the last character of
    the closing quote is outside) and COMMENT tokens, as x/. marks."""
    lines = source.splitlines(keepends=True)
    offset = np.cumsum([0] + [len(line) for line in lines])
    string, comment = np.zeros(len(source), bool), np.zeros(len(source), bool)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        start = offset[token.start[0] - 1] + token.start[1]
        end = offset[token.end[0] - 1] + token.end[1]
        if token.type == tokenize.STRING:
            first_quote = min(token.string.find(q) for q in "'\"" if q in token.string)
            string[start + first_quote : end - 1] = True
        elif token.type == tokenize.COMMENT:
            comment[start:end] = True
    return marks(string), marks(comment)


@pytest.mark.parametrize("module", ["tokenize", "json.decoder", "string", "textwrap", "pydoc"])
def test_the_scanner_agrees_with_pythons_tokenizer_on_standard_library_modules(
    module: str,
) -> None:
    """On a whole module tokenize answers exactly; the scanner, which reads the cut passages
    tokenize refuses, must give the same answer there (on 300 random stdlib files it does)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text(encoding="utf-8")
    in_string, in_comment = scan_strings(source)
    assert (marks(in_string), marks(in_comment)) == tokenize_oracle(source)
    assert in_string.any() and in_comment.any()


def test_a_cut_passage_that_tokenize_refuses_is_still_read() -> None:
    # an unclosed bracket and a docstring cut at the end: tokenize raises, the scanner reads it
    text = 'f(x, "a)")  # (\n    """doc ('
    features = text_features(text)
    assert marks(features["inside a string"]) == "....." + "xxx" + "." * 12 + "x" * 8
    assert marks(features["inside a comment"]) == "." * 12 + "xxx" + "." * 13
    # brackets in strings and comments do not count: only f( is open, until its )
    depth = [0] + [1] * 8 + [0] * 19
    np.testing.assert_array_equal(features["bracket depth"], depth)


def test_brackets_track_nesting_in_code_and_ignore_unmatched_closers() -> None:
    features = text_features("a(b[c]d)e)f{g")
    np.testing.assert_array_equal(
        features["inside brackets"], [0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    )
    np.testing.assert_array_equal(
        features["bracket depth"], np.array([0, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1]) / 2
    )


def test_indentation_counts_the_leading_spaces_read_so_far() -> None:
    text = "if x:\n    y = 1\n  \tz\n"
    # i f _ x : ↵ _ _ _ _ y _ = _ 1 ↵ _ _ ⇥ z ↵
    counts = [0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 0, 1, 2, 3, 3, 0]
    np.testing.assert_allclose(text_features(text)["indentation"], np.array(counts) / 4)


def test_position_in_line_restarts_after_each_newline_and_is_normalised() -> None:
    features = text_features("abc\nde\n\nf")
    # characters read since the last newline: a b c ↵ d e ↵ ↵ f
    np.testing.assert_allclose(
        features["position in line"], np.array([1, 2, 3, 0, 1, 2, 0, 0, 1]) / 3
    )
    np.testing.assert_array_equal(features["after newline"], [0, 0, 0, 1, 0, 0, 1, 1, 0])


def test_features_have_one_value_per_character_even_for_tiny_texts() -> None:
    for text in ("", "x", "\n", '"', "'''", "#"):
        features = text_features(text)
        assert set(features) == FEATURES
        assert all(f.shape == (len(text),) and f.dtype == np.float64 for f in features.values())
        assert all(((f >= 0) & (f <= 1)).all() for f in features.values())


def test_correlations_are_pearson_and_zero_for_constant_columns(rng: np.random.Generator) -> None:
    values = rng.standard_normal((50, 4)).astype(np.float32)
    values[:, 2] = 3.0
    feature = rng.standard_normal(50)
    got = correlations(values, feature)
    expected = [np.corrcoef(values[:, k], feature)[0, 1] for k in (0, 1, 3)]
    np.testing.assert_allclose(got[[0, 1, 3]], expected, rtol=1e-6)
    assert got[2] == 0.0


def test_best_units_finds_a_planted_unit_and_skips_constant_features(
    rng: np.random.Generator,
) -> None:
    feature = (rng.random(400) < 0.3).astype(np.float64)
    values = rng.standard_normal((400, 32))
    values[:, 21] = -2.0 * feature + 0.3 * rng.standard_normal(400)  # anti-correlated works too
    ranked = best_units(values, {"planted": feature, "flat": np.ones(400)})
    assert list(ranked) == ["planted"]
    unit, r = ranked["planted"]
    assert unit == 21 and r < -0.9


def quote_parity_lstm(H: int, planted: int, rng: np.random.Generator) -> numpy_lstm.LSTM:
    """An LSTM over x_t = [character t is a double quote] whose unit `planted` flips its memory
    at every quote: at a quote the Filter opens (i ≈ 1), the Eraser closes (f ≈ 0) and the
    Writer writes −sign of the unit's own output (g = tanh(0.5 − 6·h)), so the memory alternates
    ≈ +1 (inside) / ≈ −1 (outside); between quotes f ≈ 1 keeps it. The other units are random
    and cannot read the planted one, so only it knows the parity."""
    W_ih = rng.uniform(-0.5, 0.5, (4 * H, 1))
    W_hh = rng.uniform(-0.5, 0.5, (4 * H, H))
    W_hh[:, planted] = 0.0
    bias = rng.uniform(-0.5, 0.5, 4 * H)
    i, f, g, o = (k * H + planted for k in range(4))
    W_hh[[i, f, g, o]] = 0.0
    W_ih[[i, f, g, o], 0] = 20.0, -20.0, 0.0, 0.0
    bias[[i, f, g, o]] = -10.0, 10.0, 0.5, 10.0
    W_hh[g, planted] = -6.0
    lstm = numpy_lstm.LSTM(1, H, dtype=np.float64)
    lstm.load_state_dict(
        {
            "weight_ih_l0": W_ih,
            "weight_hh_l0": W_hh,
            "bias_ih_l0": bias,
            "bias_hh_l0": np.zeros(4 * H),
        }
    )
    return lstm


@pytest.mark.parametrize("quantity", ["c", "h"])
def test_rank_units_finds_the_unit_built_to_track_quotes(
    rng: np.random.Generator, quantity: str
) -> None:
    # every quote after a space, never two in a row: Python's reading is the quotes' parity
    text = "".join(rng.choice(["ab", "c", " ", ' "'], size=200, p=[0.3, 0.3, 0.2, 0.2]))
    x = (np.array(list(text)) == '"').astype(np.float64)[:, None]  # (T, I=1)
    tr = numpy_lstm.trace(quote_parity_lstm(8, planted=3, rng=rng), x)
    ranked = rank_units(tr, text_features(text), quantity)
    unit, r = ranked["inside a string"]
    assert unit == 3 and r > 0.9, ranked


def test_rank_units_uses_only_the_valid_steps_of_the_chosen_sequence(
    rng: np.random.Generator,
) -> None:
    lstm = numpy_lstm.LSTM(2, 5, dtype=np.float64, rng=rng)
    x = rng.standard_normal((20, 2, 2))
    tr = numpy_lstm.trace(lstm, x, lengths=np.array([20, 12]))
    feature = rng.standard_normal(20)
    c = tr.layer().c[:12, 1]
    expected = int(np.argmax(np.abs(correlations(c, feature[:12]))))
    assert rank_units(tr, {"f": feature}, batch=1)["f"][0] == expected
    with pytest.raises(ValueError, match="expected one length"):
        rank_units(tr, {"f": np.zeros(21)})


def line_counter_lstm(H: int, planted: int, rng: np.random.Generator) -> numpy_lstm.LSTM:
    """An LSTM over x_t = [character t is a newline] whose unit `planted` counts the characters
    of the line: the Filter, Writer and Presenter always open (i, g, o ≈ 1), the Eraser keeps
    (f ≈ 1) except at a newline (f ≈ 0), so c = 1, 2, 3… restarting at each line — a memory far
    beyond ±1, whose tanh is one flat colour after the first few characters."""
    W_ih = rng.uniform(-0.5, 0.5, (4 * H, 1))
    W_hh = rng.uniform(-0.5, 0.5, (4 * H, H))
    W_hh[:, planted] = 0.0
    bias = rng.uniform(-0.5, 0.5, 4 * H)
    i, f, g, o = (k * H + planted for k in range(4))
    W_hh[[i, f, g, o]] = 0.0
    W_ih[[i, f, g, o], 0] = 0.0, -30.0, 0.0, 0.0
    bias[[i, f, g, o]] = 10.0, 15.0, 10.0, 10.0
    lstm = numpy_lstm.LSTM(1, H, dtype=np.float64)
    state = {"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": bias}
    lstm.load_state_dict(state | {"bias_hh_l0": np.zeros(4 * H)})
    return lstm


def test_colour_spread_is_the_densest_tenth_of_the_scale() -> None:
    assert colour_spread(np.array([-1.0, -0.95, 0.0, 0.15, 0.2, 1.0])) == 0.5  # 0, .15, .2
    assert colour_spread(np.ones(7)) == 1.0
    assert colour_spread(np.linspace(-1, 1, 101)) == pytest.approx(11 / 101)


def test_picks_track_the_feature_in_what_the_page_shows(rng: np.random.Generator) -> None:
    lines = ["".join(rng.choice(list("ab c"), size=rng.integers(20, 60))) for _ in range(12)]
    text = "\n".join(lines)
    x = (np.array(list(text)) == "\n").astype(np.float64)[:, None]
    tr = numpy_lstm.trace(line_counter_lstm(10, planted=6, rng=rng), x)
    c = tr.layer().c[:, 0]
    assert c[:, 6].max() > 40  # the raw memory: tanh(c) is flat, one colour nearly everywhere
    assert colour_spread(np.tanh(c[:, 6])) > 0.9
    ranked = rank_units(tr, text_features(text))
    unit, r_line = ranked["position in line"]
    assert unit == 6 and r_line > 0.9
    shown = displayed_values(c, robust_scale(c))
    for unit, r in ranked.values():  # every offered pick: |r| ≥ 0.3 and colours that vary
        assert abs(r) >= 0.3 and colour_spread(shown[:, unit]) <= 0.8
    # r is the correlation of the shown (scaled, clipped) memory, not of the raw one
    assert correlations(shown, text_features(text)["position in line"])[6] == pytest.approx(r_line)
