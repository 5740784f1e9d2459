/* What the model predicts at a step, and what drove it; and finding units by example. */

// -- predictions and saliency -------------------------------------------------------------------

/** "41.3%" from 413 per mille. */
const perMille = (n) => `${Math.floor(n / 10)}.${n % 10}%`;
const quoted = (ch) => `“${ch === " " ? "space" : shown(ch)}”`;

/** The predictions panel: update(t) shows the model's top-k next characters after step t
    (meta.predictions, planes top_id / top_p) and, over the last `window` characters, how much
    each pushed the most likely one up or down (gradient × input, percent of the largest). */
function makePredictions(container, meta, planes, data, tables) {
  const info = meta.predictions;
  if (!info) {
    container.hidden = true;
    return () => {};
  }
  const { alphabet, k, steps: Tp, window: W } = info;
  const at = (plane, j, t) => planes[plane][j * Tp + t];
  return function update(t) {
    if (t >= Tp) {
      container.innerHTML = `<p class="hint">Predictions are kept for the first ${Tp.toLocaleString("en")} steps only.</p>`;
      return;
    }
    const top = Array.from({ length: k }, (_, j) => ({ ch: alphabet[at("top_id", j, t)], p: at("top_p", j, t) }));
    const items = top.map(({ ch, p }) =>
      `<li data-char="${escapeHtml(ch)}"><span class="ch">${escapeHtml(quoted(ch))}</span>` +
      `<span class="pbar"><span style="width:${p / 10}%"></span></span><span class="p">${perMille(p)}</span></li>`
    ).join("");
    const cells = [];
    for (let lag = Math.min(W - 1, t); lag >= 0; lag--) {
      const code = at("saliency", lag, t);
      const percentValue = (isNegative(code) ? -1 : 1) * magnitude(code);
      const colour = tables.g.css[paletteIndex("g", percentValue / 100)];
      const ch = data.chars[t - lag];
      cells.push(
        `<span data-lag="${lag}" data-value="${percentValue}" style="background:${colour}" ` +
        `title="step ${t - lag}: ${percentValue > 0 ? "+" : ""}${percentValue}%">${escapeHtml(ch === " " ? "·" : shown(ch))}</span>`
      );
    }
    container.innerHTML =
      `<h3>After ${escapeHtml(quoted(data.chars[t]))} (step ${t}) the model expects</h3><ol class="top">${items}</ol>` +
      `<h3>What drove ${escapeHtml(quoted(top[0].ch))}: the last ${Math.min(W, t + 1)} characters</h3>` +
      `<div class="saliency">${cells.join("")}</div>` +
      `<p class="hint">Gradient × input: <span class="up">red</span> made ${escapeHtml(quoted(top[0].ch))} likelier, ` +
      `<span class="down">blue</span> less likely, in percent of the strongest.</p>`;
  };
}

// -- finding units by example (the LSTMVis idea, Strobelt et al. 2018) ---------------------------

/** Units ranked by how well the quantity's shown values separate steps first…last from the
    rest of the text: d = (mean inside − mean outside) / pooled standard deviation. */
function rankBySpan(data, tables, key, first, last) {
  const plane = data.planes[key];
  const ranked = [];
  for (let u = 0; u < data.H; u++) {
    const sums = [0, 0], squares = [0, 0], counts = [0, 0];
    for (let t = 0, base = u * data.T; t < data.T; t++) {
      if (!data.valid[t]) continue;
      const side = t >= first && t <= last ? 0 : 1;
      const v = shownValue(tables.scales, key, plane[base + t], u);
      sums[side] += v;
      squares[side] += v * v;
      counts[side] += 1;
    }
    if (!counts[0] || !counts[1]) continue;
    const mean = sums.map((s, j) => s / counts[j]);
    const variance = squares.map((s, j) => Math.max(0, s / counts[j] - mean[j] ** 2));
    const d = (mean[0] - mean[1]) / Math.sqrt((variance[0] + variance[1]) / 2 + 1e-4);
    ranked.push({ u, d });
  }
  return ranked.sort((a, b) => Math.abs(b.d) - Math.abs(a.d) || a.u - b.u);
}

/** The list of units that single out the selection, as chips that pick the unit. */
function showSpanRanking(container, data, ranked, first, last, label, onPick) {
  const excerpt = data.chars.slice(first, Math.min(last + 1, first + 24)).map(shown).join("");
  const more = last + 1 - first > 24 ? "…" : "";
  container.replaceChildren();
  const head = document.createElement("span");
  head.className = "hint";
  head.textContent = `steps ${first}–${last} “${excerpt}${more}”: units whose ${label} singles it out:`;
  container.append(head);
  for (const { u, d } of ranked.slice(0, 8)) {
    const sign = d >= 0 ? "+" : "−";
    const chip = button(`unit ${u} · d = ${sign}${Math.abs(d).toFixed(1)}`, "chip", () => onPick(u));
    chip.dataset.unit = u;
    chip.title = d >= 0 ? "higher inside the selection" : "lower inside the selection";
    container.append(chip);
  }
}
