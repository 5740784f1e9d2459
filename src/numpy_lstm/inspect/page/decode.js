"use strict";
/* The gate explorer page (built by numpy_lstm/inspect/explorer.py). Its script is these files,
   concatenated in the order of explorer.SCRIPTS: decode, words, colours, text, card, heatmap,
   strip, cell, predict, main. Each uses only what the files before it define.

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
