/* The live cell diagram (after Olah's "Understanding LSTM Networks"): the memory line
   c_prev → ×f → + i·g → c, then tanh → ×o → h, with x and h_prev feeding the four gates. Its
   wires carry the numbers of the step under the pointer, for the unit on show. */

// SVG's namespace, as the HTML parser assigns it (so the page holds no URL at all)
const SVG_NS = (() => {
  const template = document.createElement("template");
  template.innerHTML = "<svg></svg>";
  return template.content.firstChild.namespaceURI;
})();

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// the drawing, in the viewBox's units: wires (polylines), operators (circles) and gates (boxes)
const CELL = {
  wires: [
    "20,50 122,50", "138,50 242,50", "258,50 412,50", // the memory line
    "130,186 130,58", // the Eraser's f up to ×
    "215,186 215,140 242,140", "285,186 285,140 258,140", "250,132 250,58", // Filter × Writer → +
    "360,50 360,82", "360,102 360,132", "368,140 412,140", // c → tanh → × → h
    "360,186 360,148", // the Presenter's o up to ×
    "20,246 360,246", "130,246 130,214", "215,246 215,214", "285,246 285,214", "360,246 360,214",
  ],
  operators: [["×", 130, 50], ["+", 250, 50], ["×", 250, 140], ["×", 360, 140]],
  gates: [["e", "Eraser", "σ", 130], ["i", "Filter", "σ", 215], ["g", "Writer", "tanh", 285], ["o", "Presenter", "σ", 360]],
  // number slots: name, x, y, anchor
  numbers: [
    ["c_prev", 20, 40, "start"], ["kept", 190, 40, "middle"], ["c", 412, 40, "end"],
    ["f", 136, 104, "start"], ["erased", 136, 118, "start"],
    ["i", 209, 172, "end"], ["g", 291, 172, "start"], ["ig", 256, 80, "start"],
    ["tanh", 354, 120, "end"], ["o", 366, 172, "start"], ["h", 412, 132, "end"],
    ["x", 20, 266, "start"],
  ],
};

/** Build the diagram in `container`; returns update(t, u), which writes step t's numbers of
    unit u on the wires and colours each gate as the text colours it. */
function makeCellDiagram(container, data, tables) {
  const root = svg("svg", { viewBox: "0 0 420 272", role: "img", "aria-label": "the LSTM cell at the chosen step" });
  for (const points of CELL.wires) root.append(svg("polyline", { points, class: "wire" }));
  for (const [symbol, x, y] of CELL.operators) {
    root.append(svg("circle", { cx: x, cy: y, r: 8, class: "op" }), svg("text", { x, y: y + 4, class: "op-text" }, symbol));
  }
  root.append(svg("rect", { x: 344, y: 82, width: 32, height: 20, rx: 10, class: "op" }));
  root.append(svg("text", { x: 360, y: 96, class: "op-text small" }, "tanh"));
  const boxes = {};
  for (const [key, role, fn, x] of CELL.gates) {
    boxes[key] = svg("rect", { x: x - 32, y: 186, width: 64, height: 28, rx: 5, class: "gate" });
    root.append(boxes[key], svg("text", { x, y: 199, class: "gate-text" }, role));
    root.append(svg("text", { x, y: 210, class: "gate-fn" }, fn));
  }
  const slots = {};
  for (const [name, x, y, anchor] of CELL.numbers) {
    slots[name] = svg("text", { x, y, "text-anchor": anchor, class: "num", "data-n": name });
    root.append(slots[name]);
  }
  const where = svg("text", { x: 210, y: 16, class: "where", "text-anchor": "middle" });
  root.append(where);
  container.replaceChildren(root);

  return function update(t, u) {
    where.textContent = `step ${t} · unit ${u} · “${shown(data.chars[t])}”`;
    if (!data.valid[t]) {
      for (const slot of Object.values(slots)) slot.textContent = "";
      slots.x.textContent = "padding: the memory is carried through unchanged";
      return;
    }
    const at = (q) => data.code(q, t, u);
    const before = data.memoryBefore(t, u);
    const c = at("c");
    const numbers = {
      c_prev: `c_prev ${signed2(before)}`,
      kept: `f·c_prev ${signed2(codeOf(valueOf(at("f")) * valueOf(before) * 100))}`,
      c: `c ${signed2(c)}`,
      f: `f ${fraction(at("f"))} kept`,
      erased: `Eraser wipes ${fraction(at("e"))}`,
      i: `i ${fraction(at("i"))}`,
      g: `g ${signed2(at("g"))}`,
      ig: `i·g ${signed2(data.written(t, u))}`,
      tanh: `tanh(c) ${signed2(codeOf(Math.tanh(valueOf(c)) * 100))}`,
      o: `o ${fraction(at("o"))}`,
      h: `h ${signed2(at("h"))}`,
      x: `x = “${shown(data.chars[t])}” and h_prev feed every gate`,
    };
    for (const [name, text] of Object.entries(numbers)) slots[name].textContent = text;
    for (const key of ["e", "i", "g", "o"]) {
      boxes[key].style.fill = tables[key].css[tables[key].at(at(key), u)];
    }
  };
}
