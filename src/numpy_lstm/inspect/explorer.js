"use strict";
/* The gate explorer page (built by numpy_lstm/inspect/explorer.py).

   Data: #meta is small JSON (text, sizes, labels, and Trace.explain's sentences with how each of
   their numbers is formatted); each #plane-KEY holds one quantity as base64 of deflated,
   byte-shuffled, unit-major codes: plane[unit * T + step]. A code is 2·|n| + sign, where n is
   the number Trace.explain prints (gates in whole percent, the rest in hundredths), so the page
   narrates with exactly Python's numbers and words. Nothing here touches the network. */

// -- decoding -----------------------------------------------------------------------------------

const ARRAY_TYPES = { u1: Uint8Array, u2: Uint16Array, u4: Uint32Array };

/** base64 → bytes → inflated by the browser's own zlib (no library needed). */
async function inflate(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let k = 0; k < binary.length; k++) bytes[k] = binary.charCodeAt(k);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Response(stream).arrayBuffer();
}

/** Undo the byte shuffle of wide dtypes: the bytes come grouped by significance. */
function unshuffle(buffer, Type) {
  const bytes = new Uint8Array(buffer);
  if (Type === Uint8Array) return bytes;
  const n = bytes.length / Type.BYTES_PER_ELEMENT;
  const out = new Type(n);
  for (let b = 0; b < Type.BYTES_PER_ELEMENT; b++) {
    for (let k = 0, offset = b * n, shift = 8 * b; k < n; k++) out[k] |= bytes[offset + k] << shift;
  }
  return out;
}

/** Every #plane-KEY as a typed array, decoded once; the base64 text is dropped afterwards. */
async function readPlanes() {
  const elements = [...document.querySelectorAll("script[id^='plane-']")];
  const arrays = await Promise.all(
    elements.map(async (el) => {
      const buffer = await inflate(el.textContent.trim());
      return unshuffle(buffer, ARRAY_TYPES[el.dataset.dtype]);
    })
  );
  const planes = {};
  elements.forEach((el, k) => {
    planes[el.id.slice("plane-".length)] = arrays[k];
    el.textContent = "";
  });
  return planes;
}

/** A long page stores its numbers in steps of meta.rounding[key][unit] (a whole number of
    percent or hundredths): multiply them back into codes of percent or hundredths, so every
    later reader sees one format. Short pages have no rounding and are left as they are. */
function expandRounding(planes, meta) {
  const T = meta.steps;
  for (const [key, steps] of Object.entries(meta.rounding ?? {})) {
    const stored = planes[key];
    const out = new Uint32Array(stored.length);
    steps.forEach((step, u) => {
      for (let k = u * T; k < (u + 1) * T; k++) out[k] = 2 * step * (stored[k] >>> 1) + (stored[k] & 1);
    });
    planes[key] = out;
  }
  return planes;
}

// -- numbers and words --------------------------------------------------------------------------

const magnitude = (code) => code >>> 1;
const isNegative = (code) => (code & 1) === 1;
/** The number a code stands for, n / 100 (gates: a fraction, the rest: their value). */
const valueOf = (code) => (isNegative(code) ? -magnitude(code) : magnitude(code)) / 100;

/** "12.34" from 1234 hundredths, digit by digit so no float rounding can creep in. */
function decimal(m) {
  return `${Math.floor(m / 100)}.${String(m % 100).padStart(2, "0")}`;
}
/** Python's f"{100 * gate:.0f}%". */
const percent = (code) => `${isNegative(code) ? "-" : ""}${magnitude(code)}%`;
/** Python's f"{x:+.2f}" (a small negative value prints as -0.00, hence the stored sign). */
const signed2 = (code) => `${isNegative(code) ? "-" : "+"}${decimal(magnitude(code))}`;
/** A gate as a fraction with two decimals: 97% → "0.97". */
const fraction = (code) => `${isNegative(code) ? "-" : ""}${decimal(magnitude(code))}`;

/** The number formats of the narration's fields (NUMBER_FORMATS in numpy_lstm/inspect/trace.py). */
/** The Eraser's number 1 − f from f's percent: Python's f"{100 - round(100 * f)}%". */
const erased = (code) => `${100 - magnitude(code)}%`;
const FORMATS = { percent, erased, signed: signed2 };

/** A template's plain {name} fields replaced by values[name]; a doubled brace is a literal one,
    as in Python's str.format. */
function fill(template, values) {
  return template.replace(/\{\{|\}\}|\{(\w+)\}/g, (match, name) => {
    if (name === undefined) return match[0];
    if (!Object.hasOwn(values, name)) throw new Error(`narration: no value for {${name}}`);
    return String(values[name]);
  });
}

/** The narration of step t, unit u: the sentence Python sent (meta.narration), filled in with
    the stored numbers, so it reads word for word as Trace.explain writes it. */
function explain(data, t, u) {
  const { sentence, padding, fields } = data.narration;
  if (!data.valid[t]) return fill(padding, { step: t });
  const values = { step: t, unit: u };
  for (const [field, kind] of Object.entries(fields)) {
    if (!(kind in FORMATS)) throw new Error(`narration: unknown number format ${kind}`);
    // every field is a plane, except the memory a step started from
    const code = field === "c_before" ? data.memoryBefore(t, u) : data.code(field, t, u);
    values[field] = FORMATS[kind](code);
  }
  return fill(sentence, values);
}

function makeData(meta, planes) {
  const T = meta.steps;
  return {
    T, H: meta.units, valid: planes.valid, planes, narration: meta.narration,
    chars: Array.from(meta.text), // code points, as Python indexes the text
    code: (q, t, u) => planes[q][u * T + t],
    /** The memory step t started from: what the previous step in reading order ended with. */
    memoryBefore(t, u) {
      const previous = meta.direction === 0 ? t - 1 : t + 1;
      return previous >= 0 && previous < T ? planes.c[u * T + previous] : meta.c_edge[u];
    },
  };
}

// -- colours ----------------------------------------------------------------------------------

// Light enough at both ends that dark text stays readable on every background.
const PALETTES = {
  gate: ["#fbfcfd", "#dcefe9", "#aadccc", "#6cc3a9", "#3aa384"], // 0 closed → 1 open
  signed: ["#3d7cc9", "#a6c8ea", "#f7f7f5", "#f3ab8e", "#d4553b"], // −1 → 0 → +1
};
const PADDING_CSS = "#e4e7eb";
const PADDING_RGBA = 0xffebe7e4; // the same colour as ImageData bytes R, G, B, A

const hexToRgb = (hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));

/** 256 colours interpolated through the stops: [[r, g, b], …]. */
function ramp(stops) {
  const rgb = stops.map(hexToRgb);
  return Array.from({ length: 256 }, (_, k) => {
    const x = (k / 255) * (rgb.length - 1);
    const j = Math.min(Math.floor(x), rgb.length - 2);
    return rgb[j].map((a, c) => Math.round(a + (rgb[j + 1][c] - a) * (x - j)));
  });
}

/** What the colour shows, −1…1 (0…1 for a gate): the memory and the output on unit u's own
    scale (meta.scales: a high percentile of |value| over the text), clipped at its ends. */
function shownValue(scales, key, code, u) {
  const v = valueOf(code);
  return key in scales ? Math.min(1, Math.max(-1, v / scales[key][u])) : v;
}

/** Where a shown value sits on its palette, 0…255. */
function paletteIndex(key, x) {
  const y = KIND[key] === "gate" ? x : (x + 1) / 2;
  return Math.round(255 * Math.min(1, Math.max(0, y)));
}

const KIND = { c: "signed", h: "signed", g: "signed", i: "gate", f: "gate", o: "gate" };
const ENDS = {
  g: ["−1", "+1"],
  i: ["0 · blocks", "1 · lets in"], o: ["0 · hides", "1 · shows"],
  f: ["0 · Eraser wipes all", "1 · keeps all"], // f is the share kept; the Eraser wipes 1 − f
};

/** The legend's ends: fixed for the gates, unit u's own scale for the memory and the output. */
function legendEnds(scales, key, u) {
  if (!(key in scales)) return ENDS[key];
  const s = scales[key][u].toPrecision(3);
  return [`${key} ≤ −${s}`, `≥ +${s}`];
}

/** Per quantity, its palette (computed once): css strings for the text, packed RGBA words for
    the heatmap's ImageData, both indexed by at(code, unit). */
function colourTables(scales) {
  const tables = { scales };
  for (const key of Object.keys(KIND)) {
    const palette = ramp(PALETTES[KIND[key]]);
    const css = palette.map(([r, g, b]) => `rgb(${r}, ${g}, ${b})`);
    // ImageData bytes are R, G, B, A
    const rgba = Uint32Array.from(palette, ([r, g, b]) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0);
    const gradient = PALETTES[KIND[key]].join(", ");
    const at = (code, u) => paletteIndex(key, shownValue(scales, key, code, u));
    tables[key] = { css, rgba, gradient, at };
  }
  return tables;
}

// -- the text -------------------------------------------------------------------------------

/** What a character looks like on the page: newlines as ↵ (then a real break), control
    characters as their Unicode pictures. */
function shown(ch) {
  if (ch === "\n") return "↵";
  const code = ch.codePointAt(0);
  if (code < 0x20 && ch !== "\t") return String.fromCodePoint(0x2400 + code);
  return code === 0x7f ? "␡" : ch;
}

function buildText(container, chars, placeholders) {
  const fragment = document.createDocumentFragment();
  const standIns = new Set(placeholders);
  const spans = chars.map((ch, t) => {
    const span = document.createElement("span");
    span.textContent = shown(ch);
    span.dataset.t = t;
    if (ch === "\n") span.className = "nl";
    if (standIns.has(t)) {
      span.className = "unknown";
      span.title = "a character the model cannot read: it read this stand-in instead";
    }
    fragment.append(span);
    if (ch === "\n") fragment.append("\n");
    return span;
  });
  container.replaceChildren(fragment);
  return spans;
}

// -- the heatmaps ---------------------------------------------------------------------------

// layout in css px: the step ruler on top, then per quantity a strip of text and a block
const HEAT = { colW: 10, gutter: 136, ruler: 16, axis: 20, gap: 12, blocks: ["i", "f", "g", "o", "c"] };

/** Units × steps, one block per gate (and the memory), drawing only the visible columns. */
function makeHeatmap(canvas, scroller, spacer, data, tables, labels) {
  const rowH = Math.max(1, Math.min(10, Math.floor(160 / data.H)));
  const blockH = data.H * rowH;
  const top = (b) => HEAT.ruler + HEAT.axis + b * (HEAT.axis + blockH + HEAT.gap);
  const height = top(HEAT.blocks.length) - HEAT.gap + 2;
  const ctx = canvas.getContext("2d");
  // one offscreen pixel per (step, unit), scaled up without smoothing: cheap and crisp
  const offscreen = document.createElement("canvas");
  spacer.style.width = `${data.T * HEAT.colW}px`;
  let mark = { step: null, unit: 0 };

  function visible() {
    const first = Math.floor(scroller.scrollLeft / HEAT.colW);
    const width = canvas.clientWidth - HEAT.gutter;
    return { first, count: Math.min(data.T - first, Math.ceil(width / HEAT.colW) + 1),
      shift: HEAT.gutter - (scroller.scrollLeft % HEAT.colW) };
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(height * dpr);
      canvas.style.height = `${height}px`;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, height);
    const { first, count, shift } = visible();
    if (count <= 0) return;
    offscreen.width = count;
    offscreen.height = data.H;
    const octx = offscreen.getContext("2d");
    const image = octx.createImageData(count, data.H);
    const words = new Uint32Array(image.data.buffer);
    ctx.save();
    ctx.beginPath();
    ctx.rect(HEAT.gutter, 0, cssW - HEAT.gutter, height);
    ctx.clip();
    ctx.imageSmoothingEnabled = false;
    HEAT.blocks.forEach((key, b) => {
      const plane = data.planes[key];
      const { rgba, at } = tables[key];
      for (let u = 0; u < data.H; u++) {
        const base = u * data.T + first;
        for (let k = 0; k < count; k++) {
          words[u * count + k] = data.valid[first + k] ? rgba[at(plane[base + k], u)] : PADDING_RGBA;
        }
      }
      octx.putImageData(image, 0, 0);
      ctx.drawImage(offscreen, shift, top(b), count * HEAT.colW, blockH);
    });
    drawColumnsAndRows(first, count, shift);
    ctx.restore();
    drawGutter();
  }

  /** The step ruler, the text above every block, the marked step and the selected unit. */
  function drawColumnsAndRows(first, count, shift) {
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    ctx.font = "10px ui-monospace, 'DejaVu Sans Mono', monospace";
    ctx.fillStyle = "#8c959f";
    for (let t = Math.ceil(first / 10) * 10; t < first + count; t += 10) {
      const x = shift + (t - first) * HEAT.colW;
      ctx.fillRect(x, HEAT.ruler - 5, 1, 5);
      ctx.fillText(String(t), x + 2, HEAT.ruler / 2 - 1);
    }
    // the text again above each block, so every heatmap can be read without scrolling up
    ctx.textAlign = "center";
    ctx.font = "12px ui-monospace, 'DejaVu Sans Mono', monospace";
    for (let k = 0; k < count; k++) {
      const ch = data.chars[first + k];
      ctx.fillStyle = ch === " " || ch === "\n" ? "#afb8c1" : "#1f2328";
      const x = shift + (k + 0.5) * HEAT.colW;
      const glyph = ch === " " ? "·" : shown(ch);
      HEAT.blocks.forEach((_, b) => ctx.fillText(glyph, x, top(b) - HEAT.axis / 2));
    }
    const right = canvas.clientWidth;
    ctx.strokeStyle = "rgba(31, 35, 40, 0.85)";
    ctx.lineWidth = 1;
    HEAT.blocks.forEach((_, b) => {
      const y = top(b) + mark.unit * rowH;
      ctx.strokeRect(HEAT.gutter + 0.5, y - 0.5, right - HEAT.gutter - 1, rowH + 1);
    });
    if (mark.step !== null && mark.step >= first && mark.step < first + count) {
      const x = shift + (mark.step - first) * HEAT.colW;
      ctx.strokeStyle = "#2f6fdd";
      ctx.lineWidth = 2;
      ctx.strokeRect(x, HEAT.ruler, HEAT.colW, height - HEAT.ruler);
    }
  }

  /** Block labels, unit ticks and the selected unit's marker in the left margin. */
  function drawGutter() {
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    HEAT.blocks.forEach((key, b) => {
      const y0 = top(b);
      ctx.fillStyle = "#1f2328";
      ctx.font = "600 12px system-ui, sans-serif";
      ctx.fillText(labels[key], HEAT.gutter - 14, y0 + blockH / 2);
      if (blockH >= 64) { // unit numbers at the block's ends, where there is room
        ctx.fillStyle = "#8c959f";
        ctx.font = "10px ui-monospace, monospace";
        ctx.fillText("unit 0", HEAT.gutter - 14, y0 + 6);
        ctx.fillText(String(data.H - 1), HEAT.gutter - 14, y0 + blockH - 5);
      }
      const y = y0 + mark.unit * rowH + rowH / 2;
      ctx.fillStyle = "#2f6fdd";
      ctx.beginPath();
      ctx.moveTo(HEAT.gutter - 2, y);
      ctx.lineTo(HEAT.gutter - 9, y - 4);
      ctx.lineTo(HEAT.gutter - 9, y + 4);
      ctx.fill();
    });
  }

  /** (step, unit) under a point of the canvas, or null. */
  function hit(x, y) {
    if (x < HEAT.gutter) return null;
    const t = Math.floor((x - HEAT.gutter + scroller.scrollLeft) / HEAT.colW);
    const b = HEAT.blocks.findIndex((_, k) => y >= top(k) && y < top(k) + blockH);
    if (b < 0 || t >= data.T) return null;
    return { t, u: Math.floor((y - top(b)) / rowH), key: HEAT.blocks[b] };
  }

  function scrollToStep(t) {
    const width = canvas.clientWidth - HEAT.gutter;
    const x = t * HEAT.colW;
    if (x < scroller.scrollLeft || x > scroller.scrollLeft + width - HEAT.colW) {
      scroller.scrollLeft = Math.max(0, x - width / 2);
    }
  }

  function setMark(next) { mark = { ...mark, ...next }; }

  return { draw, hit, scrollToStep, setMark };
}

// -- the hover card ---------------------------------------------------------------------------

const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };
const escapeHtml = (s) => s.replace(/[&<>"]/g, (c) => ENTITIES[c]);

/** One row: label, a little bar (from the centre for signed values) and the number. */
function meterRow(key, label, code, text, current, tables, name = key, u = 0) {
  const v = shownValue(tables.scales, key, code, u); // the bar shows what the colour shows
  const colour = tables[key].css[tables[key].at(code, u)];
  const isSigned = KIND[key] === "signed";
  const width = Math.min(1, Math.abs(isSigned ? v / 2 : v)) * 100;
  const left = isSigned ? (v < 0 ? 50 - width : 50) : 0;
  return (
    `<tr data-q="${name}"${name === current ? ' class="current"' : ""}><th>${label}</th>` +
    `<td class="meter"><div class="track${isSigned ? " signed" : ""}">` +
    `<div class="fill" style="left:${left}%;width:${width}%;background:${colour}"></div></div></td>` +
    `<td class="num">${text}</td></tr>`
  );
}

/** The hover card of step t, unit u: all four gates, the memory before → after, the output,
    and the narration; `current` is the quantity on show, highlighted. */
function tooltipHtml(data, t, u, current, labels, tables) {
  const at = (q) => data.code(q, t, u);
  const ch = data.chars[t];
  const name = ch === " " ? "space" : ch === "\n" ? "↵" : shown(ch);
  const texts = {
    i: fraction(at("i")), f: fraction(at("f")), g: signed2(at("g")), o: fraction(at("o")),
    c: `${signed2(data.memoryBefore(t, u))} → ${signed2(at("c"))}`, h: signed2(at("h")),
  };
  const row = (q) => meterRow(q, labels[q], at(q), texts[q], current, tables, q, u);
  // the Eraser's number is what it erases, 1 − f, from the same whole percent as f (kept)
  const erasedCode = 2 * (100 - magnitude(at("f")));
  const eraser = meterRow(
    "f", "Eraser 1 − f (erased)", erasedCode, fraction(erasedCode), current, tables, "erased"
  );
  const both = (q) => (q === "f" ? eraser + row(q) : row(q)); // the Eraser beside its f
  const rows = data.valid[t] ? ["i", "f", "g", "o", "c", "h"].map(both).join("") : "";
  return (
    `<div class="head"><span class="char">${escapeHtml(name)}</span>` +
    `<span class="where">step ${t} · unit ${u}</span></div>` +
    `<table>${rows}</table><p class="narration">${escapeHtml(explain(data, t, u))}</p>`
  );
}

function showTip(tip, html, x, y) {
  tip.innerHTML = html;
  tip.hidden = false;
  const pad = 14;
  const left = x + pad + tip.offsetWidth > innerWidth ? x - pad - tip.offsetWidth : x + pad;
  const top = y + pad + tip.offsetHeight > innerHeight ? y - pad - tip.offsetHeight : y + pad;
  tip.style.left = `${Math.max(4, left)}px`;
  tip.style.top = `${Math.max(4, top)}px`;
}

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

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

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

function main(meta, planes) {
  const data = makeData(meta, planes);
  const tables = colourTables(meta.scales);
  const labels = Object.fromEntries(meta.quantities.map((q) => [q.key, q.label]));
  const about = Object.fromEntries(meta.quantities.map((q) => [q.key, q.about]));
  const $ = (id) => document.getElementById(id);
  // start on the first highlighted unit: the one most likely to show something
  const first = meta.highlights.length ? meta.highlights[0].unit : 0;
  const state = { key: "c", unit: first, step: null, saturated: { key: null, rank: -1 } };

  $("summary").textContent =
    `${data.T.toLocaleString("en")} characters · ${data.H} units · layer ${meta.layer}` +
    (meta.directions > 1 ? `, ${meta.direction ? "reverse" : "forward"} direction` : "") +
    (meta.rounding_note ? ` · ${meta.rounding_note}` : "");
  const spans = buildText($("text"), data.chars, meta.placeholders);
  const heat = makeHeatmap($("heat"), $("hscroll"), $("hspacer"), data, tables, labels);

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

  function render() {
    paintText();
    heat.setMark({ unit: state.unit });
    heat.draw();
    unitInput.value = slider.value = state.unit;
    for (const b of $("quantities").children) {
      b.setAttribute("aria-checked", String(b.dataset.q === state.key));
    }
    for (const c of $("highlights").querySelectorAll(".chip")) {
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
  }

  function setUnit(u) {
    const unit = Math.min(data.H - 1, Math.max(0, Math.round(Number(u)) || 0));
    state.unit = unit;
    render();
  }
  function setQuantity(key) {
    state.key = key;
    render();
  }
  function markStep(t) {
    if (state.step !== null) spans[state.step].classList.remove("step");
    state.step = t;
    spans[t].classList.add("step");
    heat.setMark({ step: t });
    heat.scrollToStep(t);
    heat.draw();
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

  // hover and click on the text
  const tip = $("tip");
  $("text").addEventListener("mouseover", (e) => {
    const t = e.target.dataset?.t;
    if (t === undefined) return;
    showTip(tip, tooltipHtml(data, +t, state.unit, state.key, labels, tables), e.clientX, e.clientY);
  });
  $("text").addEventListener("mouseleave", () => { tip.hidden = true; });
  // a click (or a tap, on a phone, where nothing hovers) marks the step and shows its card
  $("text").addEventListener("click", (e) => {
    const t = e.target.dataset?.t;
    if (t === undefined) return;
    markStep(+t);
    showTip(tip, tooltipHtml(data, +t, state.unit, state.key, labels, tables), e.clientX, e.clientY);
  });
  // hover and click on the heatmap
  const canvas = $("heat");
  const pointOf = (e) => {
    const r = canvas.getBoundingClientRect();
    return heat.hit(e.clientX - r.left, e.clientY - r.top);
  };
  canvas.addEventListener("mousemove", (e) => {
    const p = pointOf(e);
    if (!p) { tip.hidden = true; return; }
    showTip(tip, tooltipHtml(data, p.t, p.u, p.key, labels, tables), e.clientX, e.clientY);
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (e) => {
    const p = pointOf(e);
    if (!p) return;
    setUnit(p.u);
    markStep(p.t);
    spans[p.t].scrollIntoView({ block: "nearest" });
    showTip(tip, tooltipHtml(data, p.t, p.u, p.key, labels, tables), e.clientX, e.clientY);
  });
  canvas.addEventListener("wheel", (e) => {
    const dx = e.shiftKey ? e.deltaY : e.deltaX;
    if (dx) { $("hscroll").scrollLeft += dx; e.preventDefault(); }
  }, { passive: false });
  $("hscroll").addEventListener("scroll", () => requestAnimationFrame(heat.draw));
  window.addEventListener("resize", () => heat.draw());
  followStickyBar(document.querySelector(".bar"));

  render();
  // a small API for scripts and tests: the page's own numbers and words
  return {
    setUnit, setQuantity, markStep,
    explain: (t, u) => explain(data, t, u),
    palette: (key) => [...tables[key].css],
    state: () => ({ ...state }),
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
