/* The text: one span per code point, coloured by the unit on show. */

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

/** The step at one end of a selection: the first character it takes (start) or the last
    (end), whether the boundary sits inside a character's text or between the spans. */
function boundaryStep(node, offset, isEnd) {
  if (node.nodeType === Node.TEXT_NODE && node.parentElement?.dataset.t !== undefined) {
    const t = Number(node.parentElement.dataset.t);
    if (isEnd) return offset === 0 ? t - 1 : t;
    return offset >= node.length ? t + 1 : t;
  }
  // between children: the nearest character span on the selection's side of the boundary
  let child = node.nodeType === Node.TEXT_NODE ? node : node.childNodes[isEnd ? offset - 1 : offset];
  while (child && !(child instanceof HTMLElement && child.dataset.t !== undefined)) {
    child = isEnd ? child.previousSibling : child.nextSibling;
  }
  return child ? Number(child.dataset.t) : null;
}

/** The steps [first, last] the reader selected inside `container`, or null when nothing (or a
    single character, which reads as a click) is selected there. */
function selectedSteps(container) {
  const selection = window.getSelection();
  if (!selection || selection.isCollapsed || selection.rangeCount === 0) return null;
  const range = selection.getRangeAt(0);
  if (!container.contains(range.commonAncestorContainer)) return null;
  const first = boundaryStep(range.startContainer, range.startOffset, false);
  const last = boundaryStep(range.endContainer, range.endOffset, true);
  if (first === null || last === null || last <= first) return null;
  return [first, last];
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}
