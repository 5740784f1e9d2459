"""The explorer page in a real browser: headless Debian Chromium, driven by Selenium.

The page loads without console errors and fetches nothing, picking a unit (number, slider,
buttons, highlights, "most saturated") recolours the text, hovering a character or a heatmap
cell shows the trace's numbers and Trace.explain's narration word for word (the page fills in
the sentences Python sends: reworded there, the page follows), and a page of 10,000 characters ×
256 units loads and recolours quickly.

The browser is Debian's chromium and chromium-driver, which `make browser` installs (`make test`
runs it; CI runs `make test`). When either is missing the tests FAIL, naming that target — they
never skip. Selenium is given the driver's path, so it never downloads one.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import numpy_lstm
from browser import (
    PASSAGE,
    assert_card_matches_trace,
    assert_no_console_errors,
    char_lm_trace,
    chars,
    heat_point,
    hover_card,
    line_counter_trace,
    move_to,
    open_page,
    pick_unit,
    rgb,
    tap,
    text_colours,
)  # fmt: skip
from numpy_lstm.inspect import rank_units, text_features, write_explorer
from numpy_lstm.tasks.charlm import default_corpus


def test_page_loads_without_errors_or_network_and_shows_every_character(
    driver: Any, lm_page: tuple
) -> None:
    path, _, highlights = lm_page
    open_page(driver, path)
    assert_no_console_errors(driver)
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    shown = driver.execute_script(
        "return [...document.querySelectorAll('#text span')].map((s) => s.textContent)"
    )
    expected = ["↵" if ch == "\n" else ch for ch in chars()]
    assert shown == expected  # one span per code point: 🙂 does not shift the steps after it
    assert driver.execute_script("return document.getElementById('unit').value") == str(
        next(iter(highlights.values()))
    )


def test_picking_a_unit_or_a_quantity_recolours_the_text(driver: Any, lm_page: tuple) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    path, tr, highlights = lm_page
    open_page(driver, path)
    c = tr.layer().c[:, 0]  # (T, H)
    unit = int(np.argmax(np.minimum(-c.min(axis=0), c.max(axis=0))))  # has both signs
    pick_unit(driver, unit)
    colours = text_colours(driver)
    lowest, highest = rgb(colours[int(c[:, unit].argmin())]), rgb(colours[int(c[:, unit].argmax())])
    assert lowest[2] > lowest[0] and highest[0] > highest[2]  # blue below zero, red above

    other = (unit + 5) % tr.lstm.hidden_size
    pick_unit(driver, other)
    assert text_colours(driver) != colours
    pick_unit(driver, unit)
    assert text_colours(driver) == colours  # a function of the unit, nothing else

    driver.find_element(By.ID, "unit-slider").send_keys(Keys.ARROW_RIGHT)
    assert driver.find_element(By.ID, "unit").get_attribute("value") == str(unit + 1)
    driver.find_element(By.ID, "prev").click()
    assert text_colours(driver) == colours

    driver.find_element(By.CSS_SELECTOR, "#quantities button[data-q='i']").click()
    filters = text_colours(driver)
    assert filters != colours
    greens = [rgb(colour) for colour in filters]
    assert all(g >= r for r, g, _ in greens)  # the sequential (gate) palette

    # the Eraser's colours say what it erases, 1 − f, on a palette of its own (white: keeps all)
    driver.find_element(By.CSS_SELECTOR, "#quantities button[data-q='e']").click()
    palette = [rgb(css) for css in driver.execute_script("return explorer.palette('e')")]
    erased = 100 - np.rint(100 * tr.gate("f")[:, 0, unit].astype(np.float64))  # in percent
    expected = [palette[int(np.floor(255 * e / 100 + 0.5))] for e in erased]
    assert [rgb(colour) for colour in text_colours(driver)] == expected

    target = next(iter(highlights.values()))
    driver.find_element(By.CSS_SELECTOR, f"#highlights .chip[data-unit='{target}']").click()
    assert driver.execute_script("return explorer.state().unit") == target

    driver.find_element(By.ID, "saturated").click()
    picked = driver.execute_script("return explorer.state().unit")
    closed, opened = tr.saturation("f")
    share = closed + opened
    assert share[picked] >= share.max() - 2 / tr.steps  # percent rounding may move a boundary
    assert_no_console_errors(driver)


def test_hovering_a_character_shows_the_trace_numbers_and_narration(
    driver: Any, lm_page: tuple
) -> None:
    from selenium.webdriver.common.by import By

    path, tr, _ = lm_page
    open_page(driver, path)
    spans = driver.find_elements(By.CSS_SELECTOR, "#text span")
    newline, emoji = chars().index("\n"), chars().index("🙂")
    for t, u in [(0, 0), (9, 3), (newline, 7), (emoji + 2, 11), (len(chars()) - 1, 15)]:
        pick_unit(driver, u)
        assert_card_matches_trace(hover_card(driver, spans[t]), tr, t, u)
    assert_no_console_errors(driver)


def test_hovering_and_clicking_the_heatmap(driver: Any, lm_page: tuple) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    path, tr, _ = lm_page
    open_page(driver, path)
    canvas = driver.find_element(By.ID, "heat")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    t, u = 6, 4
    move_to(driver, *heat_point(driver, t, u))
    tip = driver.find_element(By.ID, "tip")
    assert tip.find_element(By.CSS_SELECTOR, ".where").text == f"step {t} · unit {u}"
    # the heatmap shows the quantity on show (the memory, at first)
    assert tip.find_element(By.CSS_SELECTOR, "tr.current").get_attribute("data-q") == "c"
    assert tip.find_element(By.CSS_SELECTOR, ".narration").text == tr.explain(t, u)
    ActionChains(driver).click().perform()
    assert driver.execute_script("return explorer.state()")["unit"] == u
    assert "step" in driver.find_elements(By.CSS_SELECTOR, "#text span")[t].get_attribute("class")
    assert_no_console_errors(driver)


def test_a_click_on_any_row_of_256_units_picks_that_unit(driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    text = default_corpus()[:400]
    tr = char_lm_trace(text, hidden=256)
    open_page(driver, write_explorer(tmp_path / "rows.html", text, tr, highlights={"first": 3}))
    assert driver.execute_script("return explorer.heatLayout().rowH") >= 2
    canvas = driver.find_element(By.ID, "heat")
    for unit in (0, 109, 110, 200, 255):
        # the rows scroll inside their box: bring the unit's row to the middle of the screen
        driver.execute_script(
            "const [canvas, u] = arguments, box = canvas.parentElement, l = explorer.heatLayout();"
            "box.scrollTop = l.top + u * l.rowH - box.clientHeight / 2;"
            "box.scrollIntoView({block: 'center'});",
            canvas,
            unit,
        )
        x, y = heat_point(driver, 12, unit)
        move_to(driver, x, y)
        ActionChains(driver).click().perform()
        assert driver.execute_script("return explorer.state().unit") == unit
    # taller rows, and the named unit is labelled beside its row
    before = driver.execute_script("return explorer.heatLayout().rowH")
    taller = driver.find_element(By.ID, "rows-in")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", taller)
    taller.click()
    assert driver.execute_script("return explorer.heatLayout().rowH") > before
    assert_no_console_errors(driver)


def all_narrations(driver: Any, steps: int, units: int) -> list[str]:
    return driver.execute_script(
        "const [T, H] = arguments;"
        "return Array.from({length: T * H}, (_, k) => explorer.explain(k % T, Math.floor(k / T)))",
        steps,
        units,
    )


def test_page_narration_is_trace_explain_for_every_step_and_unit(
    driver: Any, lm_page: tuple
) -> None:
    path, tr, _ = lm_page
    open_page(driver, path)
    T, H = tr.steps, tr.lstm.hidden_size
    expected = [tr.explain(t, u) for u in range(H) for t in range(T)]
    assert all_narrations(driver, T, H) == expected


@pytest.mark.parametrize("direction", [0, 1])
def test_narration_matches_for_padding_and_the_reverse_direction(
    driver: Any, tmp_path: Path, rng: np.random.Generator, direction: int
) -> None:
    lstm = numpy_lstm.LSTM(3, 5, bidirectional=True, dtype=np.float64, rng=rng)
    mask = np.ones((2, 14), dtype=bool)
    mask[0, [4, 5]] = False  # a hole: the page says "padding" there, as explain does
    tr = numpy_lstm.trace(lstm, 3 * rng.standard_normal((14, 2, 3)), mask=mask)
    text = "abcdefghijklmn"
    open_page(driver, write_explorer(tmp_path / "bi.html", text, tr, direction=direction))
    expected = [tr.explain(t, u, direction=direction) for u in range(5) for t in range(14)]
    assert all_narrations(driver, 14, 5) == expected
    assert "step 4: padding" in expected[4]
    assert_no_console_errors(driver)


def test_memories_far_beyond_a_byte_are_narrated_exactly(driver: Any, tmp_path: Path) -> None:
    """Units that never forget: their memories count the steps, to ±700, stored in 4 bytes."""
    lstm = numpy_lstm.LSTM(1, 3, dtype=np.float32)
    state = {name: np.zeros_like(value) for name, value in lstm.state_dict().items()}
    state["bias_ih_l0"][:] = 20.0  # every gate open
    state["bias_ih_l0"][6:9] = [20.0, -20.0, 0.3]  # the Writers: +1, −1 and tanh(0.3 + x)
    state["weight_ih_l0"][6:9, 0] = [0.0, 0.0, 1.0]
    lstm.load_state_dict(state)
    x = np.where(np.arange(700) % 3 == 0, 1.0, -2.0).astype(np.float32)[:, None]
    tr = numpy_lstm.trace(lstm, x)
    assert np.abs(tr.layer().c).max() > 600
    path = write_explorer(tmp_path / "count.html", "abc" * 233 + "a", tr)
    assert 'data-dtype="u4"' in path.read_text("utf-8")
    open_page(driver, path)
    expected = [tr.explain(t, u) for u in range(3) for t in range(700)]
    assert all_narrations(driver, 700, 3) == expected
    assert_no_console_errors(driver)


def test_ten_thousand_characters_by_256_units_load_and_recolour_quickly(
    driver: Any, tmp_path: Path, record_property: Any
) -> None:
    """Loose bounds to catch pathological slowness only; the measured times are reported."""
    from selenium.webdriver.common.by import By

    text = default_corpus()[:10_000]
    tr = char_lm_trace(text, hidden=256)
    path = write_explorer(tmp_path / "big.html", text, tr, highlights={"first": 3})
    load = open_page(driver, path, timeout=120)
    in_page = driver.execute_script("return window.explorerTimings")
    measure = (
        "const done = arguments[arguments.length - 1]; const start = performance.now();"
        "%s; document.body.getBoundingClientRect();"  # force style and layout now
        "requestAnimationFrame(() => setTimeout(() => done(performance.now() - start)));"
    )
    recolour = driver.execute_async_script(measure % "explorer.setUnit(200)")
    requantify = driver.execute_async_script(measure % "explorer.setQuantity('e')")
    scroll = driver.execute_async_script(
        measure % "document.getElementById('hscroll').scrollLeft = 1e9"
    )
    timings = {
        "page_MB": path.stat().st_size / 1e6,
        "load_s": load,
        **in_page,
        "recolour_ms": recolour,
        "quantity_ms": requantify,
        "heat_scroll_ms": scroll,
    }
    record_property("explorer_10k_x_256", timings)
    print(f"\n10,000 chars × 256 units: {timings}")
    assert load < 30 and in_page["decodeMs"] + in_page["buildMs"] < 10_000
    assert recolour < 10_000 and requantify < 10_000 and scroll < 10_000
    span = driver.find_elements(By.CSS_SELECTOR, "#text span")[9_999]
    assert_card_matches_trace(hover_card(driver, span), tr, 9_999, 200)
    assert_no_console_errors(driver)


def test_the_page_narrates_with_the_sentences_python_sends(
    driver: Any, tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wording lives in Python only: reword it there and the page says the new words."""
    # the module, not the function numpy_lstm.inspect.trace that shadows its name
    trace_module = importlib.import_module("numpy_lstm.inspect.trace")
    reworded = "{unit}@{step}: {{kept}} {f}, let {i} of {g}, showed {o}; {c_before} to {c}: {h}"
    monkeypatch.setattr(trace_module, "NARRATION", reworded)
    monkeypatch.setattr(trace_module, "PADDING_NARRATION", "{step} is padding")
    lstm = numpy_lstm.LSTM(2, 3, dtype=np.float64, rng=rng)
    mask = np.ones((1, 6), dtype=bool)  # (batch, time)
    mask[0, 4:] = False
    tr = numpy_lstm.trace(lstm, rng.standard_normal((6, 1, 2)), mask=mask)
    open_page(driver, write_explorer(tmp_path / "reworded.html", "abcdef", tr))
    expected = [tr.explain(t, u) for u in range(3) for t in range(6)]
    assert expected[0].startswith("0@0: {kept} ") and expected[4] == "4 is padding"
    assert all_narrations(driver, 6, 3) == expected
    assert_no_console_errors(driver)


# -- colour that shows the signal, and a phone --------------------------------------------------


def test_every_pick_shows_its_feature_in_colours_that_vary(driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from numpy_lstm.inspect.features import colour_spread

    tr = line_counter_trace(PASSAGE)
    c = tr.layer().c[:, 0]
    assert c[:, 11].max() > 40 and colour_spread(np.tanh(c[:, 11])) > 0.9  # tanh: flat
    ranked = rank_units(tr, text_features(PASSAGE))
    assert ranked["position in line"][0] == 11
    open_page(driver, write_explorer(tmp_path / "picks.html", PASSAGE, tr, highlights=ranked))
    palette = {
        rgb(css): k for k, css in enumerate(driver.execute_script("return explorer.palette('c')"))
    }
    chips = driver.find_elements(By.CSS_SELECTOR, "#highlights .chip")
    assert len(chips) == len(ranked) > 0
    for chip, (name, (unit, r)) in zip(chips, ranked.items(), strict=True):
        assert chip.text == f"{name} → unit {unit} · r = {'+' if r >= 0 else '−'}{abs(r):.2f}"
        assert abs(r) >= 0.3
        chip.click()
        assert driver.execute_script("return explorer.state().unit") == unit
        # the rendered colours, read back to their place on the scale: not one flat colour
        shown = np.array([palette[rgb(colour)] for colour in text_colours(driver)]) / 255 * 2 - 1
        assert colour_spread(shown) <= 0.8, (name, unit, colour_spread(shown))
    # the legend states the scale of the unit on show: its own, not tanh's ±1
    legend = driver.find_element(By.ID, "legend-high").text
    scale = driver.execute_script("return JSON.parse(meta.textContent).scales.c")[unit]
    assert legend.startswith("≥ +") and float(legend[3:]) == pytest.approx(scale, rel=5e-3)
    assert_no_console_errors(driver)


def test_a_phone_sees_the_whole_width_and_can_tap(driver: Any, tmp_path: Path) -> None:
    tr = line_counter_trace(PASSAGE)
    path = write_explorer(
        tmp_path / "phone.html", PASSAGE, tr, highlights=rank_units(tr, text_features(PASSAGE))
    )
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.execute_cdp_cmd(
        "Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1}
    )
    try:
        open_page(driver, path)
        width, height, scroll_width, bar = driver.execute_script(
            "return [innerWidth, innerHeight, document.scrollingElement.scrollWidth,"
            " document.querySelector('.bar').getBoundingClientRect().height]"
        )
        assert (width, height) == (390, 844)
        assert scroll_width <= width  # nothing lays out wider than the screen
        assert bar <= height / 4, bar  # the sticky header leaves most of the screen to the text
        # a tap on a character marks its step and shows its card
        x, y = driver.execute_script(
            "const r = document.querySelector('#text span[data-t=\"5\"]').getBoundingClientRect();"
            "return [r.left + r.width / 2, r.top + r.height / 2]"
        )
        tap(driver, x, y)
        assert driver.execute_script("return explorer.state().step") == 5
        assert driver.execute_script("return document.getElementById('tip').hidden") is False
        # a tap on a heatmap row picks that unit
        unit = 3
        driver.execute_script(
            "const c = document.getElementById('heat'), bar = document.querySelector('.bar');"
            "scrollBy(0, c.getBoundingClientRect().top - bar.offsetHeight - 40);"
        )
        x, y = heat_point(driver, 1, unit)
        time.sleep(0.5)  # two quick taps would read as a double tap
        tap(driver, x, y)
        assert driver.execute_script("return explorer.state().unit") == unit
        assert_no_console_errors(driver)
    finally:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
