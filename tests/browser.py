"""The explorer page in a real browser: what the browser tests share (the pages they build,
how they read the page back and drive the pointer). The `driver` fixture is in conftest.py.

The browser is Debian's chromium and chromium-driver, which `make browser` installs (`make test`
runs it; CI runs `make test`). When either is missing the tests FAIL, naming that target — they
never skip. Selenium is given the driver's path, so it never downloads one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import numpy_lstm
from numpy_lstm.tasks.charlm import CharLM, Vocabulary

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
TEXT = (
    'He said "hello (world)" twice.\n\tThen: [a, b] {c}; it\'s 100% <b>fine</b> & done!\n'
    'Unicode: é 🙂 "https://example.org/</script>"\nend'
)


def ensure_browser() -> None:
    """Fail (never skip) when Debian's chromium or chromium-driver is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"the explorer's browser tests need Debian's chromium and chromium-driver; missing: "
            f"{', '.join(missing)}. Install them with `make browser` (part of `make test`)."
        )


def open_page(driver: Any, path: Path, timeout: float = 60) -> float:
    """Load the page and wait until it has decoded its data; returns the seconds it took."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    start = time.perf_counter()
    driver.get(path.as_uri())
    try:
        WebDriverWait(driver, timeout).until(
            lambda d: d.execute_script("return document.documentElement.dataset.ready") == "true"
        )
    except TimeoutException:
        pytest.fail(f"the page never became ready; browser log: {driver.get_log('browser')}")
    return time.perf_counter() - start


def assert_no_console_errors(driver: Any) -> None:
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe


def char_lm_trace(text: str, hidden: int, seed: int = 0) -> numpy_lstm.Trace:
    """A random-weight CharLM (eval mode) traced on `text`: realistic gates, no training."""
    vocab = Vocabulary.from_text(text)
    model = CharLM(len(vocab), 16, hidden, 1, 0.0, np.random.default_rng(seed), np.dtype("float32"))
    model.eval()
    return numpy_lstm.trace(model.lstm, model.embedding(vocab.encode(text)[:, None]))


def chars() -> list[str]:
    return list(TEXT)  # code points, as the page counts them


def text_colours(driver: Any) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#text span')]"
        ".map((s) => getComputedStyle(s).backgroundColor)"
    )


def rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(v) for v in colour[colour.index("(") + 1 : -1].split(",")[:3])


def pick_unit(driver: Any, unit: int) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "unit")
    box.clear()
    box.send_keys(str(unit))
    assert driver.execute_script("return explorer.state().unit") == unit


def hover_card(driver: Any, element: Any) -> dict[str, str]:
    """Move the pointer onto `element` and read the hover card's numbers and narration."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    ActionChains(driver).move_to_element(element).perform()
    tip = driver.find_element(By.ID, "tip")
    assert tip.is_displayed()
    card = {
        row.get_attribute("data-q"): row.find_element(By.CSS_SELECTOR, "td.num").text
        for row in tip.find_elements(By.CSS_SELECTOR, "tr")
    }
    card["where"] = tip.find_element(By.CSS_SELECTOR, ".where").text
    card["narration"] = tip.find_element(By.CSS_SELECTOR, ".narration").text
    return card


def assert_card_matches_trace(card: dict[str, str], tr: numpy_lstm.Trace, t: int, u: int) -> None:
    record = tr.layer()
    expected = {name: float(tr.gate(name)[t, 0, u]) for name in "ifgo"}
    expected["c"] = float(record.c[t, 0, u])
    expected["h"] = float(tr.gate("o")[t, 0, u] * record.act_c[t, 0, u])
    shown = {key: float(card[key].split("→")[-1]) for key in "ifgoch"}
    for key, value in expected.items():  # two decimals: gates in percent, the rest hundredths
        assert abs(shown[key] - value) <= 0.005 + 1e-6, (key, shown[key], value)
    # the Eraser's number is what it erases: 1 − f, beside the forget gate f (the share kept)
    assert abs(float(card["erased"]) - (1 - expected["f"])) <= 0.005 + 1e-6
    assert round(float(card["erased"]) + shown["f"], 2) == 1.0
    assert card["where"] == f"step {t} · unit {u}"
    assert card["narration"] == tr.explain(t, u)
    wiped = f"the Eraser wiped {100 - round(100 * expected['f'])}% of the memory"
    assert wiped in card["narration"]


def heat_point(driver: Any, t: int, u: int) -> tuple[float, float]:
    """Viewport (x, y) of the heatmap cell of step t and unit u, from the page's own layout."""
    return driver.execute_script(
        "const [t, u] = arguments, r = document.getElementById('heat').getBoundingClientRect();"
        "const l = explorer.heatLayout(), x = l.gutter + (t + 0.5) * l.colW - l.left;"
        "return [r.left + x, r.top + l.top + (u + 0.5) * l.rowH]",
        t,
        u,
    )


def move_to(driver: Any, x: float, y: float) -> None:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    pointer = ActionBuilder(driver)
    pointer.pointer_action.move_to_location(round(x), round(y))
    pointer.perform()


LINES = [
    'def parse(text, depth=0):\n    """Read one "item" (or a list of them)."""',
    '    words = [w for w in text.split(" ") if w]\n    return {"depth": depth, "words": words}',
    "\n# a comment line that runs on for a while before it stops\nvalue = parse('a b c')",
]
PASSAGE = "\n".join(LINES * 8)


def planted_unit_trace(
    text: str,
    *,
    hidden: int,
    planted: int,
    seed: int,
    gate_bias: tuple[float, float, float, float],
    char_weights: dict[tuple[str, str], float],
) -> numpy_lstm.Trace:
    """A random LSTM over one-hot characters, traced on `text`, with one unit built by hand:
    unit `planted` ignores the recurrence, and its gates i, f, g, o are σ/tanh of gate_bias
    plus char_weights[(gate, character)] for the character read."""
    vocab = Vocabulary.from_text(text)
    rng = np.random.default_rng(seed)
    V, H = len(vocab), hidden
    W_ih = rng.uniform(-1, 1, (4 * H, V))
    W_hh = rng.uniform(-0.3, 0.3, (4 * H, H))
    bias = rng.uniform(-0.5, 0.5, 4 * H)
    rows = [k * H + planted for k in range(4)]
    W_ih[rows], W_hh[rows], W_hh[:, planted] = 0.0, 0.0, 0.0
    bias[rows] = gate_bias
    for (gate, ch), weight in char_weights.items():
        W_ih["ifgo".index(gate) * H + planted, vocab.index[ch]] = weight
    lstm = numpy_lstm.LSTM(V, H, dtype=np.float64)
    lstm.load_state_dict(
        {"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": bias, "bias_hh_l0": 0 * bias}
    )
    return numpy_lstm.trace(lstm, np.eye(V)[vocab.encode(text)])


def line_counter_trace(text: str) -> numpy_lstm.Trace:
    """Unit 11 counts the characters of each line (i, g, o ≈ 1; f ≈ 1 except at a newline, where
    f ≈ 0): its memory reaches the line's length, far beyond ±1 — on a tanh colour scale it would
    be one flat colour."""
    return planted_unit_trace(
        text, hidden=32, planted=11, seed=7, gate_bias=(10.0, 15.0, 10.0, 10.0),
        char_weights={("f", "\n"): -30.0},
    )  # fmt: skip


def tap(driver: Any, x: float, y: float) -> None:
    """A finger's tap at viewport (x, y): touch start and end, as a phone sends them."""
    point = [{"x": x, "y": y, "radiusX": 2, "radiusY": 2}]
    driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point})
    driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def strip_point(driver: Any, t: int, row: str) -> tuple[float, float]:
    """Viewport (x, y) of step t's column in the story strip's row `row` (its key)."""
    return driver.execute_script(
        "const [t, key] = arguments, r = document.getElementById('strip').getBoundingClientRect();"
        "const l = explorer.stripLayout(), row = l.rows.find((w) => w.key === key);"
        "const x = l.gutter + (t + 0.5) * l.colW - l.left;"
        "return [r.left + x, r.top + row.top + row.height / 2]",
        t,
        row,
    )


def filled_height(driver: Any, t: int, row: str) -> float:
    """The height (css px) of what is drawn in step t's column of a strip row, read back from
    the canvas's pixels: everything that is not the row's background."""
    return driver.execute_script(
        "const [t, key] = arguments, canvas = document.getElementById('strip');"
        "const l = explorer.stripLayout(), row = l.rows.find((w) => w.key === key);"
        "const dpr = devicePixelRatio;"
        "const x = Math.round((l.gutter + (t + 0.5) * l.colW - l.left) * dpr);"
        "const pixels = canvas.getContext('2d').getImageData(x, Math.round(row.top * dpr), 1,"
        " Math.round(row.height * dpr)).data;"
        "let n = 0; for (let k = 0; k < pixels.length; k += 4)"
        " if (Math.abs(pixels[k] - 0xf3) + Math.abs(pixels[k + 1] - 0xf5)"
        " + Math.abs(pixels[k + 2] - 0xf7) > 6) n++;"
        "return n / dpr;",
        t,
        row,
    )


def comment_unit_trace(text: str) -> numpy_lstm.Trace:
    """Unit 5 is on inside a comment: at "#" its Filter opens (and its Eraser wipes what was
    there), the Writer writes +1, and at a newline the Eraser wipes it again; elsewhere it
    keeps."""
    return planted_unit_trace(
        text, hidden=24, planted=5, seed=3, gate_bias=(-10.0, 10.0, 10.0, 10.0),
        char_weights={("i", "#"): 20.0, ("f", "#"): -20.0, ("f", "\n"): -20.0},
    )  # fmt: skip
