"""The fast path's driver around the compiled loops of :mod:`numpy_lstm.kernels.numba_kernels`.

Same arguments and results as :func:`numpy_lstm.core.sequence.lstm_forward` / `lstm_backward` for
the options it supports (see :func:`supports`). It prepares the weights and buffers, splits the
batch over threads (rows never interact, so each thread runs the whole sequence on its rows
without synchronising), and forms the weight gradients, which sum over time, with one large product.
Independent calls — the two directions of a layer — can run side by side, each on its share of
the threads (:func:`forward_side_by_side`, :func:`backward_side_by_side`). A forward of one row
with large weights splits its units over threads instead (:mod:`numpy_lstm.kernels.unit_split`).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, cast

import numpy as np

from ..core.cell import LSTMWeights
from ..core.options import SequenceOptions
from ..core.sequence import SequenceGrads
from . import numba_kernels as nk
from . import simd, unit_split
from .cache import BackwardCall, Cache, ForwardCall, ForwardResult
from .prepared import reused
from .threads import blas_threads, cores, get_num_threads, run_parallel

# A thread costs ~0.1 ms per call (measured: 2 threads lose at T=20, B=8, H=64 — 5M
# multiply-adds — and win 1.2× at T=100): it gets at least this many multiply-adds.
MIN_WORK_PER_THREAD = 1 << 22
# A one-row forward of at least this many steps forms its input products before the loop
# (when its input is wide enough: see _hoists).
HOIST_MIN_STEPS = 8
MIN_ROWS_PER_THREAD = 4  # the matmul's register block: split on multiples of 4 rows
# A one-row forward of at least MIN_UNIT_SPLIT_STEPS steps splits its units over threads
# (kernels.unit_split) in groups of at least MIN_UNITS_PER_THREAD units and
# MIN_UNIT_GROUP_STEP_WORK multiply-adds a step, i.e. 512 KB of float32 weights a thread: it
# pays where the weights outgrow one core's L2 and fit in two. Measured on a Zen 4 (1 MB L2 a
# core), two threads against one, T = 100: I, H = 256, 256: 1.3–1.5× faster; 64, 256: 1.2×;
# 128, 512: 1.7×; but 32, 128 (82 K multiply-adds a step) and 128, 128 (131 K): 10–20% slower,
# as is 256, 256 at T = 20 — a thread wakes in ~35 µs and the threads wait for each other
# every step (~0.25 µs), more than a small step's product gains.
MIN_UNIT_SPLIT_STEPS = 32
MIN_UNITS_PER_THREAD = 32
MIN_UNIT_GROUP_STEP_WORK = 1 << 17
SPARE_BYTES = 256 << 20  # at most this much memory is kept for reuse (see Spares)
ALIGN = 64  # bytes: a cache line, and an AVX-512 vector
SMALL_BYTES = 4096  # arrays smaller than this are not aligned (see empty)


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """np.empty aligned to a cache line: a vector load then never straddles two lines. NumPy's
    own arrays start 16 bytes into a line, which costs ~20% on the L2-bound B=1 products. Below
    a few lines it matters less than the ~10 µs the alignment takes (a streaming call makes
    several): small arrays are NumPy's own."""
    size = math.prod(shape) * dtype.itemsize
    if size < SMALL_BYTES:
        return np.empty(shape, dtype)
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.__array_interface__["data"][0] % ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)


class Spares:
    """Large arrays of finished calls, kept for the next call that needs the same shape.

    A new array costs a page fault per 4 KiB page at first touch (the OS zero-fills it): about
    a quarter of a forward pass at B=32, and more with two threads, which fault in parallel.
    Arrays come back when their owner is done: the backward's scratch at its end, a cache's
    buffers when the cache is garbage (see :func:`forward`).
    """

    def __init__(self, max_bytes: int) -> None:
        self._free: dict[tuple[tuple[int, ...], np.dtype], list[np.ndarray]] = {}
        self._bytes, self._max_bytes = 0, max_bytes
        self._lock = threading.Lock()  # cache finalizers may run on any thread

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised array, recycled if one of this shape and dtype is spare (small ones
        are not kept: a new one costs less than the lock)."""
        if math.prod(shape) * dtype.itemsize < SMALL_BYTES:
            return np.empty(shape, dtype)
        with self._lock:
            free = self._free.get((shape, dtype))
            if free:
                array = free.pop()
                self._bytes -= array.nbytes
                return array
        return empty(shape, dtype)

    def give(self, *arrays: np.ndarray) -> None:
        """Keep these for reuse (while within the budget); the caller must not use them again."""
        with self._lock:
            for array in arrays:
                if SMALL_BYTES <= array.nbytes <= self._max_bytes - self._bytes:
                    self._free.setdefault((array.shape, array.dtype), []).append(array)
                    self._bytes += array.nbytes


spares = Spares(SPARE_BYTES)


def row_chunks(B: int, work_per_row: int, threads: int | None = None) -> list[tuple[int, int]]:
    """The batch rows [0, B) split into one range per thread (of `threads`, default all the
    kernels'), on multiples of 4 rows; a single range when one thread is faster. work_per_row:
    multiply-adds per row for the sequence."""
    n = min(B // MIN_ROWS_PER_THREAD, B * work_per_row // MIN_WORK_PER_THREAD)
    if n > 1:  # asked only then: the setting costs a system call, a lot beside a streaming call
        n = min(n, get_num_threads() if threads is None else threads)
    if n <= 1:
        return [(0, B)]
    blocks = -(-B // 4)  # split whole 4-row blocks as evenly as possible
    bounds = [min(B, 4 * (k * blocks // n)) for k in range(n)] + [B]
    return list(pairwise(bounds))


def supports(x: np.ndarray, w: LSTMWeights, options: SequenceOptions) -> bool:
    """Whether the fast kernels cover this call: the plain cell with optional mask, reverse,
    carried outputs and projection, float32 or float64, no recording. Everything else uses the
    reference."""
    plain_weights = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    return (
        x.dtype in (np.float32, np.float64)
        and options.variant.is_plain
        and options.recurrent_keep is None
        and options.zoneout is None
        and not options.record  # per-step pre-activations: only the reference keeps them
        and all(getattr(w, name) is None for name in w._fields if name not in plain_weights)
    )


def _prepare(w: LSTMWeights, dtype: np.dtype, transposed: bool, cat: bool = True) -> nk.Weights:
    """:func:`_prepare_now`, reused while the weights are unchanged."""
    return reused(
        ("prepare", dtype.str, transposed, cat), w, lambda: _prepare_now(w, dtype, transposed, cat)
    )


def _prepare_now(w: LSTMWeights, dtype: np.dtype, transposed: bool, cat: bool) -> nk.Weights:
    """The kernels' weights, aligned; the transposed copies only when a case needs them, and
    [W_hh, W_ih] only if `cat` (kernels given packed weights do not read it)."""
    none = np.empty((0, 0), dtype)
    H_out = w.output_size
    w_cat = empty((w.weight_hh.shape[0], H_out + w.weight_ih.shape[1]), dtype) if cat else none
    if cat:
        w_cat[:, :H_out], w_cat[:, H_out:] = w.weight_hh, w.weight_ih
    bias = _summed_bias(w, dtype)
    w_hr = none if w.weight_hr is None else _aligned_copy(w.weight_hr)
    if not transposed:
        return nk.Weights(w_cat, none, bias, w_hr, none)
    w_hr_t = none if w.weight_hr is None else _aligned_copy(w.weight_hr.T)
    return nk.Weights(w_cat, _aligned_copy(w_cat.T), bias, w_hr, w_hr_t)


def _summed_bias(w: LSTMWeights, dtype: np.dtype) -> np.ndarray:
    """b_ih + b_hh (4H,), zeros without bias."""
    summed = w.bias()  # 0.0 without bias
    return summed if isinstance(summed, np.ndarray) else np.zeros(w.weight_hh.shape[0], dtype)


# A forward's flags (mask, carry_output, reverse) and arrays as the kernels take them: see
# numba_kernels (rows: hx, c, gates, tanh_c, shown, out; units: the same without shown).
Flags = tuple[np.ndarray, bool, bool]
RowArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
UnitArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

PackedPart = Literal["forward", "backward", "recurrent", "input"]


def _packed(w: LSTMWeights, dtype: np.dtype, part: PackedPart = "forward") -> simd.Packed:
    """Weights packed for this CPU's SIMD micro-kernel (float32), else :data:`simd.UNPACKED`
    (float64, or the generic path); packed once per weights version (see
    :func:`numpy_lstm.kernels.prepared.reused`).
    `part`: [W_hh, W_ih] and the bias (forward); [W_hh, W_ih]ᵀ with a zero bias, for the
    backward's [dh, dx] = dz·[W_hh, W_ih]; W_hh alone with a zero bias (recurrent) and W_ih
    with the bias (input), for a forward whose input products are hoisted out of the loop."""
    isa = simd.path_for(dtype)
    if isa is None:
        return simd.UNPACKED
    return reused(("packed", isa, part), w, lambda: _pack_now(w, dtype, isa, part))


def _pack_now(w: LSTMWeights, dtype: np.dtype, isa: str, part: PackedPart) -> simd.Packed:
    both, bias = [w.weight_hh, w.weight_ih], _summed_bias(w, dtype)
    if part == "backward":
        zeros = np.zeros(w.output_size + w.weight_ih.shape[1], dtype)
        return simd.pack_for(isa, both, zeros, transposed=True)
    if part == "recurrent":
        return simd.pack_for(isa, [w.weight_hh], np.zeros_like(bias))
    return simd.pack_for(isa, [w.weight_ih] if part == "input" else both, bias)


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    copy = empty(a.shape, a.dtype)
    copy[...] = a
    return copy


@dataclass(frozen=True)
class FastCache:
    """What the fast backward needs: the arrays of :mod:`numpy_lstm.kernels.numba_kernels`, indexed
    by time, which return to :data:`spares` when the cache is garbage. `h`, `c` and `gates` are
    copies laid out like :class:`numpy_lstm.core.sequence.SequenceCache`'s (processing order,
    initial state at index 0); the gates of masked steps are not computed."""

    hx: np.ndarray
    c_t: np.ndarray
    gates_t: np.ndarray
    tanh_c: np.ndarray
    shown: np.ndarray
    mask: np.ndarray
    weights: LSTMWeights
    reverse: bool
    carry_output: bool
    chunks: list[tuple[int, int]]

    @property
    def forward_work(self) -> int:
        """The multiply-adds of the forward that made this cache."""
        T, B = self.gates_t.shape[:2]
        return _forward_work((T, B, self.hx.shape[2] - self.weights.output_size), self.weights)

    @property
    def h(self) -> np.ndarray:
        """(T+1, B, H_out): h[0] = h0, h[s+1] = the state after the s-th step processed."""
        h = self.hx[..., : self.weights.output_size]
        return (h[:0:-1] if self.reverse else h[:-1]).copy()

    @property
    def c(self) -> np.ndarray:
        """(T+1, B, H), laid out like `h`."""
        return (self.c_t[:0:-1] if self.reverse else self.c_t[:-1]).copy()

    @property
    def gates(self) -> np.ndarray:
        """(T, B, 4H) gate values i, f, g, o of every step, in processing order."""
        return (self.gates_t[::-1] if self.reverse else self.gates_t).copy()

    def state(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(h[steps], c[steps]) as `h` and `c` lay them out, copying only that row: a char-LM
        carries the state on after every window, and copying all of h and c for it took 0.25 ms
        a step at T = 100, B = 32, H = 256 (measured; 0.015 ms for the row)."""
        row = self.gates_t.shape[0] + 1 - steps if self.reverse else steps
        return self.hx[row, :, : self.weights.output_size].copy(), self.c_t[row].copy()


@dataclass(frozen=True)
class _Work:
    """One call's compiled work, ready to run: work(r0, r1) for every range in chunks, all at
    the same time; `waits`: its ranges wait for each other (see :func:`_run`)."""

    work: Callable[[int, int], None]
    chunks: list[tuple[int, int]]
    waits: bool = False


# Works whose threads wait for each other run one at a time in the process: two of them sharing
# the pool could each hold some of its threads while waiting for the rest, for ever.
_waiting_works = threading.Lock()


def _run(works: list[_Work]) -> None:
    """Every range of every work at the same time, one per thread of the pool."""
    jobs = [(work.work, r0, r1) for work in works for r0, r1 in work.chunks]

    def job(i: int, _: int) -> None:
        run, r0, r1 = jobs[i]
        run(r0, r1)

    with _waiting_works if any(work.waits for work in works) else nullcontext():
        run_parallel(job, [(i, i + 1) for i in range(len(jobs))])


def _thread_shares(works_to_do: list[int]) -> list[int] | None:
    """The kernels' threads shared out over independent calls of these multiply-adds (as evenly
    as possible), or None when they should run one after the other: fewer threads than calls,
    or a call too small to be worth a thread of its own."""
    if len(works_to_do) < 2 or min(works_to_do) < MIN_WORK_PER_THREAD:
        return None
    n = get_num_threads()
    if n < len(works_to_do):
        return None
    return [n // len(works_to_do) + (k < n % len(works_to_do)) for k in range(len(works_to_do))]


def forward(
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    w: LSTMWeights,
    options: SequenceOptions,
) -> ForwardResult:
    """:func:`numpy_lstm.core.sequence.lstm_forward` for the options of :func:`supports`."""
    work, finish = _start_forward(x, h0, c0, w, options, threads=None)
    _run([work])
    return finish()


def forward_side_by_side(calls: list[ForwardCall]) -> list[ForwardResult]:
    """[forward(*call) for call in calls] for calls that do not depend on each other (the two
    directions of a layer): their sequences run at the same time, each on its share of the
    threads. Two directions of B rows on two cores: each core runs one direction's B rows
    rather than B/2 rows of each in turn, so a panel of weights in cache serves twice as many
    rows (measured on a Zen 4, 2-layer bidirectional, forward and forward + backward: 2–4%
    faster at B = 32, 8–14% at B = 8)."""
    shares = _thread_shares([_forward_work(x.shape, w) for x, _, _, w, _ in calls])
    if shares is None:
        return [forward(*call) for call in calls]
    started = [_start_forward(*call, threads=n) for call, n in zip(calls, shares, strict=True)]
    _run([work for work, _ in started])
    return [finish() for _, finish in started]


def _forward_work(shape: tuple[int, ...], w: LSTMWeights) -> int:
    """The multiply-adds of a forward over an input of this shape (T, B, I)."""
    T, B, I = shape
    return T * B * 4 * w.hidden_size * (I + w.output_size)


def _start_forward(
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    w: LSTMWeights,
    options: SequenceOptions,
    threads: int | None,
) -> tuple[_Work, Callable[[], ForwardResult]]:
    """A forward's buffers and prepared weights, its rows split for `threads` (None: all); its
    work to run, and what returns its results once the work is done."""
    mask, reverse, carry_output = options.mask, options.reverse, options.carry_output
    dtype = x.dtype
    T, B, I = x.shape
    H, H_out = w.hidden_size, w.output_size
    hx = spares.take((T + 2, B, H_out + I), dtype)
    inputs = hx[2:] if reverse else hx[:T]  # x_t sits next to the state that step t reads
    inputs[..., H_out:] = x
    if mask is None:
        mask = np.empty((0, 0), dtype=bool)  # zero-sized rather than None: see numba_kernels
    else:  # padding may hold anything, NaN included: it must not reach the math
        mask = np.ascontiguousarray(mask)
        inputs[~mask, H_out:] = 0
    c = spares.take((T + 2, B, H), dtype)
    first = T + 1 if reverse else 0
    hx[first, :, :H_out], c[first] = h0, c0
    gates = spares.take((T, B, 4 * H), dtype)
    tanh_c = spares.take((T, B, H), dtype)
    shown = spares.take((T, B, H) if w.weight_hr is not None else (0, 0, 0), dtype)
    out = np.empty((T, B, H_out), dtype)  # the caller's: never recycled
    chunks = row_chunks(B, _forward_work(x.shape, w) // B, threads)
    half = cast(float, dtype.type(0.5))  # 0.5 in the dtype: see numba_kernels.forward_rows
    flags: Flags = (mask, carry_output, reverse)
    # Every step's x as T·B rows (zeros where masked) for a forward that hoists its input
    # products; zero-sized for one that does not.
    x_rows = np.empty((0, I), dtype)
    if _hoists(x.shape, w, dtype):
        x_rows = np.ascontiguousarray(inputs[..., H_out:]).reshape(T * B, I)
    groups = _unit_groups(x.shape, w, threads)
    if groups > 1:
        work = _unit_work(w, groups, flags, (hx, c, gates, tanh_c, out), half, x_rows)
    else:
        arrays = (hx, c, gates, tanh_c, shown, out)
        work = _Work(_row_work(x.shape, w, flags, arrays, half, x_rows), chunks)

    def finish() -> ForwardResult:
        last = 1 if reverse else T
        cache = FastCache(hx, c, gates, tanh_c, shown, mask, w, reverse, carry_output, chunks)
        kept = (hx, c, gates, tanh_c, shown)
        if max(a.nbytes for a in kept) >= SMALL_BYTES:  # else none is worth keeping (Spares)
            weakref.finalize(cache, spares.give, *kept)
        return out, hx[last, :, :H_out].copy(), c[last].copy(), cache

    return work, finish


def _row_work(
    shape: tuple[int, ...],
    w: LSTMWeights,
    flags: Flags,
    arrays: RowArrays,
    half: float,
    x_rows: np.ndarray,
) -> Callable[[int, int], None]:
    """A forward's work on its rows [r0, r1) (:func:`numba_kernels.forward_rows`), with the
    weights prepared for it; x_rows (T·B, I): every step's x if the forward hoists its input
    products (see :func:`_hoists`), else zero-sized."""
    T, B = shape[:2]
    H = w.hidden_size
    gates = arrays[2]
    dtype = gates.dtype
    hoisted = x_rows.shape[0] > 0
    packed = _packed(w, dtype, "recurrent" if hoisted else "forward")
    if hoisted:
        input_part = cast(simd.PackedAvx512 | simd.PackedAvx2, _packed(w, dtype, "input"))
    unpacked = isinstance(packed, simd.Unpacked)
    # Odd rows of the generic kernel (here also the projection's) read the transposes.
    prepared = _prepare(w, dtype, transposed=B % 4 != 0, cat=unpacked)

    def rows(r0: int, r1: int) -> None:
        if hoisted:  # one row, so one range: this call forms every step's x_t·W_ihᵀ + b, on
            # the thread that runs the sequence (two directions side by side: in parallel)
            scratch = np.empty(simd.SCRATCH_SHAPE, dtype)
            simd.product(input_part, x_rows, gates.reshape(T * B, 4 * H), 0, T * B, scratch)
        nk.forward_rows(prepared, packed, *flags, *arrays, r0, r1, half, hoisted)

    return rows


def _hoists(shape: tuple[int, ...], w: LSTMWeights, dtype: np.dtype) -> bool:
    """Whether a forward of input shape (T, B, I) and this dtype forms its input products
    x_t·W_ihᵀ + b of every step before the loop. One row: a step's product is bound by reading
    the weights from L2 (or L3), not by its multiply-adds (two rows already are, on a Zen 4), so
    hoisting the input's part leaves a step reading W_hh only, its sums started from the
    hoisted products (no pass of their own). That pays unless the input is much narrower than
    the state (measured at B = 1, T = 100, one thread, the whole sequence: I, H = 16, 128: −4%;
    32, 128: −8 to −10%; 64, 128: −10 to −13%; 128, 128: −22%; 256, 256: −31%; 32, 256: −6%;
    but 8, 128: ±0; 1, 64 and 4, 64: ±1%), not at B ≥ 2, where it only moves multiply-adds, nor
    for a few steps."""
    T, B, I = shape
    return (
        B == 1
        and T >= HOIST_MIN_STEPS
        and w.output_size <= 8 * I
        and simd.path_for(dtype) is not None
    )


def _unit_groups(shape: tuple[int, ...], w: LSTMWeights, threads: int | None) -> int:
    """How many threads a forward's units are split over (kernels.unit_split): one row of
    float32 on the SIMD path, no projection, at least MIN_UNIT_SPLIT_STEPS steps; as many as
    there are groups of MIN_UNITS_PER_THREAD units and MIN_UNIT_GROUP_STEP_WORK multiply-adds a
    step, threads and cores (the threads wait for each other every step: they must all be
    running); 1 means not split."""
    T, B, _ = shape
    if B != 1 or T < MIN_UNIT_SPLIT_STEPS or w.weight_hr is not None:
        return 1
    if simd.path_for(w.weight_hh.dtype) is None:
        return 1
    step_work = _forward_work((1, *shape[1:]), w)
    groups = min(w.hidden_size // MIN_UNITS_PER_THREAD, step_work // MIN_UNIT_GROUP_STEP_WORK)
    if groups < 2:
        return 1
    return max(1, min(groups, get_num_threads() if threads is None else threads, cores()))


def _unit_work(
    w: LSTMWeights,
    groups: int,
    flags: Flags,
    arrays: UnitArrays,
    half: float,
    x_rows: np.ndarray,
) -> _Work:
    """A one-row forward with its units split over `groups` threads, each with its own pack of
    its units' weights (:func:`unit_split.forward_units`); x_rows (T, I): every step's x if the
    forward hoists its input products (see :func:`_hoists`), else zero-sized."""
    H, dtype = w.hidden_size, x_rows.dtype
    hoisted = x_rows.shape[0] > 0
    bounds = [k * H // groups for k in range(groups + 1)]
    parts: tuple[PackedPart, PackedPart] = ("recurrent", "input") if hoisted else ("forward",) * 2
    packs = [[_packed_units(w, dtype, *us, part) for part in parts] for us in pairwise(bounds)]
    counters = np.zeros(groups * unit_split.LINE, np.int64)

    def units(k: int, _: int) -> None:
        u0, u1 = bounds[k], bounds[k + 1]
        packed, input_packed = packs[k]
        unit_split.forward_units(
            packed, *flags, *arrays, u0, u1, k, counters, half, x_rows, input_packed
        )

    return _Work(units, [(k, k + 1) for k in range(groups)], waits=True)


def _packed_units(
    w: LSTMWeights, dtype: np.dtype, u0: int, u1: int, part: PackedPart
) -> simd.PackedAvx512 | simd.PackedAvx2:
    """:func:`_packed`'s `part` for units [u0, u1) only — their rows of the four gate blocks, in
    the order i, f, g, o — once per weights version."""
    isa = cast(str, simd.path_for(dtype))
    rows = unit_split.gate_rows(w.hidden_size, u0, u1)

    def pack() -> simd.PackedAvx512 | simd.PackedAvx2:
        def units(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        mine = LSTMWeights(w.weight_ih[rows], w.weight_hh[rows], units(w.bias_ih), units(w.bias_hh))
        return cast(simd.PackedAvx512 | simd.PackedAvx2, _pack_now(mine, dtype, isa, part))

    return reused(("packed", isa, part, "units", u0, u1), w, pack)


def backward(
    d_out: np.ndarray | None,
    dh_n: np.ndarray | None,
    dc_n: np.ndarray | None,
    cache: Cache,
) -> SequenceGrads:
    """:func:`numpy_lstm.core.sequence.lstm_backward` for a :class:`FastCache`."""
    through_time, weight_grads, finish = _start_backward(d_out, dh_n, dc_n, cache)
    _run([through_time])
    with blas_threads(1 if len(weight_grads.chunks) > 1 else None):  # BLAS's would fight ours
        _run([weight_grads])
    return finish()


def backward_side_by_side(calls: list[BackwardCall]) -> list[SequenceGrads]:
    """[backward(*call) for call in calls] for calls that do not depend on each other: at the
    same time, each on the threads its forward had (see :func:`forward_side_by_side`), when
    those add up to no more than the kernels' threads."""
    caches = [cache for *_, cache in calls if isinstance(cache, FastCache)]
    if (
        len(caches) < len(calls)
        or _thread_shares([cache.forward_work for cache in caches]) is None
        or sum(len(cache.chunks) for cache in caches) > get_num_threads()
    ):
        return [backward(*call) for call in calls]
    started = [_start_backward(*call) for call in calls]
    _run([through_time for through_time, _, _ in started])
    with blas_threads(1):
        _run([weight_grads for _, weight_grads, _ in started])
    return [finish() for _, _, finish in started]


def _start_backward(
    d_out: np.ndarray | None,
    dh_n: np.ndarray | None,
    dc_n: np.ndarray | None,
    cache: Cache,
) -> tuple[_Work, _Work, Callable[[], SequenceGrads]]:
    """A backward's buffers: its work through time (rows split as its forward's were), then
    its weight gradients' (the rows of dW split as many ways), and what returns the gradients
    once both are done."""
    if not isinstance(cache, FastCache):
        raise TypeError(f"cache: expected the fast path's FastCache, got {type(cache).__name__}")
    w, hx = cache.weights, cache.hx
    dtype = hx.dtype
    T, B = cache.gates_t.shape[:2]
    H, H_out = w.hidden_size, w.output_size
    I = hx.shape[2] - H_out
    P = 0 if w.weight_hr is None else H_out
    dh = np.zeros((B, H_out), dtype) if dh_n is None else np.array(dh_n, dtype, order="C")
    dc = np.zeros((B, H), dtype) if dc_n is None else np.array(dc_n, dtype, order="C")
    d_out = np.empty((0, 0, 0), dtype) if d_out is None else np.ascontiguousarray(d_out, dtype)
    dx = np.empty((T, B, I), dtype)
    dz = spares.take((T, B, 4 * H), dtype)
    d_proj = spares.take((T, B, P) if P else (0, 0, 0), dtype)
    d_shown = spares.take((B, H) if P else (0, 0), dtype)
    d_hx = spares.take((B, H_out + I), dtype)
    packed_t = _packed(w, dtype, "backward")
    unpacked = isinstance(packed_t, simd.Unpacked)
    # 4-row blocks of the generic kernel (here also the projection's) read the transposes.
    prepared = _prepare(w, dtype, transposed=B >= 4, cat=unpacked)
    half = dtype.type(0.5)
    flags = (cache.mask, cache.carry_output, cache.reverse)
    saved = (cache.c_t, cache.gates_t, cache.tanh_c)  # what forward_rows kept
    grads = (dh, dc, dz, dx, d_proj, d_shown, d_hx)

    def rows(r0: int, r1: int) -> None:
        nk.backward_rows(d_out, prepared, packed_t, *flags, *saved, *grads, r0, r1, half)

    # The weight gradients sum over time: one large product over all T·B rows, its rows split
    # over our threads like the batch was.
    dz_flat = dz.reshape(T * B, 4 * H)
    hx_flat = (hx[2:] if cache.reverse else hx[:T]).reshape(T * B, H_out + I)
    dw = np.empty((4 * H, H_out + I), dtype)
    d_hr = None if not P else np.empty((P, H), dtype)

    def weight_grads(j0: int, j1: int) -> None:  # rows [j0, j1) of dW; then of dW_hr
        np.matmul(dz_flat[:, j0:j1].T, hx_flat, out=dw[j0:j1])
        if d_hr is not None and j0 < P:
            rows = slice(j0, min(j1, P))
            shown = cache.shown.reshape(T * B, H)
            np.matmul(d_proj.reshape(T * B, P)[:, rows].T, shown, out=d_hr[rows])

    def finish() -> SequenceGrads:
        db = dz_flat.sum(axis=0) if w.bias_ih is not None else None
        dweights = LSTMWeights(
            weight_ih=np.ascontiguousarray(dw[:, H_out:]),
            weight_hh=np.ascontiguousarray(dw[:, :H_out]),
            bias_ih=db,
            bias_hh=None if db is None else db.copy(),
            weight_hr=d_hr,
        )
        spares.give(dz, d_proj, d_shown, d_hx)
        return SequenceGrads(dx, dh, dc, dweights)

    n = len(cache.chunks)
    dw_rows = list(pairwise(k * 4 * H // n for k in range(n + 1)))
    return _Work(rows, cache.chunks), _Work(weight_grads, dw_rows), finish
