"""The compiled fast path (numpy_lstm.kernels) computes what the pure-NumPy reference computes.

Oracle: the reference path itself (numpy_lstm.core.sequence), run through the same LSTM layer with
`kernels.use_fast(False)` — which the rest of the suite holds to torch and finite differences.
Also: the dispatch picks the fast path exactly when it should, and without numba (or with it
switched off) everything still works and gives the same numbers.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy_lstm
from conftest import TOLERANCE
from numpy_lstm import kernels
from numpy_lstm.core.cell import LSTMWeights
from numpy_lstm.core.options import SequenceOptions
from numpy_lstm.core.sequence import lstm_backward, lstm_forward

numba = pytest.importorskip("numba", reason="the fast path needs numba (the `fast` extra)")
from numpy_lstm.kernels import numba_driver as fast_sequence  # noqa: E402 — needs numba

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

T, I, H = 6, 3, 5
MASKS = {  # (B=5, T=6), True = valid: right-padded, and gaps at the start, middle and end
    "lengths": np.arange(T) < np.array([6, 1, 4, 6, 3])[:, None],
    "mid": np.array(
        [
            [1, 0, 0, 1, 1, 0],
            [0, 1, 0, 1, 0, 1],
            [1, 1, 1, 1, 1, 1],
            [0, 0, 1, 0, 0, 0],
            [1, 1, 0, 0, 1, 1],
        ],
        dtype=bool,
    ),
}


def run_layer(lstm: numpy_lstm.LSTM, x, hx, d_out, d_state, mask=None):
    """Forward and backward; every result and gradient by name."""
    lstm.zero_grad()
    out, (h_n, c_n) = lstm(x, hx, mask=mask)
    dx, (dh0, dc0) = lstm.backward(d_out, d_state)
    results = dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0)
    return results | {f"grad {k}": v.copy() for k, v in lstm.grads.items()}


def assert_same(fast: dict, reference: dict, dtype: type) -> None:
    assert fast.keys() == reference.keys()
    for name, value in reference.items():
        assert fast[name].dtype == dtype, f"{name}: dtype {fast[name].dtype}"
        np.testing.assert_allclose(fast[name], value, **TOLERANCE[dtype], err_msg=name)


@contextmanager
def kernel_paths() -> Iterator[set[str]]:
    """The kernel paths ("fast", "reference") that the layer-directions run inside the block
    took, read from the public tally `kernels.counts`."""
    before = kernels.counts.copy()
    ran: set[str] = set()
    yield ran
    ran.update(kernels.counts - before)


def fast_and_reference(lstm: numpy_lstm.LSTM, *args, **kwargs) -> tuple[dict, dict]:
    with kernel_paths() as ran:
        fast = run_layer(lstm, *args, **kwargs)
    assert ran == {"fast"}
    with kernels.use_fast(False), kernel_paths() as ran:
        reference = run_layer(lstm, *args, **kwargs)
    assert ran == {"reference"}
    return fast, reference


OPTIONS = list(
    itertools.product(
        [np.float32, np.float64],  # dtype
        [1, 2],  # num_layers
        [False, True],  # bidirectional
        [0, 2],  # proj_size
        [False, True],  # batch_first
        [None, "lengths", "mid", "mid+carry"],  # masking
    )
)


@pytest.mark.parametrize(
    ("dtype", "num_layers", "bidirectional", "proj_size", "batch_first", "masking"),
    OPTIONS,
    ids=["-".join(str(getattr(v, "__name__", v)) for v in o) for o in OPTIONS],
)
def test_fast_equals_reference_through_the_layer(
    rng, dtype, num_layers, bidirectional, proj_size, batch_first, masking
) -> None:
    B = 5  # one 4-row block and one row on the vector path
    lstm = numpy_lstm.LSTM(
        I,
        H,
        num_layers,
        bidirectional=bidirectional,
        proj_size=proj_size,
        batch_first=batch_first,
        dtype=dtype,
        rng=0,
        mask_output="carry" if masking == "mid+carry" else "zero",
    )
    mask = None if masking is None else MASKS[masking.split("+")[0]]
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    if mask is not None:  # padding may hold anything: it must not reach the math
        x[(~mask if batch_first else ~mask.T)] = np.nan
    D = 2 if bidirectional else 1
    out_size = D * (proj_size or H)
    hx = tuple(
        rng.standard_normal((D * num_layers, B, size)).astype(dtype) for size in (proj_size or H, H)
    )
    d_out = rng.standard_normal((*x.shape[:2], out_size)).astype(dtype)
    d_state = tuple(rng.standard_normal(s.shape).astype(dtype) for s in hx)
    fast, reference = fast_and_reference(lstm, x, hx, d_out, d_state, mask=mask)
    assert_same(fast, reference, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unbatched_and_missing_upstream_gradients(rng, dtype) -> None:
    lstm = numpy_lstm.LSTM(I, H, 2, bidirectional=True, dtype=dtype, rng=1)
    x = rng.standard_normal((T, I)).astype(dtype)
    fast, reference = fast_and_reference(lstm, x, None, None, (None, np.ones((4, H), dtype)))
    assert_same(fast, reference, dtype)


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 7),
    B=st.integers(1, 13),
    I=st.integers(1, 6),
    H=st.integers(1, 9),
    P=st.integers(0, 3),
    reverse=st.booleans(),
    carry_output=st.booleans(),
    masked=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_sequence_kernels_on_random_shapes(
    T, B, I, H, P, reverse, carry_output, masked, bias, seed, dtype
) -> None:
    """The kernel pair alone, on any shape: B not a multiple of 4, H = 1, T = 1, I = 1, …"""
    rng = np.random.default_rng(seed)
    P = P if P < H else 0
    H_out = P or H

    def draw(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    w = LSTMWeights(
        draw(4 * H, I),
        draw(4 * H, H_out) / np.sqrt(H_out),
        draw(4 * H) if bias else None,
        draw(4 * H) if bias else None,
        draw(P, H) / np.sqrt(H) if P else None,
    )
    x, h0, c0 = draw(T, B, I), draw(B, H_out), draw(B, H)
    mask = rng.random((T, B)) < 0.7 if masked else None
    options = SequenceOptions(mask=mask, reverse=reverse, carry_output=carry_output)
    d_out, dh_n, dc_n = draw(T, B, H_out), draw(B, H_out), draw(B, H)

    *ref_out, ref_cache = lstm_forward(x, h0, c0, w, options)
    ref_grads = lstm_backward(d_out, dh_n, dc_n, ref_cache)
    *fast_out, fast_cache = kernels.sequence_forward(x, h0, c0, w, options)
    fast_grads = kernels.sequence_backward(d_out, dh_n, dc_n, fast_cache)

    assert isinstance(fast_cache, fast_sequence.FastCache)
    tolerance = TOLERANCE[dtype]
    for name, a, b in zip(("out", "h_n", "c_n"), fast_out, ref_out, strict=True):
        np.testing.assert_allclose(a, b, **tolerance, err_msg=name)
    np.testing.assert_allclose(fast_cache.h, ref_cache.h, **tolerance, err_msg="cache.h")
    np.testing.assert_allclose(fast_cache.c, ref_cache.c, **tolerance, err_msg="cache.c")
    for name in ("dx", "dh0", "dc0"):
        a, b = getattr(fast_grads, name), getattr(ref_grads, name)
        np.testing.assert_allclose(a, b, **tolerance, err_msg=name)
    for name in LSTMWeights._fields:
        a, b = getattr(fast_grads.dweights, name), getattr(ref_grads.dweights, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, **tolerance, err_msg=f"d{name}")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_one_long_row_with_nan_padding_equals_the_reference(rng, bidirectional) -> None:
    # One row of ≥ HOIST_MIN_STEPS steps: its input products all run before the loop.
    steps, valid = fast_sequence.HOIST_MIN_STEPS + 4, fast_sequence.HOIST_MIN_STEPS + 1
    lstm = numpy_lstm.LSTM(
        I, H, 2, bidirectional=bidirectional, proj_size=2, dtype=np.float32, rng=4
    )
    mask = np.arange(steps)[None] < valid  # (B = 1, T)
    x = rng.standard_normal((steps, 1, I)).astype(np.float32)
    x[valid:] = np.nan  # padding may hold anything: it must not reach the math
    d_out = rng.standard_normal((steps, 1, 2 * (1 + bidirectional))).astype(np.float32)
    fast, reference = fast_and_reference(lstm, x, None, d_out, None, mask=mask)
    assert_same(fast, reference, np.float32)


@pytest.mark.parametrize("proj_size", [0, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_split_over_threads_give_the_same_numbers(rng, dtype, proj_size, monkeypatch) -> None:
    lstm = numpy_lstm.LSTM(I, 8, bidirectional=True, proj_size=proj_size, dtype=dtype, rng=2)
    B, out_size = 14, 2 * (proj_size or 8)  # three threads: rows [0, 4), [4, 8), [8, 14)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    d_out = rng.standard_normal((T, B, out_size)).astype(dtype)
    mask = rng.random((B, T)) < 0.8
    mask[:, 0] = True
    single = run_layer(lstm, x, None, d_out, None, mask=mask)
    monkeypatch.setattr(fast_sequence, "MIN_WORK_PER_THREAD", 1)
    # six threads: the two directions side by side, three threads each
    previous = numpy_lstm.kernels.set_num_threads(6)
    try:
        assert fast_sequence.row_chunks(B, 1, threads=3) == [(0, 4), (4, 8), (8, 14)]
        split = run_layer(lstm, x, None, d_out, None, mask=mask)
    finally:
        numpy_lstm.kernels.set_num_threads(previous)
    # Private on purpose: how the rows were split is nowhere public, and without this look a
    # layer that quietly ran on one thread would pass.
    assert [cache.chunks for cache in lstm._cache.caches] == [[(0, 4), (4, 8), (8, 14)]] * 2
    assert_same(split, single, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_directions_on_two_threads_run_side_by_side_each_with_all_rows(
    rng, dtype, monkeypatch
) -> None:
    B = 16
    x = rng.standard_normal((T, B, I)).astype(dtype)
    d_out = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    lstm = numpy_lstm.LSTM(I, H, 2, bidirectional=True, dtype=dtype, rng=3)
    with kernels.use_fast(False):
        reference = run_layer(lstm, x, None, d_out, None)
    monkeypatch.setattr(fast_sequence, "MIN_WORK_PER_THREAD", 1)
    previous = numpy_lstm.kernels.set_num_threads(2)
    try:
        side_by_side = run_layer(lstm, x, None, d_out, None)
        one_way = numpy_lstm.LSTM(I, H, 2, dtype=dtype, rng=3)
        one_way(x)
    finally:
        numpy_lstm.kernels.set_num_threads(previous)
    # Private on purpose (see above): one direction alone splits its rows over both threads;
    # side by side, each direction keeps all its rows on one thread.
    assert [cache.chunks for cache in one_way._cache.caches] == [[(0, 8), (8, 16)]] * 2
    assert [cache.chunks for cache in lstm._cache.caches] == [[(0, 16)]] * 4
    assert_same(side_by_side, reference, dtype)


def test_spare_buffers_are_reused_and_never_alias_results(rng) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float32, rng=5)
    x = rng.standard_normal((T, 4, I)).astype(np.float32)
    first, _ = lstm(x)
    kept = first.copy()
    # Private on purpose: the cache's gate buffer is what a recycled buffer could overwrite,
    # and no public call hands it out.
    gates = lstm._cache.caches[0].gates
    gates_kept = gates.copy()
    for _ in range(3):  # old caches die and their buffers come back for the new calls
        out, _ = lstm(2 * x)
        lstm.backward(np.ones_like(out))
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(gates, gates_kept)
    spares = fast_sequence.Spares(max_bytes=3 * fast_sequence.SMALL_BYTES)
    a = np.ones(fast_sequence.SMALL_BYTES // 2, np.float32)  # 2 × SMALL_BYTES
    spares.give(a, np.ones(a.size, np.float32))  # the second is over the budget
    assert spares.take(a.shape, np.dtype(np.float32)) is a
    assert spares.take(a.shape, np.dtype(np.float32)) is not a
    tiny = np.ones(4, np.float32)  # a new one costs less than keeping it
    spares.give(tiny)
    assert spares.take(tiny.shape, np.dtype(np.float32)) is not tiny


@pytest.mark.parametrize(
    "config",
    [
        dict(peephole=True),
        dict(layer_norm=True),
        dict(clip=1.5),
        dict(coupled_input_forget=True),
        dict(activations=("hard_sigmoid", "tanh", "tanh")),
        dict(zoneout=0.2),
        dict(recurrent_dropout=0.3),
    ],
    ids=lambda c: next(iter(c)),
)
def test_options_the_fast_path_lacks_run_the_reference(rng, config) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=3, **config)
    x = rng.standard_normal((T, 2, I))
    before = kernels.counts["reference"]
    with kernel_paths() as ran:
        out, _ = lstm(x)
        lstm.backward(np.ones_like(out))
    assert ran == {"reference"}
    assert kernels.counts["reference"] == before + 1


def test_the_switch_and_its_context_manager(rng) -> None:
    assert kernels.fast_enabled()
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float32, rng=4)
    x = rng.standard_normal((T, 2, I)).astype(np.float32)
    fast_calls = kernels.counts["fast"]
    lstm(x)
    assert kernels.counts["fast"] == fast_calls + 1
    with kernels.use_fast(False), kernel_paths() as ran:
        assert not kernels.fast_enabled()
        lstm(x)
    assert ran == {"reference"}
    assert kernels.fast_enabled()
    kernels.use_fast(False)
    try:
        assert not kernels.fast_enabled()
    finally:
        kernels.use_fast(True)
    with kernel_paths() as ran:
        lstm(x)
    assert ran == {"fast"}


def test_thread_limit_is_checked() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        numpy_lstm.kernels.set_num_threads(0)


# -- without numba -----------------------------------------------------------------------------

# Runs in a fresh interpreter: a forward and backward, saved for comparison.
PROGRAM = """
import sys
{block}
import numpy as np
import numpy_lstm
from numpy_lstm import kernels
assert sys.modules.get("numba") is None, "importing numpy_lstm must not import numba"
rng = np.random.default_rng(0)
lstm = numpy_lstm.LSTM(3, 5, 2, bidirectional=True, dtype=np.float64, rng=0)
x = rng.standard_normal((6, 4, 3))
out, (h_n, c_n) = lstm(x, lengths=np.array([6, 2, 5, 1]))
dx, _ = lstm.backward(np.ones_like(out))
np.savez(sys.argv[1], out=out, dx=dx, dw=lstm.grads["weight_hh_l1_reverse"])
print(json.dumps(dict(kernels.counts)))
"""


def run_program(tmp_path: Path, block: str, env: dict[str, str] | None = None) -> tuple:
    code = "import json\n" + PROGRAM.format(block=block)
    path = tmp_path / "result.npz"
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), dict(np.load(path))


def test_without_numba_the_reference_runs_and_agrees(tmp_path: Path) -> None:
    blocked = "sys.modules['numba'] = None  # as if numba were not installed"
    counts, without = run_program(tmp_path, textwrap.dedent(blocked))
    assert counts == {"reference": 4}
    counts, default = run_program(tmp_path, "")
    assert counts == {"fast": 4}
    for name in without:
        np.testing.assert_allclose(default[name], without[name], **TOLERANCE[np.float64])


def test_environment_variable_turns_the_fast_path_off(tmp_path: Path) -> None:
    counts, _ = run_program(tmp_path, "", env={"NUMPY_LSTM_FAST": "0"})
    assert counts == {"reference": 4}


def test_recording_runs_the_reference_and_a_fast_cache_cannot_record(rng) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=6)
    x = rng.standard_normal((T, 2, I))
    with kernel_paths() as ran:
        out, _ = lstm(x, record=True)  # traces keep per-step values: the reference path
    assert ran == {"reference"}
    lstm.backward_pass(np.ones_like(out), None, record=True)
    out, _ = lstm(x)
    with pytest.raises(ValueError, match="record"):
        lstm.backward_pass(np.ones_like(out), None, record=True)
