"""The SIMD micro-kernels (numpy_lstm.kernels.simd) and the dispatch between them.

Oracles: NumPy's float64 matmul for the per-step product; the pure-NumPy reference
(numpy_lstm.core.sequence, which the rest of the suite holds to torch and finite differences) for
whole forward and backward passes. LLVM splits vectors wider than the host has into legal ones,
so both blockings (16- and 8-wide) are checked on any x86-64 host; the environment variable
NUMPY_LSTM_ISA may only pick what the CPU has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TOLERANCE
from numpy_lstm import kernels
from numpy_lstm.core.cell import LSTMWeights
from numpy_lstm.core.options import SequenceOptions
from numpy_lstm.core.sequence import lstm_backward, lstm_forward

pytest.importorskip("numba", reason="the fast path needs numba (the `fast` extra)")
from numpy_lstm.kernels import numba_driver, prepared, simd

FP32 = TOLERANCE[np.float32]
PATHS = ["avx512", "avx2", "generic"]


# -- the product --------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize(
    ("B", "N", "K", "r0", "r1"),
    [
        (1, 20, 7, 0, 1),  # one row, one partial panel
        (3, 33, 5, 0, 3),  # fewer rows than a block; 33 = 32 + 1 columns
        (13, 64, 17, 0, 13),  # a block and a partial one; whole panels only
        (33, 100, 40, 0, 33),  # blocks of 8 and of 6 both leave a remainder
        (33, 100, 40, 4, 29),  # a thread's row range: the others untouched
        (8, 32, 1, 0, 8),  # K = 1
        (16, 1, 9, 0, 16),  # N = 1
    ],
)
def test_product_equals_float64_matmul(rng, isa, B, N, K, r0, r1) -> None:
    a = rng.standard_normal((B, K)).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    expected = a[r0:r1].astype(np.float64) @ w.T.astype(np.float64) + bias
    scratch = np.empty(simd.SCRATCH_SHAPE, np.float32)
    split = K // 2  # packed from two blocks side by side, as [W_hh, W_ih] is
    w_t = w.T.copy()  # the backward's case: Wᵀ given, (K, N) = [W_hh, W_ih]
    for packed in (
        simd.pack_for(isa, [w[:, :split], w[:, split:]], bias),
        simd.pack_for(isa, [w_t[:, : N // 3], w_t[:, N // 3 :]], bias, transposed=True),
    ):
        out = np.full((B, N), np.nan, np.float32)
        simd.product(packed, a, out, r0, r1, scratch)
        np.testing.assert_allclose(out[r0:r1], expected, **FP32)
        assert np.isnan(out[:r0]).all() and np.isnan(out[r1:]).all()


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize(("N", "K"), [(20, 7), (64, 17), (100, 40)])  # partial, whole, both
def test_a_row_product_adds_to_what_the_row_holds(rng, isa, N, K) -> None:
    # A one-row forward that formed its input products before the loop adds the state's
    # product to them: the sums start from the row's values, and the bias is not added again.
    a = rng.standard_normal((3, K)).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    start = rng.standard_normal((3, N)).astype(np.float32)
    out = start.copy()
    scratch = np.full(simd.SCRATCH_SHAPE, np.nan, np.float32)
    simd.add_row_product(simd.pack_for(isa, [w], bias), a, out, 1, scratch)
    expected = start[1].astype(np.float64) + a[1].astype(np.float64) @ w.T.astype(np.float64)
    np.testing.assert_allclose(out[1], expected, **FP32)
    np.testing.assert_array_equal(out[[0, 2]], start[[0, 2]])


@pytest.mark.parametrize("isa", ["avx512", "avx2"])
def test_packed_panels_are_aligned_and_zero_padded(rng, isa) -> None:
    N, K = 37, 6
    w = rng.standard_normal((N, K)).astype(np.float32)
    packed = simd.pack_for(isa, [w[:, :2], w[:, 2:]], np.arange(N, dtype=np.float32))
    PW = simd.BLOCKING[isa].panel_width
    assert packed.panels.shape == (-(-N // PW), K, PW)
    assert packed.panels.ctypes.data % 64 == 0
    columns = packed.panels.transpose(0, 2, 1).reshape(-1, K)  # row j: column j of Wᵀ
    np.testing.assert_array_equal(columns[:N], w)
    assert not columns[N:].any() and not packed.bias[N:].any()
    np.testing.assert_array_equal(packed.bias[:N], np.arange(N))


# -- the whole forward and backward on each path ------------------------------------------------


def random_case(rng, T, B, I, H, P, masked, dtype=np.float32):
    def draw(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    H_out = P or H
    w = LSTMWeights(
        draw(4 * H, I),
        draw(4 * H, H_out) / np.sqrt(H_out),
        draw(4 * H),
        draw(4 * H),
        draw(P, H) / np.sqrt(H) if P else None,
    )
    mask = None
    if masked:
        mask = rng.random((T, B)) < 0.7
        mask[0] = True
    return w, draw(T, B, I), draw(B, H_out), draw(B, H), mask


@pytest.mark.parametrize("isa", PATHS)
@pytest.mark.parametrize("B", [1, 3, 13, 33])
@pytest.mark.parametrize(
    ("H", "P", "reverse", "masked", "carry"),
    [
        (5, 0, False, False, False),  # 4H = 20: one partial panel
        (9, 0, True, True, False),  # 4H = 36: a whole 16- or 32-panel and a partial one
        (13, 4, False, True, True),  # projection, carried outputs
        (24, 0, True, False, False),  # 4H = 96: whole panels only
    ],
)
def test_fast_forward_on_each_path_equals_the_reference(
    rng, monkeypatch, isa, B, H, P, reverse, masked, carry
) -> None:
    monkeypatch.setattr(simd, "isa_path", lambda: isa)  # the path, as if detected
    # B = 1: the input's products before the loop (8·I ≥ H_out)
    T, I = numba_driver.HOIST_MIN_STEPS + 1, P or H
    w, x, h0, c0, mask = random_case(rng, T, B, I, H, P, masked)
    for array in w:  # read-only, as parameters are: only such weights are packed once and kept
        if array is not None:
            array.setflags(write=False)
    options = SequenceOptions(mask=mask, reverse=reverse, carry_output=carry)
    *fast, cache = kernels.sequence_forward(x, h0, c0, w, options)
    # Private on purpose: which packed weights the forward used is nowhere public, and without
    # this look a one-row forward that quietly skipped hoisting would pass.
    ids = tuple(map(id, w))
    parts = {key[2] for key in prepared._entries if key[0] == "packed" and key[-len(ids) :] == ids}
    assert parts == (
        set() if isa == "generic" else {"recurrent", "input"} if B == 1 else {"forward"}
    )
    *reference, ref_cache = lstm_forward(x, h0, c0, w, options)
    assert isinstance(cache, numba_driver.FastCache)
    for name, ours, theirs in zip(("out", "h_n", "c_n"), fast, reference, strict=True):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, **FP32, err_msg=name)
    d_out = rng.standard_normal(fast[0].shape).astype(np.float32)
    grads = kernels.sequence_backward(d_out, None, None, cache)
    ref_grads = lstm_backward(d_out, None, None, ref_cache)
    np.testing.assert_allclose(grads.dx, ref_grads.dx, **FP32, err_msg="dx")
    np.testing.assert_allclose(
        grads.dweights.weight_hh, ref_grads.dweights.weight_hh, **FP32, err_msg="dW_hh"
    )


def test_float64_keeps_the_generic_kernel(rng, monkeypatch) -> None:
    monkeypatch.setattr(simd, "isa_path", lambda: "avx2")
    w, x, h0, c0, _ = random_case(rng, 3, 5, 2, 6, 0, False, np.float64)
    assert isinstance(numba_driver._packed(w, np.dtype(np.float64)), simd.Unpacked)
    *fast, _ = kernels.sequence_forward(x, h0, c0, w)
    *reference, _ = lstm_forward(x, h0, c0, w, SequenceOptions())
    for ours, theirs in zip(fast, reference, strict=True):
        np.testing.assert_allclose(ours, theirs, **TOLERANCE[np.float64])


# -- dispatch -----------------------------------------------------------------------------------

ZEN4 = {"avx2": True, "fma": True, "avx512f": True}
HASWELL = {"avx2": True, "fma": True, "avx512f": False}
OLD = {"avx2": False, "fma": False, "avx512f": False}


def test_the_widest_path_the_cpu_has_is_chosen() -> None:
    assert simd.choose_isa(None, ZEN4) == "avx512"
    assert simd.choose_isa("", HASWELL) == "avx2"
    assert simd.choose_isa(None, OLD) == "generic"
    assert simd.choose_isa(None, {"avx2": True}) == "generic"  # AVX2 without FMA


def test_the_environment_may_pick_a_narrower_path() -> None:
    assert simd.choose_isa("avx2", ZEN4) == "avx2"
    assert simd.choose_isa("generic", ZEN4) == "generic"
    assert simd.choose_isa(" AVX512 ", ZEN4) == "avx512"


def test_unknown_or_unavailable_paths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\$NUMPY_LSTM_ISA: expected one of generic, avx2"):
        simd.choose_isa("sse9", ZEN4)
    with pytest.raises(ValueError, match="this CPU lacks it"):
        simd.choose_isa("avx512", HASWELL)
    with pytest.raises(ValueError, match="this CPU lacks it"):
        simd.choose_isa("avx2", OLD)


# Runs in a fresh interpreter, since the path is detected once per process.
PROGRAM = """
import sys
import numpy as np
import numpy_lstm
from numpy_lstm import kernels
lstm = numpy_lstm.LSTM(3, 9, proj_size=4, bidirectional=True, dtype=np.float32, rng=0)
x = np.random.default_rng(0).standard_normal((5, 13, 3)).astype(np.float32)
out, _ = lstm(x, lengths=np.arange(13) % 5 + 1)
np.save(sys.argv[1], out)
print(kernels.isa_path())
"""


def run_with_isa(tmp_path: Path, isa: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{isa}.npy"
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "NUMPY_LSTM_ISA": isa},
    )


def test_each_path_forced_by_the_environment_gives_the_same_numbers(tmp_path: Path) -> None:
    widest = simd.choose_isa(None, simd.cpu_features())
    available = simd.ISAS[: simd.ISAS.index(widest) + 1]  # generic < avx2 < avx512
    outputs = {}
    for isa in PATHS:
        done = run_with_isa(tmp_path, isa)
        if isa not in available:  # e.g. AVX-512 on an AVX2 machine: refused, not run
            assert done.returncode != 0 and "this CPU lacks it" in done.stderr
            continue
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == isa
        outputs[isa] = np.load(tmp_path / f"{isa}.npy")
    for isa, out in outputs.items():
        np.testing.assert_allclose(out, outputs["generic"], **FP32, err_msg=isa)


def test_a_bad_environment_value_is_refused(tmp_path: Path) -> None:
    done = run_with_isa(tmp_path, "sse9")
    assert done.returncode != 0
    assert "ValueError: $NUMPY_LSTM_ISA: expected one of generic, avx2, avx512" in done.stderr
    assert "'sse9'" in done.stderr


CACHED = """
import numpy as np
from numpy_lstm.kernels import simd
packed = simd.pack_for("avx2", [np.ones((20, 3), np.float32)], np.zeros(20, np.float32))
out, scratch = np.empty((2, 20), np.float32), np.empty(simd.SCRATCH_SHAPE, np.float32)
simd.product(packed, np.ones((2, 3), np.float32), out, 0, 2, scratch)
assert (out == 3).all()
print(sum(simd.product.stats.cache_hits.values()))
"""


def test_the_micro_kernels_are_cached_on_disk(tmp_path: Path) -> None:
    """`@intrinsic` code is emitted into its caller, which numba can cache: a second process
    loads the product instead of compiling it."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    hits = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", CACHED], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        assert "Cannot cache" not in done.stderr
        hits.append(int(done.stdout))
    assert hits == [0, 1]
