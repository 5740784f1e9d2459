/* The time axis the story strip and the heatmap share, and the heatmap: every unit × every
   step of the quantity on show, with named units labelled and rows tall enough to click. */

// -- one time axis for every view that runs along the text -------------------------------------

// the left margin of the strip and the heatmap (row labels), in css px: their columns line up
const GUTTER = matchMedia("(max-width: 640px)").matches ? 112 : 168;
const COLUMN_WIDTHS = [3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40];

/** A shared horizontal axis: `colW` css px per step, scrolled by any of the `scrollers` (each
    a div holding one spacer child as wide as the whole text), all kept at one scrollLeft;
    `onChange` redraws the views. */
function makeTimeAxis(T, scrollers, onChange) {
  const axis = { T, colW: 12, left: 0 };
  const spacers = () => scrollers.forEach((s) => { s.firstElementChild.style.width = `${T * axis.colW}px`; });
  for (const scroller of scrollers) {
    scroller.addEventListener("scroll", () => {
      if (scroller.scrollLeft === axis.left) return; // an echo of our own sync
      axis.left = scroller.scrollLeft;
      for (const other of scrollers) if (other !== scroller) other.scrollLeft = axis.left;
      onChange();
    });
  }
  /** The columns a view of `width` css px shows: the first step, how many, and the x offset. */
  axis.view = (width) => {
    const first = Math.floor(axis.left / axis.colW);
    return {
      first, count: Math.max(0, Math.min(T - first, Math.ceil(width / axis.colW) + 1)),
      shift: -(axis.left % axis.colW), colW: axis.colW,
    };
  };
  /** The step under x css px from a view's left edge. */
  axis.stepAt = (x) => Math.floor((x + axis.left) / axis.colW);
  /** Scroll all views to `left` (clamped by the browser), then redraw. */
  axis.scrollTo = (left) => {
    for (const s of scrollers) s.scrollLeft = left;
    axis.left = scrollers.length ? scrollers[0].scrollLeft : left;
    onChange();
  };
  /** Bring step t into a view of `width` css px, centred when it was out of sight. */
  axis.show = (t, width) => {
    const x = t * axis.colW;
    if (x < axis.left || x > axis.left + width - axis.colW) axis.scrollTo(Math.max(0, x - width / 2));
  };
  /** Zoom in time by `delta` notches, keeping the step at the centre of a `width` view still. */
  axis.zoom = (delta, width) => {
    const k = COLUMN_WIDTHS.indexOf(axis.colW) + delta;
    if (k < 0 || k >= COLUMN_WIDTHS.length) return;
    const centre = (axis.left + width / 2) / axis.colW;
    axis.colW = COLUMN_WIDTHS[k];
    spacers();
    axis.scrollTo(Math.max(0, centre * axis.colW - width / 2));
  };
  /** Columns as wide as fit the text into `width` (between 12 and 40 px): short sequences,
      such as the adding problem's, get room for their numbers. */
  axis.fit = (width) => {
    const wanted = Math.floor(width / Math.max(1, T));
    axis.colW = [...COLUMN_WIDTHS].reverse().find((w) => w <= Math.max(12, wanted)) ?? 12;
    spacers();
  };
  spacers();
  return axis;
}

/** The canvas sized to css width × height at the screen's pixel ratio; returns its context. */
function fitCanvas(canvas, height) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, height);
  return ctx;
}

const MONO = "ui-monospace, 'DejaVu Sans Mono', monospace";
const SANS = "system-ui, 'DejaVu Sans', sans-serif";

/** The step ruler (a tick and number every 10 or 50 steps) and, when columns are wide enough,
    each step's character, at y = ruler and y = ruler + row / 2. */
function drawSteps(ctx, data, view, y, rowH) {
  const { first, count, shift, colW } = view;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  ctx.font = `10px ${MONO}`;
  ctx.fillStyle = "#8c959f";
  const every = colW >= 6 ? 10 : 50;
  for (let t = Math.ceil(first / every) * every; t < first + count; t += every) {
    const x = GUTTER + shift + (t - first) * colW;
    ctx.fillRect(x, y + 11, 1, 5);
    ctx.fillText(String(t), x + 2, y + 6);
  }
  if (colW < 7) return;
  ctx.textAlign = "center";
  ctx.font = `${Math.min(14, colW + 1)}px ${MONO}`;
  for (let k = 0; k < count; k++) {
    const ch = data.chars[first + k];
    ctx.fillStyle = ch === " " || ch === "\n" ? "#afb8c1" : "#1f2328";
    ctx.fillText(ch === " " ? "·" : shown(ch), GUTTER + shift + (k + 0.5) * colW, y + 16 + rowH / 2);
  }
}

// -- the heatmap ------------------------------------------------------------------------------

// layout in css px: the step ruler, the characters, then one block of units × steps
const HEAT = { ruler: 16, axis: 20, rowHeights: [3, 4, 6, 8, 10, 12, 16] };

/** Rows at least 3 px (so a click lands on the unit it points at), the block at most ~640 px. */
const defaultRowH = (H) => HEAT.rowHeights.findLast((h) => h * H <= 640) ?? 3;

/** Units × steps of one quantity, drawing only the visible columns. `names`: unit → label of
    the units the page names (its highlights), written beside their rows; `labels`: quantity →
    its name. */
function makeHeatmap(canvas, axis, data, tables, names, labels) {
  let key = "c";
  let rowH = defaultRowH(data.H);
  let mark = { step: null, unit: 0 };
  const top = HEAT.ruler + HEAT.axis;
  const height = () => top + data.H * rowH + 2;
  // one offscreen pixel per (step, unit), scaled up without smoothing: cheap and crisp
  const offscreen = document.createElement("canvas");

  function draw() {
    const ctx = fitCanvas(canvas, height());
    const view = axis.view(canvas.clientWidth - GUTTER);
    const { first, count, shift, colW } = view;
    ctx.save();
    ctx.beginPath();
    ctx.rect(GUTTER, 0, canvas.clientWidth - GUTTER, height());
    ctx.clip();
    if (count > 0) {
      offscreen.width = count;
      offscreen.height = data.H;
      const octx = offscreen.getContext("2d");
      const image = octx.createImageData(count, data.H);
      const words = new Uint32Array(image.data.buffer);
      const plane = data.planes[key];
      const { rgba, at } = tables[key];
      for (let u = 0; u < data.H; u++) {
        const base = u * data.T + first;
        for (let k = 0; k < count; k++) {
          words[u * count + k] = data.valid[first + k] ? rgba[at(plane[base + k], u)] : PADDING_RGBA;
        }
      }
      octx.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(offscreen, GUTTER + shift, top, count * colW, data.H * rowH);
    }
    drawSteps(ctx, data, view, 0, HEAT.axis - 4);
    ctx.strokeStyle = "rgba(31, 35, 40, 0.85)";
    ctx.lineWidth = 1;
    ctx.strokeRect(GUTTER + 0.5, top + mark.unit * rowH - 0.5, canvas.clientWidth - GUTTER - 1, rowH + 1);
    if (mark.step !== null && mark.step >= first && mark.step < first + count) {
      ctx.strokeStyle = "#2f6fdd";
      ctx.lineWidth = 2;
      ctx.strokeRect(GUTTER + shift + (mark.step - first) * colW, HEAT.ruler, colW, height() - HEAT.ruler);
    }
    ctx.restore();
    drawGutter(ctx);
  }

  /** The quantity's name, unit numbers, the named units' labels and the selected unit. */
  function drawGutter(ctx) {
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#1f2328";
    ctx.font = `600 12px ${SANS}`;
    ctx.fillText(labels[key], GUTTER - 4, HEAT.ruler + 4);
    ctx.font = `10px ${MONO}`;
    ctx.fillStyle = "#8c959f";
    const every = Math.max(1, Math.ceil(14 / rowH / 8) * 8); // a number every ≥ 14 px
    const taken = [];
    for (const [u, label] of names) { // the named units first: they matter most
      const y = top + u * rowH + rowH / 2;
      ctx.fillStyle = "#9a6700";
      ctx.font = `600 10.5px ${SANS}`;
      ctx.fillText(`${label} · ${u} ▸`, GUTTER - 4, y);
      taken.push(y);
    }
    ctx.font = `10px ${MONO}`;
    ctx.fillStyle = "#8c959f";
    for (let u = 0; u < data.H; u += every) {
      const y = top + u * rowH + rowH / 2;
      if (taken.every((other) => Math.abs(other - y) > 11)) ctx.fillText(String(u), GUTTER - 4, y);
    }
    // the unit on show: its name in the accent colour over whatever the margin said there
    const y = top + mark.unit * rowH + rowH / 2;
    const named = names.get(mark.unit);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, y - 7, GUTTER - 1, 14);
    ctx.fillStyle = "#2f6fdd";
    ctx.font = `600 11px ${SANS}`;
    ctx.fillText(named ? `${named} · ${mark.unit} ▶` : `unit ${mark.unit} ▶`, GUTTER - 4, y);
  }

  /** (step, unit) under a point of the canvas (css px), or null. */
  function hit(x, y) {
    if (x < GUTTER || y < top) return null;
    const t = axis.stepAt(x - GUTTER);
    const u = Math.floor((y - top) / rowH);
    if (t < 0 || t >= data.T || u >= data.H) return null;
    return { t, u, key };
  }

  return {
    draw, hit,
    setKey(next) { key = next; },
    setMark(next) { mark = { ...mark, ...next }; },
    /** Taller or shorter rows by `delta` notches. */
    zoomRows(delta) {
      const k = HEAT.rowHeights.indexOf(rowH) + delta;
      if (k >= 0 && k < HEAT.rowHeights.length) rowH = HEAT.rowHeights[k];
      draw();
    },
    /** Where things are, in css px from the canvas's top left: for scripts and tests. */
    layout: () => ({ gutter: GUTTER, top, rowH, colW: axis.colW, left: axis.left }),
  };
}
