"""The explorer page's data, without a browser: the stored integers reproduce Trace.explain's
numbers exactly, the planes decode back, the page is self-contained, and `numpy-lstm explore`
writes it from a checkpoint. (tests/test_explorer_browser.py drives the page itself.)"""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

import numpy_lstm
from numpy_lstm.cli import main
from numpy_lstm.inspect.explorer import (
    InputRow,
    PageMeta,
    encode_plane,
    narrated_numbers,
    page_data,
    sign_magnitude,
    write_explorer,
)
from numpy_lstm.inspect.features import text_features
from numpy_lstm.inspect.predict import MAX_PREDICTED_STEPS, Predictions


def decode_plane(plane: dict[str, str], T: int) -> np.ndarray:
    """The page's decoding, in NumPy: base64 → inflate → un-shuffle → (H, T) → (T, H)."""
    dtype = np.dtype(f"<u{plane['dtype'][1:]}")
    raw = np.frombuffer(zlib.decompress(base64.b64decode(plane["data"])), np.uint8)
    codes = raw.reshape(dtype.itemsize, -1).T.copy().view(dtype).reshape(-1)
    return codes.reshape(-1, T).T


def python_like_page(
    meta: PageMeta, numbers: dict[str, np.ndarray], t: int, u: int, direction: int
) -> str:
    """The page's narration in NumPy: the template the page receives, filled in with the stored
    integers formatted digit by digit, as explorer.js does (no float arithmetic)."""

    def percent(n: float) -> str:
        return f"{'-' if np.signbit(n) else ''}{abs(int(n))}%"

    def signed(n: float) -> str:
        m = abs(int(n))
        return f"{'-' if np.signbit(n) else '+'}{m // 100}.{m % 100:02d}"

    def erased(n: float) -> str:  # the Eraser's 1 − f from the forget gate's whole percent
        return f"{100 - abs(int(n))}%"

    T = len(numbers["c"])
    previous = t - 1 if direction == 0 else t + 1
    before = numbers["c"][previous, u] if 0 <= previous < T else numbers["c_edge"][u]
    formats = {"percent": percent, "erased": erased, "signed": signed}
    narration = meta["narration"]
    values = {
        field: formats[kind](before if field == "c_before" else numbers[field][t, u])
        for field, kind in narration["fields"].items()
    }
    return narration["sentence"].format(step=t, unit=u, **values)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("direction", [0, 1])
def test_stored_integers_reproduce_explain_word_for_word(
    rng: np.random.Generator, dtype: type, direction: int
) -> None:
    lstm = numpy_lstm.LSTM(3, 24, bidirectional=True, dtype=dtype, rng=rng)
    # large inputs saturate gates and grow memories, so the rounding edges get exercised
    tr = numpy_lstm.trace(lstm, 4 * rng.standard_normal((60, 1, 3)).astype(dtype))
    numbers = narrated_numbers(tr, direction=direction)
    meta, _ = page_data("x" * 60, tr, direction=direction)
    for t in range(60):
        for u in range(24):
            expected = tr.explain(t, u, direction=direction)
            assert python_like_page(meta, numbers, t, u, direction) == expected


def test_sign_magnitude_keeps_negative_zero_and_picks_the_smallest_dtype() -> None:
    codes = sign_magnitude(np.array([0.0, -0.0, 3.0, -3.0, 127.0]))
    np.testing.assert_array_equal(codes, [0, 1, 6, 7, 254])
    assert codes.dtype == np.uint8
    assert sign_magnitude(np.array([-128.0])).dtype == np.uint16
    assert sign_magnitude(np.array([40000.0])).dtype == np.uint32
    with pytest.raises(ValueError, match="not all finite"):
        sign_magnitude(np.array([np.nan]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_planes_decode_back_to_the_codes(rng: np.random.Generator, dtype: type) -> None:
    codes = rng.integers(0, np.iinfo(dtype).max, (37, 5), dtype=dtype)
    np.testing.assert_array_equal(decode_plane(encode_plane(codes), 37), codes)


TRICKY = 'see https://example.org/</script><b>"quoted" {{PLANES}} /*SCRIPT*/ \t é 🙂\n'


@pytest.fixture
def tricky_trace(rng: np.random.Generator) -> numpy_lstm.Trace:
    lstm = numpy_lstm.LSTM(2, 6, dtype=np.float32, rng=rng)
    return numpy_lstm.trace(lstm, rng.standard_normal((len(TRICKY), 2)).astype(np.float32))


def test_page_is_self_contained_and_escapes_the_text(
    tmp_path: Path, tricky_trace: numpy_lstm.Trace
) -> None:
    path = write_explorer(
        tmp_path / "page.html",
        TRICKY,
        tricky_trace,
        title="a <title>",
        highlights={"inside quotes": 2},
    )
    page = path.read_text("utf-8")
    for reference in ("http://", "https://", "src=", "href=", "<link", "@import", "url("):
        assert reference not in page, reference
    assert page.count("</script>") == page.count("<script")  # the text's one is escaped
    assert "<title>a &lt;title&gt;</title>" in page
    meta = re.search(r'<script type="application/json" id="meta">(.*?)</script>', page, re.S)
    assert json.loads(meta.group(1))["text"] == TRICKY
    assert "{{" not in page.replace("{{PLANES}}", "")  # every template marker was filled


def test_page_data_checks_its_arguments_and_truncates(tricky_trace: numpy_lstm.Trace) -> None:
    meta, planes = page_data(TRICKY, tricky_trace, max_chars=10)
    assert meta["steps"] == 10 and meta["text"] == TRICKY[:10]
    assert decode_plane(planes["f"], 10).shape == (10, 6)
    with pytest.raises(ValueError, match="trace has"):
        page_data(TRICKY + "x", tricky_trace)
    with pytest.raises(ValueError, match="highlights"):
        page_data(TRICKY, tricky_trace, highlights={"quotes": 6})
    with pytest.raises(ValueError, match="at least one"):
        page_data("", tricky_trace)


def test_explore_command_writes_a_page_from_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text('the "quick" (brown) fox.\n' * 40, encoding="utf-8")
    checkpoint = str(tmp_path / "lm.ckpt")
    model = ["--hidden-size", "12", "--embedding-dim", "4", "--batch-size", "4", "--bptt", "8"]
    training = ["--steps", "2", "--eval-every", "2", "--checkpoint", checkpoint, "--no-progress"]
    code = main(["train", "charlm", "--text", str(corpus), *model, *training])
    assert code == 0
    capsys.readouterr()
    out = tmp_path / "explorer.html"
    code = main(["explore", checkpoint, "--text", 'the "fox" (brown)\nquick', "--out", str(out)])
    assert code == 0 and f"wrote {out}" in capsys.readouterr().out
    page = out.read_text("utf-8")
    meta = json.loads(re.search(r'id="meta">(.*?)</script>', page).group(1))
    assert meta["steps"] == 23 and meta["units"] == 12
    # the model's next-character predictions at every step, in its own alphabet
    predictions = meta["predictions"]
    assert predictions["steps"] == 23 and predictions["k"] == 5 and predictions["window"] == 20
    assert "".join(predictions["alphabet"]) == "".join(sorted(set('the "quick" (brown) fox.\n')))
    for key in ("top_id", "top_p", "saliency"):
        assert f'id="plane-{key}"' in page
    features = set(text_features("a"))  # the features the explorer looks for
    for pick in meta["highlights"]:  # only units whose colours visibly track a feature
        assert pick["label"] in features and abs(pick["r"]) >= 0.3, pick
    code = main(
        ["explore", checkpoint, "--text-file", str(corpus), "--out", str(out), "--max-chars", "30"]
    )
    assert code == 0 and "showing the first 30" in capsys.readouterr().err
    # characters the model never saw: read as one stand-in, marked, counted — never refused
    code = main(["explore", checkpoint, "--text", "unknown: Zé 🙂 fox", "--out", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "4 character(s) are not in the model's vocabulary" in err and "reads ' '" in err
    meta = json.loads(re.search(r'id="meta">(.*?)</script>', out.read_text("utf-8")).group(1))
    assert meta["text"] == "unknown" + " " * 7 + "fox"
    assert meta["placeholders"] == [7, 9, 10, 12]
    assert meta["predictions"]["steps"] == len(meta["text"])  # the stand-ins are read too


def test_fifty_thousand_characters_by_256_units_fit_in_twenty_megabytes() -> None:
    """Past EXACT_VALUES the page rounds its numbers (each unit's memory to an eighth of its
    colour scale): a long text of real code stays under 20 MB, every stored number within half
    a rounding step of Trace.explain's."""
    from numpy_lstm.inspect.explorer import EXACT_VALUES, render_html
    from numpy_lstm.tasks.charlm import CharLM, Vocabulary

    source = sorted(Path(numpy_lstm.__file__).parent.rglob("*.py"))
    text = "".join(path.read_text("utf-8") for path in source)[:50_000]
    assert len(text) == 50_000 and EXACT_VALUES < 50_000 * 256
    vocab = Vocabulary.from_text(text)
    model = CharLM(len(vocab), 16, 256, 1, 0.0, np.random.default_rng(0), np.dtype("float32"))
    model.eval()
    tr = numpy_lstm.trace(model.lstm, model.embedding(vocab.encode(text)[:, None]))
    # with predictions for as many steps as they are made, at their least compressible (random)
    predictions = random_predictions(
        np.random.default_rng(1), list(vocab.chars), MAX_PREDICTED_STEPS, 5, 20
    )
    meta, planes = page_data(text, tr, predictions=predictions)
    size = len(render_html(meta, planes).encode("utf-8"))
    assert size < 20e6, f"{size / 1e6:.1f} MB"
    numbers = narrated_numbers(tr)
    assert set(meta["rounding"]) == set("ifgoch") and meta["rounding_note"]
    for key, steps in meta["rounding"].items():
        codes = decode_plane(planes[key], 50_000).astype(np.int64)
        step = np.array(steps)
        stored = np.where(codes & 1, -1, 1) * (codes >> 1) * step  # (T, H) percent / hundredths
        assert np.all(np.abs(stored - numbers[key]) <= step / 2 + 1e-9), key
    # and a short page stays exact
    short, _ = page_data(text[:1000], tr)
    assert short["rounding"] == {} and short["rounding_note"] == ""


def random_predictions(
    rng: np.random.Generator, alphabet: list[str], steps: int, k: int, window: int
) -> Predictions:
    """Predictions with random numbers of the right kinds: ids, sorted probabilities, and a
    saliency with both signs, a row of zeros (step 0 of a first window) and lags before the text."""
    top_p = np.sort(rng.dirichlet(np.ones(len(alphabet)), steps), axis=1)[:, ::-1][:, :k]
    saliency = rng.standard_normal((steps, window)) * rng.uniform(1e-6, 10, (steps, 1))
    saliency[3] = 0
    for t in range(min(steps, window)):
        saliency[t, t + 1 :] = 0
    top_ids = rng.permuted(np.tile(np.arange(len(alphabet)), (steps, 1)), axis=1)[:, :k]
    return Predictions(alphabet, top_ids, top_p, saliency, window)


@pytest.mark.parametrize("alphabet_size", [7, 300])
def test_page_data_stores_predictions_as_the_page_reads_them(
    rng: np.random.Generator, tricky_trace: numpy_lstm.Trace, alphabet_size: int
) -> None:
    """top_id as plain indices (uint8, or uint16 beyond 256 characters), top_p in per mille,
    saliency in sign-magnitude percent of each step's largest |value|; Tp rows each."""
    alphabet = [chr(0x41 + n) for n in range(alphabet_size)]
    T = len(TRICKY)
    predictions = random_predictions(rng, alphabet, T + 5, 4, 6)  # more steps than the text
    meta, planes = page_data(TRICKY, tricky_trace, predictions=predictions)
    info = meta["predictions"]
    assert info is not None
    assert {key: info[key] for key in ("alphabet", "k", "steps", "window")} == {
        "alphabet": alphabet,
        "k": 4,
        "steps": T,
        "window": 6,
    }
    assert info["about"].startswith("At each step:") and "per mille" in info["about"]
    assert planes["top_id"]["dtype"] == ("u1" if alphabet_size <= 256 else "u2")
    np.testing.assert_array_equal(decode_plane(planes["top_id"], T), predictions.top_ids[:T])
    assert planes["top_p"]["dtype"] == "u2"
    per_mille = decode_plane(planes["top_p"], T)
    for t in (0, 5, T - 1):
        for j in range(4):
            assert per_mille[t, j] == round(1000 * predictions.top_p[t, j])
    codes = decode_plane(planes["saliency"], T).astype(np.int64)
    assert planes["saliency"]["dtype"] == "u1" and codes.shape == (T, 6)
    percent = np.where(codes & 1, -1, 1) * (codes >> 1)
    for t in range(T):
        row = predictions.saliency[t]
        largest = max(abs(row)) if row.any() else 1.0
        for lag in range(6):
            assert percent[t, lag] == round(100 * row[lag] / largest), (t, lag)
    assert not percent[3].any() and np.abs(percent).max(axis=1)[4:].min() == 100
    capped, _ = page_data(
        TRICKY, tricky_trace, predictions=random_predictions(rng, alphabet, 9, 4, 6)
    )
    assert capped["predictions"] is not None and capped["predictions"]["steps"] == 9
    assert capped["predictions"]["about"].startswith("At each of the first 9 steps")
    # no predictions: no planes, meta says None
    plain_meta, plain = page_data(TRICKY, tricky_trace)
    assert plain_meta["predictions"] is None and "top_id" not in plain
    assert plain_meta["inputs"] == [] and plain_meta["notes"] == []


def test_page_data_keeps_input_rows_and_notes(tricky_trace: numpy_lstm.Trace) -> None:
    T = len(TRICKY)
    values = np.linspace(-1, 1, T + 3)  # longer than the text: its first T values count
    rows: list[InputRow] = [
        {"label": "value", "values": list(values), "digits": 2},
        {"label": "marker", "values": [float(t == 4) for t in range(T)], "digits": 0},
    ]
    notes = ["The Filter opens at the markers.", "The head reads the memory out."]
    meta, _ = page_data(TRICKY, tricky_trace, inputs=rows, notes=notes)
    assert meta["notes"] == notes
    assert [row["label"] for row in meta["inputs"]] == ["value", "marker"]
    assert meta["inputs"][0]["values"] == [round(v, 2) for v in values[:T]]
    assert meta["inputs"][1]["values"][4] == 1 and sum(meta["inputs"][1]["values"]) == 1
    assert [row["digits"] for row in meta["inputs"]] == [2, 0]
    json.dumps(meta, allow_nan=False)  # the page's JSON stays strict
    with pytest.raises(ValueError, match="inputs: 'short'"):
        page_data(TRICKY, tricky_trace, inputs=[{"label": "short", "values": [1.0], "digits": 1}])
    with pytest.raises(ValueError, match="inputs: 'nan'"):
        bad: InputRow = {"label": "nan", "values": [np.nan] * T, "digits": 1}
        page_data(TRICKY, tricky_trace, inputs=[bad])
