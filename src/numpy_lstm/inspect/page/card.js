/* The hover card: every gate of one step and unit, and its narration. */

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

// the forget gate's own label: its number is the share kept (the Eraser's row shows 1 − f)
const FORGET_LABEL = "forget gate f (kept)";

/** The hover card of step t, unit u: all four gates (the Eraser as 1 − f, beside the forget
    gate f it comes from), the memory before → after, the output, and the narration; `current`
    is the quantity on show, highlighted; `extra` is more html for the end (the predictions). */
function tooltipHtml(data, t, u, current, labels, tables, extra = "") {
  const at = (q) => data.code(q, t, u);
  const ch = data.chars[t];
  const name = ch === " " ? "space" : ch === "\n" ? "↵" : shown(ch);
  const texts = {
    i: fraction(at("i")), e: fraction(at("e")), f: fraction(at("f")), g: signed2(at("g")),
    o: fraction(at("o")), c: `${signed2(data.memoryBefore(t, u))} → ${signed2(at("c"))}`,
    h: signed2(at("h")),
  };
  const names = { ...labels, e: `${labels.e} (erased)`, f: FORGET_LABEL };
  const shownAs = current === "e" ? "erased" : current;
  // the Eraser's row is data-q="erased": what it erases, from the same whole percent as f
  const row = (q) => meterRow(q, names[q], at(q), texts[q], shownAs, tables, q === "e" ? "erased" : q, u);
  const rows = data.valid[t] ? ["i", "e", "f", "g", "o", "c", "h"].map(row).join("") : "";
  return (
    `<div class="head"><span class="char">${escapeHtml(name)}</span>` +
    `<span class="where">step ${t} · unit ${u}</span></div>` +
    `<table>${rows}</table><p class="narration">${escapeHtml(explain(data, t, u))}</p>${extra}`
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
