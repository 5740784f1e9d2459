"""The gate explorer: one self-contained HTML page to look at what each unit of an LSTM does.

    tr = numpy_lstm.trace(model.lstm, model.embedding(ids[:, None]))
    write_explorer("explorer.html", text, tr, highlights={"inside a string": 17},
                   predictions=next_characters(model.embedding, model.lstm, model.head, ids, chars))

What a learner sees: the text with every character coloured by one unit's value (the memory c,
the output h, or a gate — the Eraser as what it erases, 1 − f: the "interpretable cell" view of
Karpathy, Johnson & Fei-Fei 2015) with one-click picks of the units that track a feature; the
story of the chosen unit under it, column by column (Filter i, Eraser 1 − f, Writer g, written
i·g, the memory as a line on its own scale, the output h) beside a live cell diagram (after
Olah) whose wires carry the hovered step's numbers; the model's top-5 next characters there and
which earlier characters drove the first (gradient × input); "find units by example" — select a
span, the units that single it out are ranked (LSTMVis, Strobelt et al. 2018); a hover card with
every gate and the narration; and every unit × step of the quantity on show as a heatmap.
Pages of non-text sequences (the adding problem) add numeric input rows and explanatory notes.
Everything is inline — script, style and data — so the file works offline, from disk, in any
modern browser; nothing in it points to the network. The script is page/*.js, one file per
concern (SCRIPTS), the style page/explorer.css, the skeleton page/explorer.html.

Narration. The page does not have its own wording: its data carries :meth:`Trace.explain`'s
sentences (:func:`~numpy_lstm.inspect.trace.narration_template`), and the page only fills in the
numbers, formatted as Python formats them.

Encoding. The page stores, per step and unit, exactly the numbers that :meth:`Trace.explain`
prints: the Filter, Eraser and Presenter in whole percent, the Writer, the memory and the output in
hundredths. That resolution (101 or 201 levels on the gates' and Writer's ranges) is finer than a
colour scale can show, it makes the page's narration *equal* to Python's — not merely close — and
it is compact: one byte per gate value, two (or four) for the memory. Each integer n is stored
sign-magnitude (2·|n| + sign) because Python prints a small negative value as "-0.00", which a
plain integer would lose. Each quantity is one plane, unit-major (H, T) so a unit's whole text is
contiguous, byte-shuffled and deflated (zlib: about 1.7× smaller) and base64-ed; the browser
inflates it once with its built-in DecompressionStream into typed arrays. For 10,000 characters ×
256 units: about 20–23 MB raw, 10 MB (random weights) to 15 MB (a trained char-LM, whose memories
grow past ±327 and need four bytes) of HTML.
Longer texts (more than EXACT_VALUES steps × units) store rounded numbers instead, in steps
of meta["rounding"] per unit, which the page multiplies back: 50,000 × 256 in under 20 MB.

Colour. The gates are coloured on [0, 1] and the Writer on [−1, 1]; the memory and the output on
each unit's own robust scale (meta["scales"]), so a memory of ±20 is not one flat colour.
"""

from __future__ import annotations

import base64
import html
import json
import re
import zlib
from importlib.resources import files
from pathlib import Path
from typing import TypedDict

import numpy as np

from .features import SCALE_PERCENTILE, SCALED, robust_scale
from .predict import Predictions
from .trace import NarrationTemplate, Trace, narration_template

SCALE = f"its {SCALE_PERCENTILE:.0f}th percentile of |value| over the text (raw values on hover)"
# key → (label, what it means); the order is the page's quantity picker.
QUANTITIES = {
    "c": ("memory c", f"the memory after the step, coloured on this unit's own scale: {SCALE}"),
    "h": ("output h", f"what the Presenter shows, o·tanh(c), on this unit's own scale: {SCALE}"),
    "i": ("Filter i", "how much of the Writer's candidate is let into the memory"),
    "e": ("Eraser 1 − f", "the share of the old memory the Eraser wipes (f keeps the rest)"),
    "g": ("Writer g", "the candidate content the Filter lets in"),
    "o": ("Presenter o", "how much of the memory is shown as output"),
}
# The stored planes: the four gates (the forget gate f as the share kept, from which the page
# shows the Eraser's 1 − f), the memory and the output.
PLANES = ("i", "f", "g", "o", "c", "h")
# Up to this many steps × units (10,000 characters × 256 units: about 15 MB for a trained
# char-LM) the page stores Trace.explain's numbers exactly. Beyond, it rounds them to
# ROUNDING_STEPS (whole percent for the gates, hundredths for the rest) and each unit's memory
# to 1/MEMORY_LEVELS of its colour scale: 50,000 characters × 256 units then take 16–19 MB, not 55.
EXACT_VALUES = 2_560_000
ROUNDING_STEPS = {"i": 10, "f": 10, "o": 10, "g": 25, "h": 25}
MEMORY_LEVELS = 4
ROUNDING_NOTE = (
    f"a long text: numbers rounded (gates to {ROUNDING_STEPS['i']}%, the Writer and the output "
    f"to {ROUNDING_STEPS['g'] / 100:.2f}, each memory to 1/{MEMORY_LEVELS} of its scale)"
)
# The page's script, one file per concern (in page/), concatenated in this order: each file uses
# only what the files before it define.
SCRIPTS = (
    "decode",
    "words",
    "colours",
    "text",
    "card",
    "heatmap",
    "strip",
    "cell",
    "predict",
    "main",
)
MARKERS = re.compile(r"/\*STYLE\*/|/\*SCRIPT\*/|\{\{TITLE\}\}|\{\{META\}\}|\{\{PLANES\}\}")


class Quantity(TypedDict):
    key: str
    label: str
    about: str


class Highlight(TypedDict):
    label: str
    unit: int
    r: float | None  # how well the unit's colours track the feature, when known


class InputRow(TypedDict):
    """One of the page's own numeric inputs per step (the adding problem's value and marker)."""

    label: str
    values: list[float]  # (T,), rounded to `digits` decimals
    digits: int


class PredictionsMeta(TypedDict):
    """What the prediction planes hold: top_id (Tp, k) indices into `alphabet`, top_p (Tp, k)
    per mille, saliency (Tp, window) sign-magnitude percent of each row's largest |value|."""

    alphabet: list[str]
    k: int
    steps: int  # Tp ≤ the page's steps: the first Tp steps have predictions
    window: int
    max_steps: int  # the cap the predictions were made with (Tp < steps where it bit)
    about: str


class PageMeta(TypedDict):
    """The page's small JSON: the text, sizes, labels, highlights, the narration to fill in and
    the memory before the first step read (sign-magnitude codes, (H,))."""

    title: str
    text: str
    steps: int
    units: int
    layer: int
    direction: int
    layers: int
    directions: int
    quantities: list[Quantity]
    highlights: list[Highlight]
    narration: NarrationTemplate
    c_edge: list[int]
    scales: dict[str, list[float]]
    placeholders: list[int]
    rounding: dict[str, list[int]]
    rounding_note: str
    predictions: PredictionsMeta | None
    inputs: list[InputRow]
    notes: list[str]


# a highlight: the unit, or (unit, r) with r its correlation with the feature
HighlightSpec = int | tuple[int, float]
Planes = dict[str, dict[str, str]]  # key → encode_plane's {"dtype", "data"}
PREDICTIONS_ABOUT = (
    "{where}: the model's {k} likeliest next characters with their probabilities in per mille, "
    "and for the likeliest one how much each of the last {window} characters read pushed its "
    "log-probability up or down (gradient × input, summed over the embedding, in percent of "
    "that step's largest)."
)


def narrated_numbers(
    trace: Trace, layer: int = 0, direction: int = 0, batch: int = 0, steps: int | None = None
) -> dict[str, np.ndarray]:
    """The integers behind :meth:`Trace.explain`'s numbers for the first `steps` steps.

    Returns "i", "f", "o" (T, H) in whole percent, "g", "c", "h" (T, H) and "c_edge" (H,) in
    hundredths, as float64 holding integers (so a negative zero keeps its sign). "h" is the
    narration's output o·act(c); "c_edge" is the memory before the first step the direction
    reads (step 0 forward, step T − 1 in reverse), the one memory that no other step ends with.

    Exact: explain formats 100·gate with ".0f" and the rest with "+.2f", both rounding the
    double half-to-even, which is what np.rint does. For float32 traces 100·x is exact in
    float64, so the integers are Python's; for the output (a product) and float64 traces a
    difference needs a value within 1e-16 of a rounding tie.
    """
    record = trace.layer(layer, direction)
    T = trace.steps if steps is None else steps
    gate = {
        name: trace.gate(name, layer, direction)[:T, batch].astype(np.float64) for name in "ifgo"
    }
    c = record.c[:T, batch].astype(np.float64)
    output = gate["o"] * record.act_c[:T, batch].astype(np.float64)
    edge = record.c_before[0 if direction == 0 else T - 1, batch].astype(np.float64)
    numbers = {name: np.rint(100 * gate[name]) for name in "ifo"}
    return numbers | {
        "g": np.rint(gate["g"] * 100),
        "c": np.rint(c * 100),
        "h": np.rint(output * 100),
        "c_edge": np.rint(edge * 100),
    }


def sign_magnitude(n: np.ndarray) -> np.ndarray:
    """Integers n (float, any shape; −0.0 counts as negative) → 2·|n| + sign in the smallest
    unsigned dtype that holds them (uint8, uint16 or uint32)."""
    if not np.all(np.isfinite(n)):
        raise ValueError("trace: the values are not all finite; nothing to show")
    codes = 2 * np.abs(n) + np.signbit(n)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if codes.size == 0 or codes.max() <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    raise ValueError(f"trace: a value of {codes.max() / 200:.3g} is too large to show")


def rounding_steps(numbers: dict[str, np.ndarray], valid: np.ndarray) -> dict[str, np.ndarray]:
    """numbers (T, H) per quantity (as :func:`narrated_numbers`) → per quantity (H,) the step
    each unit's numbers are rounded to, in their own unit (percent or hundredths): fixed for the
    gates, the Writer and the output, 1/MEMORY_LEVELS of the unit's robust scale for the memory."""
    H = numbers["c"].shape[1]
    steps = {key: np.full(H, step, dtype=np.int64) for key, step in ROUNDING_STEPS.items()}
    scale = robust_scale(numbers["c"][valid])  # in hundredths
    steps["c"] = np.maximum(1, np.rint(scale / MEMORY_LEVELS)).astype(np.int64)
    return steps


def encode_plane(codes: np.ndarray) -> dict[str, str]:
    """codes (T, H) or (T,) → {"dtype": "u1"|"u2"|"u4", "data": base64 of zlib(bytes)}: one
    quantity, ready for the page. The bytes are unit-major (H, T), little-endian and, for wider
    dtypes, grouped by significance — all low bytes, then the next… (a "byte shuffle": the high
    bytes are mostly zero and compress to almost nothing; a third smaller for the memory)."""
    unit_major = np.ascontiguousarray(codes.T).astype(codes.dtype.newbyteorder("<"))
    shuffled = unit_major.reshape(-1).view(np.uint8).reshape(-1, codes.itemsize).T
    packed = zlib.compress(shuffled.tobytes(), 6)
    return {"dtype": f"u{codes.dtype.itemsize}", "data": base64.b64encode(packed).decode("ascii")}


def page_data(
    text: str,
    trace: Trace,
    *,
    layer: int = 0,
    direction: int = 0,
    batch: int = 0,
    title: str = "",
    highlights: dict[str, HighlightSpec] | None = None,
    max_chars: int | None = None,
    placeholders: list[int] | None = None,
    predictions: Predictions | None = None,
    inputs: list[InputRow] | None = None,
    notes: list[str] | None = None,
) -> tuple[PageMeta, Planes]:
    """What the page needs: (meta, planes). meta is small JSON (text, sizes, labels, highlights,
    the narration's sentences, the memory at the edge); planes maps "i", "f", "g", "o", "c", "h"
    and "valid" (T,) to :func:`encode_plane` output. Pure: reads the trace, writes nothing.

    The memory and the output are coloured on each unit's own scale (meta["scales"], (H,) per
    quantity: :func:`~numpy_lstm.inspect.features.robust_scale` over the valid steps), because
    a trained char-LM's memories reach ±10…±20, where tanh(c) would be one flat colour.
    placeholders: the steps whose character stands in for one the model cannot read (shown
    distinctly on the page). predictions: the next-character predictions of the text
    (:func:`~numpy_lstm.inspect.predict.next_characters`), stored as meta["predictions"] and the
    planes "top_id", "top_p" and "saliency" (see :func:`prediction_planes`). inputs: numeric
    input rows per step (meta["inputs"]); notes: paragraphs of plain text (meta["notes"])."""
    text = text if max_chars is None else text[:max_chars]
    if not text:
        raise ValueError("text: expected at least one character")
    if len(text) > trace.steps:
        raise ValueError(f"text: {len(text)} characters but the trace has {trace.steps} steps")
    if not 0 <= batch < trace.valid.shape[1]:
        raise ValueError(f"batch: expected 0 ≤ batch < {trace.valid.shape[1]}, got {batch}")
    T, H = len(text), trace.lstm.hidden_size
    picks: list[Highlight] = []
    for label, spec in (highlights or {}).items():
        unit, r = (spec, None) if isinstance(spec, int) else (spec[0], float(spec[1]))
        if not 0 <= unit < H:
            raise ValueError(f"highlights: {label!r} → unit {unit}, expected 0 ≤ unit < {H}")
        picks.append({"label": label, "unit": int(unit), "r": r})
    numbers = narrated_numbers(trace, layer, direction, batch, T)
    valid = trace.valid[:T, batch]
    # long pages: numbers in steps of their unit's rounding step (the page multiplies back)
    steps = rounding_steps(numbers, valid) if T * H > EXACT_VALUES else {}
    # the scale of the stored (rounded) values, so the page and Python agree on every colour
    scales = {
        key: [float(f"{s:.4g}") for s in robust_scale(numbers[key][valid] / 100)] for key in SCALED
    }
    planes = {
        key: encode_plane(
            sign_magnitude(np.rint(numbers[key] / steps[key]) if key in steps else numbers[key])
        )
        for key in PLANES
    }
    planes["valid"] = encode_plane(trace.valid[:T, batch].astype(np.uint8))
    meta: PageMeta = {
        "title": title,
        "text": text,
        "steps": T,
        "units": H,
        "layer": layer,
        "direction": direction,
        "layers": trace.lstm.num_layers,
        "directions": trace.lstm.num_directions,
        "quantities": [{"key": k, "label": v[0], "about": v[1]} for k, v in QUANTITIES.items()],
        "highlights": picks,
        "narration": narration_template(),
        "c_edge": sign_magnitude(numbers["c_edge"]).astype(int).tolist(),
        "scales": scales,
        "placeholders": sorted({int(t) for t in placeholders or () if 0 <= t < T}),
        "rounding": {key: step.tolist() for key, step in steps.items()},
        "rounding_note": ROUNDING_NOTE if steps else "",
        "predictions": None,
        "inputs": checked_inputs(inputs or [], T),
        "notes": [str(note) for note in notes or ()],
    }
    if predictions is not None:
        meta["predictions"], more = prediction_planes(predictions, T)
        planes |= more
    return meta, planes


def checked_inputs(rows: list[InputRow], T: int) -> list[InputRow]:
    """Each row's first T values, rounded to its digits; refuses a short or non-finite row."""
    checked: list[InputRow] = []
    for row in rows:
        values, digits = np.asarray(row["values"], dtype=np.float64), row["digits"]
        if not isinstance(digits, (int, np.integer)) or not 0 <= digits <= 15:
            raise ValueError(f"inputs: {row['label']!r} → digits {digits!r}, expected 0…15")
        if values.ndim != 1 or len(values) < T or not np.isfinite(values[:T]).all():
            raise ValueError(
                f"inputs: {row['label']!r} → expected {T} finite values (one per step), "
                f"got shape {values.shape}"
            )
        rounded = [round(float(v), int(digits)) for v in values[:T]]
        checked.append({"label": str(row["label"]), "values": rounded, "digits": int(digits)})
    return checked


def prediction_planes(predictions: Predictions, T: int) -> tuple[PredictionsMeta, Planes]:
    """The first min(steps, T) predictions as meta["predictions"] and three planes, each
    :func:`encode_plane`'d (Tp rows, unit-major: element (t, j) at j·Tp + t):

    - "top_id" (Tp, k): alphabet indices, plain unsigned (uint8 for ≤ 256 characters, else
      uint16);
    - "top_p" (Tp, k) uint16: probabilities in per mille, rint(1000·p);
    - "saliency" (Tp, window): :func:`sign_magnitude` of rint(100·s / max|s| over the row) —
      percent of the step's largest |value| (a row of zeros stays zeros).
    """
    alphabet, Tp = list(predictions.alphabet), min(predictions.steps, T)
    if not 1 <= len(alphabet) <= 65536:
        raise ValueError(f"predictions: expected 1…65536 characters, got {len(alphabet)}")
    top_ids, top_p = predictions.top_ids[:Tp], predictions.top_p[:Tp]
    saliency = np.asarray(predictions.saliency[:Tp], dtype=np.float64)
    if top_ids.size and (top_ids.min() < 0 or top_ids.max() >= len(alphabet)):
        raise ValueError("predictions: top_ids outside the alphabet")
    if not (np.isfinite(top_p).all() and ((top_p >= 0) & (top_p <= 1)).all()):
        raise ValueError("predictions: top_p must be probabilities in [0, 1]")
    if not np.isfinite(saliency).all():
        raise ValueError("predictions: the saliency is not all finite")
    largest = np.abs(saliency).max(axis=1, keepdims=True)
    percent = np.rint(100 * saliency / np.where(largest > 0, largest, 1))
    index_dtype = np.uint8 if len(alphabet) <= 256 else np.uint16
    planes = {
        "top_id": encode_plane(top_ids.astype(index_dtype)),
        "top_p": encode_plane(np.rint(1000 * top_p).astype(np.uint16)),
        "saliency": encode_plane(sign_magnitude(percent)),
    }
    k, window, cap = predictions.k, predictions.window, predictions.max_steps
    meta: PredictionsMeta = {
        "alphabet": alphabet,
        "k": k,
        "steps": Tp,
        "window": window,
        "max_steps": cap,
        "about": PREDICTIONS_ABOUT.format(
            where="At each step"
            if Tp == T
            else f"At each of the first {Tp:,} steps (predictions stop at {cap:,})",
            k=k,
            window=window,
        ),
    }
    return meta, planes


def _script_json(value: object) -> str:
    """JSON that is safe inside <script>: no "<" (so no "</script>") and no "//" from the
    text that would read like a link; both are valid JSON escapes."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace("/", "\\/")


def render_html(meta: PageMeta, planes: Planes) -> str:
    """The page: the template with the style, the script and the data inlined."""
    assets = files(__package__) / "page"
    blocks = "\n".join(
        f'<script type="application/octet-stream" id="plane-{key}" data-dtype="{p["dtype"]}">'
        f"{p['data']}</script>"
        for key, p in planes.items()
    )
    values = {
        "/*STYLE*/": (assets / "explorer.css").read_text("utf-8"),
        "/*SCRIPT*/": "\n".join((assets / f"{name}.js").read_text("utf-8") for name in SCRIPTS),
        "{{TITLE}}": html.escape(meta["title"]),
        "{{META}}": _script_json(meta),
        "{{PLANES}}": blocks,
    }
    # one pass over the template, so markers inside the inserted text are left alone
    return MARKERS.sub(
        lambda match: values[match.group()], (assets / "explorer.html").read_text("utf-8")
    )


def write_explorer(
    path: str | Path,
    text: str,
    trace: Trace,
    *,
    layer: int = 0,
    direction: int = 0,
    batch: int = 0,
    title: str = "LSTM gate explorer",
    highlights: dict[str, HighlightSpec] | None = None,
    max_chars: int | None = None,
    placeholders: list[int] | None = None,
    predictions: Predictions | None = None,
    inputs: list[InputRow] | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write the explorer page for `text` (its character t is step t of sequence `batch` of the
    trace) and return its path.

    highlights maps a description ("inside quotes") to the unit that tracks it, or to (unit, r)
    as :func:`~numpy_lstm.inspect.features.rank_units` returns; the page offers each as a
    one-click pick (showing r). max_chars keeps only the first characters (and steps).
    placeholders: steps whose character replaced one outside the model's vocabulary.
    predictions, inputs, notes: see :func:`page_data`.
    """
    meta, planes = page_data(
        text,
        trace,
        layer=layer,
        direction=direction,
        batch=batch,
        title=title,
        highlights=highlights,
        max_chars=max_chars,
        placeholders=placeholders,
        predictions=predictions,
        inputs=inputs,
        notes=notes,
    )
    path = Path(path)
    path.write_text(render_html(meta, planes), encoding="utf-8")
    return path
