/* The story strip: one unit's whole story along the text, column by column under each
   character — the inputs (when the page has numeric ones), the Filter i, the Eraser 1 − f, the
   Writer g, what was written i·g, the memory c as a line on the unit's own scale, and the
   output h. It shares the heatmap's time axis, so a step is one column in both. */

const STRIP = { ruler: 16, chars: 22, row: 28, line: 64, gap: 3 };

/** The strip's rows, top to bottom: key, label, kind ("bar" for a gate, "signed" for a
    value around 0, "line" for the memory, "input" for the page's own input rows), height. */
function stripRows(meta, labels) {
  const inputs = (meta.inputs ?? []).map((row, k) => ({
    key: `input${k}`, label: row.label, kind: "input", height: STRIP.row, input: row,
    scale: Math.max(1e-12, ...row.values.map(Math.abs)),
    // inputs that stay within [0, 1] (a marker, a probability) are drawn like a gate
    unsigned: row.values.every((v) => v >= 0 && v <= 1),
  }));
  return [
    ...inputs,
    { key: "i", label: labels.i, kind: "bar", height: STRIP.row },
    { key: "e", label: labels.e, kind: "bar", height: STRIP.row },
    { key: "g", label: labels.g, kind: "signed", height: STRIP.row },
    { key: "w", label: "written i·g", kind: "signed", height: STRIP.row },
    { key: "c", label: labels.c, kind: "line", height: STRIP.line },
    { key: "h", label: labels.h, kind: "signed", height: STRIP.row },
  ];
}

function makeStrip(canvas, axis, data, tables, rows) {
  let unit = 0;
  let marks = { hover: null, step: null };
  const tops = [];
  let y = STRIP.ruler + STRIP.chars + STRIP.gap;
  for (const row of rows) {
    tops.push(y);
    y += row.height + STRIP.gap;
  }
  const height = y + 2;

  /** The code of a row's number at step t (a gate in percent, the rest in hundredths). */
  function codeAt(row, t) {
    if (row.key === "w") return data.written(t, unit);
    return data.code(row.key, t, unit);
  }

  function draw() {
    const ctx = fitCanvas(canvas, height);
    const width = canvas.clientWidth;
    const view = axis.view(width - GUTTER);
    ctx.save();
    ctx.beginPath();
    ctx.rect(GUTTER, 0, width - GUTTER, height);
    ctx.clip();
    for (const [name, colour] of [["step", "rgba(47, 111, 221, 0.16)"], ["hover", "rgba(31, 35, 40, 0.08)"]]) {
      const t = marks[name];
      if (t === null || t < view.first || t >= view.first + view.count) continue;
      ctx.fillStyle = colour;
      ctx.fillRect(GUTTER + view.shift + (t - view.first) * view.colW, STRIP.ruler, view.colW, height);
    }
    drawSteps(ctx, data, view, 0, STRIP.chars);
    rows.forEach((row, k) => {
      ctx.fillStyle = "#f3f5f7";
      ctx.fillRect(GUTTER, tops[k], width - GUTTER, row.height);
      if (row.kind === "line") drawMemory(ctx, view, tops[k], row.height);
      else drawBars(ctx, view, row, tops[k]);
    });
    ctx.restore();
    drawLabels(ctx);
  }

  /** One bar per step: from the bottom for a gate (its height the gate's value), from the
      middle for a signed value; coloured as the text would be; the number when it fits. */
  function drawBars(ctx, view, row, top) {
    const { first, count, shift, colW } = view;
    const inner = row.height - 4;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.font = `9.5px ${MONO}`;
    for (let k = 0; k < count; k++) {
      const t = first + k;
      if (!data.valid[t]) continue;
      const x = GUTTER + shift + k * colW;
      let v, colour, text;
      if (row.kind === "input") {
        const raw = row.input.values[t];
        v = row.unsigned ? raw : raw / row.scale;
        colour = tables[row.unsigned ? "i" : "g"].css[paletteIndex(row.unsigned ? "i" : "g", v)];
        text = raw.toFixed(row.input.digits);
      } else {
        const code = codeAt(row, t);
        v = shownValue(tables.scales, row.key, code, unit);
        colour = tables[row.key].css[tables[row.key].at(code, unit)];
        text = row.kind === "bar" ? fraction(code) : signed2(code);
      }
      const gap = colW >= 6 ? 1 : 0;
      ctx.fillStyle = colour;
      if (row.kind === "bar" || (row.kind === "input" && row.unsigned)) {
        const h = Math.max(1, Math.min(1, v) * inner);
        ctx.fillRect(x + gap, top + 2 + inner - h, colW - 2 * gap, h);
      } else {
        const mid = top + row.height / 2;
        const h = Math.max(1, Math.min(1, Math.abs(v)) * (inner / 2));
        ctx.fillRect(x + gap, v < 0 ? mid : mid - h, colW - 2 * gap, h);
      }
      if (colW >= 34) {
        ctx.fillStyle = "#1f2328";
        ctx.fillText(text.replace(/^0\./, ".").replace(/^-0\./, "-."), x + colW / 2, top + row.height / 2);
      }
    }
  }

  /** The memory after each step as a line on the unit's own scale, with its zero line. */
  function drawMemory(ctx, view, top, rowHeight) {
    const { first, count, shift, colW } = view;
    const scale = tables.scales.c[unit];
    const mid = top + rowHeight / 2;
    const yOf = (code) => mid - Math.max(-1, Math.min(1, valueOf(code) / scale)) * (rowHeight / 2 - 4);
    ctx.fillStyle = "#c9d1d9";
    ctx.fillRect(GUTTER, mid, canvas.clientWidth - GUTTER, 1);
    ctx.strokeStyle = "#1f2328";
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let drawing = false;
    for (let k = 0; k < count; k++) {
      const t = first + k;
      if (!data.valid[t]) { drawing = false; continue; }
      const x = GUTTER + shift + k * colW;
      if (!drawing) ctx.moveTo(x, yOf(data.memoryBefore(t, unit)));
      ctx.lineTo(x + colW, yOf(data.code("c", t, unit)));
      drawing = true;
    }
    ctx.stroke();
    if (colW < 8) return;
    for (let k = 0; k < count; k++) { // a dot where each step ends, coloured as the text is
      const t = first + k;
      if (!data.valid[t]) continue;
      const code = data.code("c", t, unit);
      ctx.fillStyle = tables.c.css[tables.c.at(code, unit)];
      ctx.beginPath();
      ctx.arc(GUTTER + shift + (k + 1) * colW, yOf(code), 2.6, 0, 2 * Math.PI);
      ctx.fill();
      ctx.strokeStyle = "#57606a";
      ctx.lineWidth = 0.6;
      ctx.stroke();
    }
  }

  function drawLabels(ctx) {
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#2f6fdd";
    ctx.font = `600 12px ${SANS}`;
    ctx.fillText(`unit ${unit}`, GUTTER - 8, STRIP.ruler + STRIP.chars / 2);
    rows.forEach((row, k) => {
      const middle = tops[k] + row.height / 2;
      ctx.fillStyle = "#1f2328";
      ctx.font = `600 11.5px ${SANS}`;
      ctx.fillText(row.label, GUTTER - 8, row.kind === "line" ? middle - 7 : middle);
      if (row.kind === "line") {
        ctx.fillStyle = "#656d76";
        ctx.font = `10.5px ${SANS}`;
        ctx.fillText(`±${tables.scales.c[unit].toPrecision(3)} (own scale)`, GUTTER - 8, middle + 8);
      }
    });
  }

  /** (step, row key) under a point of the canvas (css px), or null. */
  function hit(x, y) {
    if (x < GUTTER) return null;
    const t = axis.stepAt(x - GUTTER);
    if (t < 0 || t >= data.T || y < STRIP.ruler) return null;
    const k = rows.findIndex((row, j) => y >= tops[j] && y < tops[j] + row.height);
    return { t, key: k < 0 ? "text" : rows[k].key };
  }

  return {
    draw, hit,
    setUnit(u) { unit = u; },
    setMarks(next) { marks = { ...marks, ...next }; },
    layout: () => ({
      gutter: GUTTER, colW: axis.colW, left: axis.left, chars: STRIP.ruler,
      rows: rows.map((row, k) => ({ key: row.key, label: row.label, top: tops[k], height: row.height })),
    }),
  };
}
