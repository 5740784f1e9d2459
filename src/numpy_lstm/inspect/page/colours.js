/* Colours: palettes, each unit's own scale for the memory and the output, the legend. */

// -- colours ----------------------------------------------------------------------------------

// Light enough at both ends that dark text stays readable on every background.
const PALETTES = {
  gate: ["#fbfcfd", "#dcefe9", "#aadccc", "#6cc3a9", "#3aa384"], // 0 closed → 1 open
  signed: ["#3d7cc9", "#a6c8ea", "#f7f7f5", "#f3ab8e", "#d4553b"], // −1 → 0 → +1
  erase: ["#fbfcfd", "#ebe3f3", "#cfbde6", "#a88fd3", "#7f62b8"], // 0 keeps → 1 wipes
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

// what each quantity's number is: a gate in [0, 1], or a signed value; w is written i·g, e the
// Eraser's 1 − f (see makeData)
const KIND = {
  c: "signed", h: "signed", g: "signed", w: "signed", i: "gate", f: "gate", e: "gate", o: "gate",
};
// the Eraser has its own palette, so its colours never read as the other gates' "open"
const PALETTE_OF = { e: "erase" };
const ENDS = {
  g: ["−1", "+1"], w: ["−1", "+1"],
  e: ["0 · keeps all", "1 · wipes all"], // the Eraser's number: what it erases, 1 − f
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
    const stops = PALETTES[PALETTE_OF[key] ?? KIND[key]];
    const palette = ramp(stops);
    const css = palette.map(([r, g, b]) => `rgb(${r}, ${g}, ${b})`);
    // ImageData bytes are R, G, B, A
    const rgba = Uint32Array.from(palette, ([r, g, b]) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0);
    const gradient = stops.join(", ");
    const at = (code, u) => paletteIndex(key, shownValue(scales, key, code, u));
    tables[key] = { css, rgba, gradient, at };
  }
  return tables;
}
