/* Numbers and words: codes → the numbers and sentences Python prints. */

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

/** The Eraser's plane, derived from the forget gate's: 1 − f in whole percent, from the same
    whole percent as f (so the two always add up to 100%). */
function erasedPlane(f) {
  const e = new Uint8Array(f.length);
  for (let k = 0; k < f.length; k++) e[k] = 2 * (100 - magnitude(f[k]));
  return e;
}

/** A code for a number given in hundredths (rounded half away from zero: display only). */
const codeOf = (hundredths) => 2 * Math.round(Math.abs(hundredths)) + (hundredths < 0 ? 1 : 0);

function makeData(meta, planes) {
  const T = meta.steps;
  planes.e = erasedPlane(planes.f);
  return {
    T, H: meta.units, valid: planes.valid, planes, narration: meta.narration,
    chars: Array.from(meta.text), // code points, as Python indexes the text
    code: (q, t, u) => planes[q][u * T + t],
    /** The memory step t started from: what the previous step in reading order ended with. */
    memoryBefore(t, u) {
      const previous = meta.direction === 0 ? t - 1 : t + 1;
      return previous >= 0 && previous < T ? planes.c[u * T + previous] : meta.c_edge[u];
    },
    /** What step t wrote, i·g, from the stored i (percent) and g (hundredths): display only. */
    written(t, u) {
      return codeOf(valueOf(planes.i[u * T + t]) * valueOf(planes.g[u * T + t]) * 100);
    },
  };
}
