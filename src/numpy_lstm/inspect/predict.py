"""What a char-LM predicts next at each step, and which earlier characters drove the prediction.

    preds = next_characters(model.embedding, model.lstm, model.head, ids, vocab.chars)
    preds.top_ids[t], preds.top_p[t]   # (k,): the k likeliest characters after reading 0..t
    preds.saliency[t, lag]              # how much character t − lag pushed the top-1 prediction

Saliency is gradient × input (the "which inputs drive a prediction" view of distill.pub's
"Memorization in RNNs"): for the top-1 character c* at step t,

    saliency[t, lag] = Σ_features x_{t−lag} ⊙ ∂ log p_t(c*) / ∂x_{t−lag}

where x_s is the LSTM's input at step s (the character's embedding vector). It is exactly what
:meth:`Trace.backward` gives on the whole sequence with the upstream gradient nonzero only at
step t (the head's backward of the log-softmax gradient) — but computed for every t at once.
The gradient w.r.t. x_{t−lag} for lag < W depends only on the W steps that end at t and on the
(h, c) state the LSTM entered them with; that state is a recorded number, not a function of those
inputs. So each step gets a window of W steps started from the state the full forward pass
recorded at step t − W (zeros before the text), and the windows run side by side as one batch,
in chunks whose arrays stay within a memory budget — not one full-length backward per step.
For the plain cell the windows' steps are the full pass's own, so BPTT runs straight through
its recorded gates and memories; other cells (peepholes, projections, …) rerun each window
forward first.

inspect sits below tasks: this module takes the model's parts (Embedding, LSTM, Linear head) and
the vocabulary's characters, not a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..core.cell import memory_update_backward
from ..kernels.threads import blas_threads, get_num_threads
from ..nn.layers import Embedding, Linear
from ..nn.lstm import LSTM
from ..nn.module import evaluating

# Predictions are made for at most this many steps (the first ones). On the explorer page they
# take 0.12–0.17 MB per 5,000 steps (k = 5, W = 20; the second figure for incompressible
# numbers), and a 50,000-character page at 256 units already takes ~19.8 MB of its 20 MB:
# 5,000 keeps it under. (`numpy-lstm explore` asks for every step on a page short enough to
# keep its exact numbers, up to 10,000 characters at 256 units, where there is room.)
MAX_PREDICTED_STEPS = 5_000
DEFAULT_WINDOW = 20
DEFAULT_TOP = 5
# How many values (steps × windows × units, all layers) the chunks of windows may keep for
# their backward at once: ~800 windows of 20 steps at 256 units, a few hundred MB. Bigger
# batches run the per-step products faster (900 windows: 1.5× the speed of 150).
CHUNK_VALUES = 32_000_000


@dataclass(frozen=True)
class Predictions:
    """The next-character predictions of the first `steps` steps of a text.

    alphabet: index → character. top_ids (Tp, k) int64: at step t (the model has read characters
    0..t) the k likeliest next characters, likeliest first; top_p (Tp, k) float64 their
    probabilities (softmax of the head's logits). saliency (Tp, W) float64: [t, lag] is the
    gradient × input of log p_t(top_ids[t, 0]) w.r.t. the LSTM's input at step t − lag, summed
    over the input features (0 where t − lag < 0). window W: how many steps back it looks.
    max_steps: the cap on Tp they were made with (Tp < the text's length when it bites).
    """

    alphabet: list[str]
    top_ids: np.ndarray
    top_p: np.ndarray
    saliency: np.ndarray
    window: int
    max_steps: int = MAX_PREDICTED_STEPS

    @property
    def steps(self) -> int:
        return int(self.top_ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.top_ids.shape[1])


def softmax(logits: np.ndarray) -> np.ndarray:
    """logits (…, V) → probabilities (…, V) in float64, stable (the max subtracted first)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    p: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return p


def next_characters(
    embedding: Embedding,
    lstm: LSTM,
    head: Linear,
    ids: npt.ArrayLike,
    alphabet: Sequence[str],
    *,
    k: int = DEFAULT_TOP,
    window: int = DEFAULT_WINDOW,
    max_steps: int = MAX_PREDICTED_STEPS,
    chunk_values: int = CHUNK_VALUES,
) -> Predictions:
    """Top-k next characters and gradient × input saliency for the first min(len(ids),
    max_steps) steps of the text `ids` (T,) (indices into `alphabet`), read from the zero state
    in evaluation mode (no dropout) — as `numpy-lstm explore` reads a text.

    embedding: ids → the LSTM's inputs; lstm: unidirectional (a bidirectional one's prediction
    at step t has read the future); head: Linear, the LSTM's output → one logit per character of
    `alphabet`. The model's gradients (`grads`) are not touched (a trace recorded before this
    still runs its backward through its own forward).

    Cost: about W backward passes over the text (the windows overlap), batched and split
    between threads. 10,000 characters at 256 units, float32: ~5 s of CPU time (8–9 s wall on
    2 AMD EPYC cores shared with other work); float64 twice that.
    """
    if not isinstance(embedding, Embedding):
        raise TypeError(f"embedding: expected a numpy_lstm.Embedding, got {type(embedding)}")
    if not isinstance(lstm, LSTM):
        raise TypeError(f"lstm: expected a numpy_lstm.LSTM, got {type(lstm).__name__}")
    if not isinstance(head, Linear):
        raise TypeError(f"head: expected a numpy_lstm.Linear, got {type(head).__name__}")
    if lstm.bidirectional:
        raise ValueError("lstm: a bidirectional LSTM reads the future; no next-step prediction")
    if embedding.embedding_dim != lstm.input_size or head.in_features != lstm.output_size:
        raise ValueError(
            f"embedding, head: expected Embedding(…, {lstm.input_size}) and "
            f"Linear({lstm.output_size}, …) around {lstm!r}, got {embedding!r} and {head!r}"
        )
    alphabet = list(alphabet)
    if len(alphabet) != head.out_features:
        raise ValueError(
            f"alphabet: expected {head.out_features} characters (the head's outputs), "
            f"got {len(alphabet)}"
        )
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ValueError(
            f"ids: expected a non-empty (T,) array of integer indices, got {ids.dtype} of "
            f"shape {ids.shape}"
        )
    known = min(len(alphabet), embedding.num_embeddings)
    if ids.min() < 0 or ids.max() >= known:
        raise ValueError(f"ids: expected indices in [0, {known}), got {ids.min()}…{ids.max()}")
    for name, value, low in (("k", k, 1), ("window", window, 1), ("max_steps", max_steps, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}: expected an integer ≥ {low}, got {value!r}")
    if k > len(alphabet):
        raise ValueError(f"k: expected at most {len(alphabet)} (the alphabet's size), got {k}")
    if chunk_values < 1:
        raise ValueError(f"chunk_values: expected ≥ 1, got {chunk_values}")

    ids = ids[:max_steps]
    head_parameters = dict(head.named_parameters())
    weight, bias = head_parameters["weight"], head_parameters.get("bias")
    with evaluating(lstm):
        x = embedding.weight[ids]  # (T, E): the layer's lookup, without keeping its indices
        out, _ = lstm.forward(x)  # unbatched (T, H_out) in either layout, from the zero state
        # every layer's (h, c) after each step: the states the windows start from. (Each
        # kernel's Cache keeps them all: h[s + 1], c[s + 1] after step s, batch axis 1.)
        caches = lstm._cache.caches
        h_after = np.stack([cache.h[1:, 0] for cache in caches], axis=1)  # (T, layers, H_out)
        c_after = np.stack([cache.c[1:, 0] for cache in caches], axis=1)  # (T, layers, H)
        logits = out @ weight.T  # (T, V): what the head computes, in the model's dtype
        logits = logits if bias is None else logits + bias
        p = softmax(logits)  # (T, V) float64
        # likeliest first; equal probabilities in alphabet order
        top_ids = np.argsort(-p, axis=-1, kind="stable")[:, :k]
        top_p = np.take_along_axis(p, top_ids, axis=-1)
        # ∂ log p(c*)/∂logits = onehot(c*) − p; through the head: (T, H_out) for the LSTM
        d_logits = -p
        d_logits[np.arange(len(ids)), top_ids[:, 0]] += 1.0
        d_h = (d_logits @ weight.astype(np.float64)).astype(lstm.dtype)
        if _plain_cell(lstm):
            # (layers, T, 4H) gate values and (layers, T + 1, H) memories, c[0] the initial one
            gates = np.stack([cache.gates[:, 0] for cache in caches])
            memories = np.stack([cache.c[:, 0] for cache in caches])
            saliency = _saliency_from_recorded(lstm, x, gates, memories, d_h, window, chunk_values)
        else:
            saliency = _windowed_saliency(lstm, x, h_after, c_after, d_h, window, chunk_values)
    return Predictions(
        alphabet, top_ids.astype(np.int64), top_p, saliency, int(window), int(max_steps)
    )


def _plain_cell(lstm: LSTM) -> bool:
    """Whether a step is the plain cell of core.cell (no peepholes, projection, zoneout or other
    variant): then a step's backward needs only its gate values and memories."""
    return (
        lstm.variant.is_plain
        and not lstm.peephole
        and lstm.proj_size == 0
        and lstm.zoneout == (0.0, 0.0)
    )


def _windows(T: int, window: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(L, start, position): every window has L = min(window, T) steps; step t's runs from
    start[t] (T,) and t sits at position[t] (T,) in it. Early steps (t < L − 1) share the first
    window: the steps after t get a zero upstream gradient, so they add exactly nothing to the
    gradient at t's inputs."""
    L = min(window, T)
    t = np.arange(T)
    start = np.maximum(0, t - L + 1)
    return L, start, t - start


def _saliency_from_recorded(
    lstm: LSTM,
    x: np.ndarray,
    gates: np.ndarray,
    memories: np.ndarray,
    d_h: np.ndarray,
    window: int,
    chunk_values: int,
) -> np.ndarray:
    """:func:`_windowed_saliency` for the plain cell, from the full pass's recorded gate values
    (layers, T, 4H) and memories (layers, T + 1, H) instead of a forward over each window: a
    window's steps *are* the full pass's steps (same state in, same inputs), so only BPTT runs,
    through core.cell's step backward, and without the weights' gradients: a third to a quarter
    of the CPU time."""
    T, layers = x.shape[0], lstm.num_layers
    L, start, position = _windows(T, window)
    weights = [lstm.layer_weights(k) for k in range(layers)]
    act_memories = np.tanh(memories[:, 1:])  # (layers, T, H): what each Presenter multiplied
    # the windows split between threads, each with its own chunks and a one-thread BLAS (whose
    # own threads would spin against ours: 2× the CPU time measured)
    threads = max(1, min(get_num_threads(), T // 500))
    per_window = L * lstm.hidden_size * 8 * layers
    chunk = max(1, chunk_values // (per_window * threads))
    saliency = np.zeros((T, window), dtype=np.float64)

    def windows_back(begin: int, end: int) -> None:
        for first in range(begin, end, chunk):
            back_through(np.arange(first, min(first + chunk, end)))

    def back_through(rows: np.ndarray) -> None:
        n = len(rows)
        steps = start[rows] + np.arange(L)[:, None]  # (L, n): each window's steps
        dh = np.zeros((layers, n, lstm.hidden_size), dtype=lstm.dtype)  # carried back in time
        dc = np.zeros_like(dh)
        for s in reversed(range(L)):
            at = steps[s]
            d_above = np.zeros((n, lstm.hidden_size), dtype=lstm.dtype)
            here = position[rows] == s  # the windows whose prediction is made at this step
            d_above[here] = d_h[rows[here]]
            for k in reversed(range(layers)):
                dz, dc[k], _ = memory_update_backward(
                    d_above + dh[k], dc[k], gates[k, at], memories[k, at], act_memories[k, at]
                )
                d_above = dz @ weights[k].weight_ih  # into the layer below: its output's grad
                dh[k] = dz @ weights[k].weight_hh
            gradient_x_input = np.einsum(
                "ne,ne->n", x[at].astype(np.float64), d_above.astype(np.float64)
            )
            lags = position[rows] - s
            keep = lags >= 0
            saliency[rows[keep], lags[keep]] = gradient_x_input[keep]

    bounds = np.linspace(0, T, threads + 1).astype(int).tolist()
    with blas_threads(1), ThreadPoolExecutor(threads) as pool:
        # NumPy's products and ufuncs release the GIL: the threads run side by side
        done = [pool.submit(windows_back, bounds[j], bounds[j + 1]) for j in range(threads)]
        for future in done:
            future.result()  # an error in a thread is raised here
    return saliency


def _windowed_saliency(
    lstm: LSTM,
    x: np.ndarray,
    h_after: np.ndarray,
    c_after: np.ndarray,
    d_h: np.ndarray,
    window: int,
    chunk_values: int,
) -> np.ndarray:
    """(T, W) gradient × input, back over the W steps that end at each step t, of the upstream
    gradient d_h[t] (T, H_out) on the LSTM's output at t. x (T, E) the inputs; h_after (T,
    layers, H_out) and c_after (T, layers, H): every layer's state after each step of the full
    pass from the zero state."""
    T = x.shape[0]
    L, start, position = _windows(T, window)
    per_window = L * (lstm.hidden_size * 6 + lstm.output_size + x.shape[1]) * lstm.num_layers
    chunk = max(1, chunk_values // per_window)
    saliency = np.zeros((T, window), dtype=np.float64)
    for first in range(0, T, chunk):
        rows = np.arange(first, min(first + chunk, T))
        n = len(rows)
        x_windows = np.ascontiguousarray(x[start[rows, None] + np.arange(L)].transpose(1, 0, 2))
        # the state each window starts from: the full pass's after step start − 1, or zeros
        before, entered = start[rows] - 1, start[rows] > 0
        h0 = np.zeros((n, lstm.num_layers, lstm.output_size), dtype=lstm.dtype)
        c0 = np.zeros((n, lstm.num_layers, lstm.hidden_size), dtype=lstm.dtype)
        h0[entered], c0[entered] = h_after[before[entered]], c_after[before[entered]]
        d_out = np.zeros((L, n, lstm.output_size), dtype=lstm.dtype)
        d_out[position[rows], np.arange(n)] = d_h[rows]
        # The LSTM's own forward and BPTT (the fast kernel where it applies): the same numbers
        # as trace(...).backward(d_out).input_grad, at a third of the cost of recording them.
        # (batch_first layers take (n, L, ·) and answer so)
        swap = (lambda a: a.transpose(1, 0, 2)) if lstm.batch_first else (lambda a: a)
        lstm.forward(swap(x_windows), (h0.transpose(1, 0, 2), c0.transpose(1, 0, 2)))
        dx = swap(lstm.backward_pass(swap(d_out))[0])  # (L, n, E)
        # (n, L): gradient × input per window step; its lag is position − (step in the window)
        product = np.einsum("lne,lne->nl", x_windows.astype(np.float64), dx.astype(np.float64))
        lags = position[rows, None] - np.arange(L)
        keep = lags >= 0
        saliency[np.broadcast_to(rows[:, None], (n, L))[keep], lags[keep]] = product[keep]
    return saliency
