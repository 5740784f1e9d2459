"""The explorer's story of one unit, in a real browser: the strip under the text, the live cell
diagram, finding units by example (select a span) and the model's predictions with what drove
them — each checked against the trace, torch-free oracles (the softmax computed here) and
Trace.backward through the whole sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import numpy_lstm
from browser import (
    PASSAGE,
    TEXT,
    assert_no_console_errors,
    comment_unit_trace,
    filled_height,
    move_to,
    open_page,
    pick_unit,
    strip_point,
)  # fmt: skip
from numpy_lstm.inspect import write_explorer
from numpy_lstm.tasks.charlm import CharLM, Vocabulary

# -- the story strip, the cell diagram, finding units by example ----------------------------------


def test_the_story_strip_and_the_cell_diagram_tell_one_step_with_the_trace_numbers(
    driver: Any, lm_page: tuple
) -> None:
    from selenium.webdriver.common.by import By

    path, tr, _ = lm_page
    open_page(driver, path)
    record, unit = tr.layer(), 5
    pick_unit(driver, unit)
    strip = driver.find_element(By.ID, "strip")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", strip)
    rows = {row["key"]: row for row in driver.execute_script("return explorer.stripLayout().rows")}
    assert list(rows) == ["i", "e", "g", "w", "c", "h"]
    for t in (0, 7, 31):
        # the column under character t, in the Eraser's row: the card of step t
        move_to(driver, *strip_point(driver, t, "e"))
        tip = driver.find_element(By.ID, "tip")
        assert tip.find_element(By.CSS_SELECTOR, ".where").text == f"step {t} · unit {unit}"
        shown = tip.find_element(By.CSS_SELECTOR, ".char").get_attribute("textContent")
        assert shown == {" ": "space", "\n": "↵"}.get(TEXT[t], TEXT[t])
        # each Filter bar is as tall as the Filter is open (read back from the pixels)
        i = float(tr.gate("i")[t, 0, unit])
        assert filled_height(driver, t, "i") == pytest.approx(
            i * (rows["i"]["height"] - 4), abs=1.5
        )
        # the cell diagram's wires carry step t's numbers
        wires = {
            el.get_attribute("data-n"): el.text.split()[-1]
            if el.get_attribute("data-n") != "f"
            else el.text.split()[1]
            for el in driver.find_elements(By.CSS_SELECTOR, "#cell [data-n]")
            if el.get_attribute("data-n") != "x"
        }
        f, g, o = (float(tr.gate(name)[t, 0, unit]) for name in "fgo")
        c_before, c = float(record.c_before[t, 0, unit]), float(record.c[t, 0, unit])
        exact = {"c_prev": c_before, "c": c, "f": f, "erased": 1 - f, "i": i, "g": g, "o": o,
                 "h": o * np.tanh(c)}  # fmt: skip
        for name, value in exact.items():  # as Trace.explain writes them: two decimals
            assert abs(float(wires[name]) - value) <= 0.005 + 1e-6, (t, name, wires[name], value)
        # products of the shown numbers, so within a rounding of the trace's
        for name, value in {"ig": i * g, "kept": f * c_before, "tanh": np.tanh(c)}.items():
            assert abs(float(wires[name]) - value) <= 0.011, (t, name, wires[name], value)
    assert_no_console_errors(driver)


def test_selecting_a_span_ranks_first_the_unit_built_to_follow_it(
    driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    tr = comment_unit_trace(PASSAGE)
    open_page(driver, write_explorer(tmp_path / "span.html", PASSAGE, tr))
    start = PASSAGE.index("# a comment")
    end = PASSAGE.index("\n", start) - 1  # the comment, without its newline
    spans = driver.find_elements(By.CSS_SELECTOR, "#text span")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", spans[start])
    # the reader drags across the comment, as they would select it
    left, right = -spans[start].size["width"] // 2 + 1, spans[end].size["width"] // 2 - 1
    drag = ActionChains(driver).move_to_element_with_offset(spans[start], left, 0)
    drag.click_and_hold().move_to_element_with_offset(spans[end], right, 0).release().perform()
    chips = driver.find_elements(By.CSS_SELECTOR, "#span-ranking .chip")
    assert chips, driver.find_element(By.ID, "span-ranking").text
    assert f"steps {start}–{end}" in driver.find_element(By.ID, "span-ranking").text
    assert chips[0].get_attribute("data-unit") == "5"
    chips[0].click()
    assert driver.execute_script("return explorer.state().unit") == 5
    assert_no_console_errors(driver)


def test_the_top_five_and_what_drove_them_are_the_models_softmax_and_trace_backward(
    driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from numpy_lstm.inspect.predict import next_characters

    text = PASSAGE[:300]
    vocab = Vocabulary.from_text(text)
    model = CharLM(len(vocab), 8, 12, 1, 0.0, np.random.default_rng(5), np.dtype("float64"))
    model.eval()
    ids = vocab.encode(text)
    alphabet = [vocab.decode([k]) for k in range(len(vocab))]
    predictions = next_characters(model.embedding, model.lstm, model.head, ids, alphabet)
    x = model.embedding(ids[:, None])  # (T, 1, E)
    tr = numpy_lstm.trace(model.lstm, x)
    logits = model.head(tr.layer().h)[:, 0].astype(np.float64)  # (T, V)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)  # the softmax, computed here on its own
    open_page(driver, write_explorer(tmp_path / "lm.html", text, tr, predictions=predictions))
    spans = driver.find_elements(By.CSS_SELECTOR, "#text span")
    window = predictions.window
    for t in (3, 40, 211):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", spans[t])
        spans[t].click()
        panel = driver.find_element(By.ID, "predictions")
        shown = [
            (li.get_attribute("data-char"), li.find_element(By.CSS_SELECTOR, ".p").text)
            for li in panel.find_elements(By.CSS_SELECTOR, "ol.top li")
        ]
        best = np.argsort(-p[t], kind="stable")[:5]
        assert [ch for ch, _ in shown] == [alphabet[k] for k in best]
        assert [float(q[:-1]) for _, q in shown] == pytest.approx(100 * p[t, best], abs=0.05)
        # gradient × input of log p(the top character) at step t, through the whole sequence
        d_logits = np.zeros((len(ids), 1, len(vocab)))
        d_logits[t, 0] = -p[t]
        d_logits[t, 0, best[0]] += 1.0  # ∂ log p_k / ∂ logits = onehot(k) − p
        tr.backward(model.head.backward(d_logits))
        saliency = (tr.input_grad[:, 0] * x[:, 0]).sum(-1)[: t + 1][::-1][:window]  # by lag
        expected = np.rint(100 * saliency / np.abs(saliency).max())
        cells = panel.find_elements(By.CSS_SELECTOR, ".saliency span")
        lags = [int(cell.get_attribute("data-lag")) for cell in cells]
        assert lags == list(range(min(window, t + 1)))[::-1]  # oldest first, as the text reads
        assert [int(cell.get_attribute("data-value")) for cell in cells] == expected[lags].tolist()
        assert [cell.get_attribute("textContent") for cell in cells] == [
            "·" if ch == " " else "↵" if ch == "\n" else ch for ch in text[t - lags[0] : t + 1]
        ]
    assert_no_console_errors(driver)
