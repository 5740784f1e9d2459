/* The page: the controls, the state they share, and the start. */

// -- saturation -------------------------------------------------------------------------------

/** Units ranked by the share of valid steps spent near their extremes: a gate below 0.1 or
    above 0.9 (as Trace.saturation), a signed value (tanh(c) for the memory) beyond ±0.9. */
function saturationRanking(data, key) {
  const plane = data.planes[key];
  const near = (code) => {
    const v = valueOf(code);
    if (KIND[key] === "gate") return v < 0.1 || v > 0.9;
    return Math.abs(key === "c" ? Math.tanh(v) : v) > 0.9;
  };
  let count = 0;
  for (let t = 0; t < data.T; t++) count += data.valid[t];
  const shares = Array.from({ length: data.H }, (_, u) => {
    let n = 0;
    for (let t = 0, base = u * data.T; t < data.T; t++) {
      if (data.valid[t] && near(plane[base + t])) n++;
    }
    return { u, share: n / Math.max(1, count) };
  });
  return shares.sort((a, b) => b.share - a.share || a.u - b.u);
}

// -- the controls -----------------------------------------------------------------------------

/** The quantity picker: one radio-like button per quantity. */
function buildQuantityPicker(container, quantities, onPick) {
  for (const q of quantities) {
    const b = button(q.label, "", () => onPick(q.key));
    b.dataset.q = q.key;
    b.title = q.about;
    b.setAttribute("role", "radio");
    container.append(b);
  }
}

/** The highlights: one-click picks of the units that track a feature of the text. */
function buildHighlightChips(container, highlights, onPick) {
  if (!highlights.length) return;
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.textContent = "units that track:";
  container.append(hint);
  for (const h of highlights) {
    const r = h.r === null || h.r === undefined ? "" : ` · r = ${h.r >= 0 ? "+" : "−"}${Math.abs(h.r).toFixed(2)}`;
    const chip = button(`${h.label} → unit ${h.unit}${r}`, "chip", () => onPick(h.unit));
    chip.dataset.unit = h.unit;
    container.append(chip);
  }
}

/** Keep things scrolled into view clear of the sticky bar, whatever its height. */
function followStickyBar(bar) {
  const clear = () => {
    document.documentElement.style.scrollPaddingTop = `${bar.offsetHeight + 8}px`;
  };
  window.addEventListener("resize", clear);
  clear();
}

// -- the page ---------------------------------------------------------------------------------

/** The notes panel: plain paragraphs Python sent (what the page's table and story mean). */
function buildNotes(container, notes) {
  if (!notes?.length) return;
  container.hidden = false;
  for (const text of notes) {
    const p = document.createElement("p");
    p.textContent = text;
    container.append(p);
  }
}

function main(meta, planes) {
  const data = makeData(meta, planes);
  const tables = colourTables(meta.scales);
  const labels = Object.fromEntries(meta.quantities.map((q) => [q.key, q.label]));
  const about = Object.fromEntries(meta.quantities.map((q) => [q.key, q.about]));
  const $ = (id) => document.getElementById(id);
  // start on the first highlighted unit: the one most likely to show something
  const first = meta.highlights.length ? meta.highlights[0].unit : 0;
  const state = { key: "c", unit: first, step: null, hover: null, saturated: { key: null, rank: -1 } };

  $("summary").textContent =
    `${data.T.toLocaleString("en")} ${meta.inputs?.length ? "steps" : "characters"} · ${data.H} units · layer ${meta.layer}` +
    (meta.directions > 1 ? `, ${meta.direction ? "reverse" : "forward"} direction` : "") +
    (meta.rounding_note ? ` · ${meta.rounding_note}` : "");
  const spans = buildText($("text"), data.chars, meta.placeholders);
  const names = new Map(meta.highlights.map((h) => [h.unit, h.label]));
  const redraw = () => requestAnimationFrame(() => { strip.draw(); heat.draw(); });
  const axis = makeTimeAxis(data.T, [$("strip-scroll"), $("hscroll")], redraw);
  axis.fit($("strip").clientWidth - GUTTER);
  const strip = makeStrip($("strip"), axis, data, tables, stripRows(meta, labels));
  const heat = makeHeatmap($("heat"), axis, data, tables, names, labels);
  const showCell = makeCellDiagram($("cell"), data, tables);
  const showPredictions = makePredictions($("predictions"), meta, planes, data, tables);
  buildNotes($("notes"), meta.notes);

  buildQuantityPicker($("quantities"), meta.quantities, (key) => setQuantity(key));
  buildHighlightChips($("highlights"), meta.highlights, (unit) => setUnit(unit));

  const unitInput = $("unit");
  const slider = $("unit-slider");
  unitInput.max = slider.max = data.H - 1;

  /** Recolour every character by the current unit and quantity. */
  function paintText() {
    const { css, at } = tables[state.key];
    const plane = planes[state.key];
    const base = state.unit * data.T;
    for (let t = 0; t < data.T; t++) {
      spans[t].style.backgroundColor = data.valid[t] ? css[at(plane[base + t], state.unit)] : PADDING_CSS;
    }
  }

  /** The step the story panel shows: the one under the pointer, else the marked one. */
  function showStep(t) {
    showCell(t, state.unit);
    showPredictions(t);
  }

  function render() {
    paintText();
    heat.setKey(state.key);
    heat.setMark({ unit: state.unit });
    strip.setUnit(state.unit);
    heat.draw();
    strip.draw();
    showStep(state.hover ?? state.step ?? 0);
    unitInput.value = slider.value = state.unit;
    for (const b of $("quantities").children) {
      b.setAttribute("aria-checked", String(b.dataset.q === state.key));
    }
    for (const c of document.querySelectorAll("#highlights .chip, #span-ranking .chip")) {
      c.classList.toggle("active", +c.dataset.unit === state.unit);
    }
    $("legend-bar").style.background = `linear-gradient(to right, ${tables[state.key].gradient})`;
    [$("legend-low").textContent, $("legend-high").textContent] =
      legendEnds(meta.scales, state.key, state.unit);
    const s = state.saturated;
    if (s.key !== state.key || s.unit !== state.unit) $("saturated").textContent = "most saturated";
    $("about").innerHTML =
      `<b>${escapeHtml(labels[state.key])}</b> of unit <b>${state.unit}</b>: ` +
      `${escapeHtml(about[state.key])}` +
      (state.key in meta.scales ? `, ±${meta.scales[state.key][state.unit].toPrecision(3)}` : "") + ".";
    $("strip-title").textContent = `The story of unit ${state.unit}` +
      (names.has(state.unit) ? ` (${names.get(state.unit)})` : "");
  }

  function setUnit(u) {
    state.unit = Math.min(data.H - 1, Math.max(0, Math.round(Number(u)) || 0));
    render();
  }
  function setQuantity(key) {
    state.key = key;
    render();
  }
  /** Mark step t (a click or a tap): outlined in the text, the strip and the heatmap, shown in
      the story panel, and scrolled into view along the time axis. */
  function markStep(t) {
    if (state.step !== null) spans[state.step].classList.remove("step");
    state.step = t;
    spans[t].classList.add("step");
    heat.setMark({ step: t });
    strip.setMarks({ step: t });
    axis.show(t, $("strip").clientWidth - GUTTER);
    strip.draw();
    heat.draw();
    showStep(t);
  }
  /** The step under the pointer (null: none): the story panel follows it. */
  function hoverStep(t) {
    if (t === state.hover) return;
    state.hover = t;
    strip.setMarks({ hover: t });
    strip.draw();
    showStep(t ?? state.step ?? 0);
  }

  unitInput.addEventListener("input", () => setUnit(unitInput.value));
  slider.addEventListener("input", () => setUnit(slider.value));
  $("prev").addEventListener("click", () => setUnit(state.unit - 1));
  $("next").addEventListener("click", () => setUnit(state.unit + 1));
  const rankings = {};
  $("saturated").addEventListener("click", () => {
    rankings[state.key] ??= saturationRanking(data, state.key);
    const s = state.saturated;
    s.rank = s.key === state.key && s.unit === state.unit ? (s.rank + 1) % data.H : 0;
    s.key = state.key;
    const { u, share } = rankings[state.key][s.rank];
    s.unit = u;
    setUnit(u);
    $("saturated").textContent = `most saturated #${s.rank + 1}: unit ${u} (${Math.round(100 * share)}%)`;
  });
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement) return;
    if (e.key === "[") setUnit(state.unit - 1);
    if (e.key === "]") setUnit(state.unit + 1);
  });

  // the card of step t, unit u, showing quantity `key`, at the pointer
  const tip = $("tip");
  const card = (t, u, key, e) => showTip(tip, tooltipHtml(data, t, u, key, labels, tables), e.clientX, e.clientY);

  // hover, click and select on the text
  const text = $("text");
  text.addEventListener("mouseover", (e) => {
    const t = e.target.dataset?.t;
    if (t === undefined) return;
    hoverStep(+t);
    card(+t, state.unit, state.key, e);
  });
  text.addEventListener("mouseleave", () => { tip.hidden = true; hoverStep(null); });
  // a click (or a tap, on a phone, where nothing hovers) marks the step and shows its card;
  // a drag selects a span, and the units that single it out are listed
  text.addEventListener("click", (e) => {
    const span = selectedSteps(text);
    if (span) {
      tip.hidden = true;
      rankSpan(...span);
      return;
    }
    const t = e.target.dataset?.t;
    if (t === undefined) return;
    markStep(+t);
    card(+t, state.unit, state.key, e);
  });
  function rankSpan(first, last) {
    const ranked = rankBySpan(data, tables, state.key, first, last);
    showSpanRanking($("span-ranking"), data, ranked, first, last, labels[state.key], setUnit);
    render();
    return ranked;
  }

  // hover and click on the canvases along the time axis
  function onCanvas(canvas, view, pick) {
    const pointOf = (e) => {
      const r = canvas.getBoundingClientRect();
      return view.hit(e.clientX - r.left, e.clientY - r.top);
    };
    canvas.addEventListener("mousemove", (e) => {
      const p = pointOf(e);
      if (!p) { tip.hidden = true; return; }
      hoverStep(p.t);
      card(p.t, p.u ?? state.unit, p.key in labels ? p.key : state.key, e);
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; hoverStep(null); });
    canvas.addEventListener("click", (e) => {
      const p = pointOf(e);
      if (!p) return;
      pick(p);
      markStep(p.t);
      card(p.t, state.unit, p.key in labels ? p.key : state.key, e);
    });
    canvas.addEventListener("wheel", (e) => {
      const dx = e.shiftKey ? e.deltaY : e.deltaX;
      if (dx) { axis.scrollTo(axis.left + dx); e.preventDefault(); }
    }, { passive: false });
  }
  onCanvas($("heat"), heat, (p) => setUnit(p.u));
  onCanvas($("strip"), strip, () => {});
  const width = () => $("strip").clientWidth - GUTTER;
  $("time-in").addEventListener("click", () => axis.zoom(+1, width()));
  $("time-out").addEventListener("click", () => axis.zoom(-1, width()));
  $("rows-in").addEventListener("click", () => heat.zoomRows(+1));
  $("rows-out").addEventListener("click", () => heat.zoomRows(-1));
  window.addEventListener("resize", redraw);
  followStickyBar(document.querySelector(".bar"));

  render();
  // a small API for scripts and tests: the page's own numbers, words and layout
  return {
    setUnit, setQuantity, markStep, rankSpan,
    explain: (t, u) => explain(data, t, u),
    palette: (key) => [...tables[key].css],
    state: () => ({ ...state }),
    heatLayout: () => heat.layout(),
    stripLayout: () => strip.layout(),
  };
}

(async () => {
  const started = performance.now();
  const meta = JSON.parse(document.getElementById("meta").textContent);
  const planes = expandRounding(await readPlanes(), meta);
  const decoded = performance.now();
  window.explorer = main(meta, planes);
  document.getElementById("loading").hidden = true;
  window.explorerTimings = { decodeMs: decoded - started, buildMs: performance.now() - decoded };
  document.documentElement.dataset.ready = "true";
})().catch((err) => {
  document.getElementById("loading").textContent = `Could not read the trace: ${err}`;
  throw err;
});
