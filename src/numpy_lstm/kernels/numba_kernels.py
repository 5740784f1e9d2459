"""The compiled loops of the fast path (numba): a whole sequence per call, no Python per step.

Each kernel runs every time step for the batch rows [r0, r1) only, so that the Python driver
(:mod:`numpy_lstm.kernels.numba_driver`) can hand disjoint row ranges to threads: rows of a batch
never interact, so the threads need no synchronisation for the whole sequence (`nogil=True`).

Per step, the input and the recurrent products are one product with the weights side by side,
z = [h, x]·[W_hh, W_ih]ᵀ + b: no BLAS call (whose own threads would compete with ours), K = H + I
(longer dot products run faster), and the backward gets [dh, dx] = dz·[W_hh, W_ih] the same way.
A one-row forward is the exception: it forms x·W_ihᵀ + b of all steps first (`hoisted`), and
with large weights splits its units, not rows, over threads (:mod:`numpy_lstm.kernels.unit_split`).

Time-major arrays, indexed by *time* t, also for the reverse direction (which only walks t
backwards):

    hx      (T+2, B, H_out+I)  hx[t+1, :, :H_out] = the state h after step t. The state before
                               step t is in row t forwards and in row t+2 in reverse (so row 0,
                               resp. T+1, holds h0), and x_t sits next to it in that row
    c       (T+2, B, H)        the memory, laid out like h
    gates   (T, B, 4H)         i, f, g, o after their activations
    tanh_c  (T, B, H)          tanh(c) after step t
    shown   (T, B, H)          o·tanh(c) before the projection (zero-sized without projection)
    mask    (T, B) bool        True = valid step (zero-sized without a mask)

Absent arrays are passed zero-sized rather than None so that each dtype compiles once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from . import simd
from .disk_cache import cached_jit

# No `nnan`/`ninf`: the math must stay IEEE-correct for large |z|. `reassoc` lets LLVM vectorise
# the dot-product reductions, `contract` fuses multiply-adds.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
jit = cached_jit(nogil=True, fastmath=FASTMATH, error_model="numpy")  # the kernels' options


def tanh(x: float) -> float:
    """tanh inside the kernels (this body runs only uncompiled; numba compiles the overload)."""
    return np.tanh(x)


def _tanh_float32(x):  # no annotations: numba requires the overload's exact signature
    # A [13/6] rational minimax fit (Eigen's `ptanh_float`): max error 2.6e-7 over all floats
    # (≈ 2 ulp), and — unlike libm's tanhf — plain arithmetic that LLVM vectorises.
    x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@overload(tanh, jit_options=dict(fastmath=FASTMATH))
def _tanh_overload(x):  # numba's protocol: called with x's numba type, returns the impl
    if x == types.float32:
        return _tanh_float32
    return lambda x: np.tanh(x)  # float64: libm's, exact to ~1 ulp (gradient checks need it)


# -- the matrix products -------------------------------------------------------------------


@jit
def matmul(
    a: np.ndarray,
    b_nk: np.ndarray,
    b_kn: np.ndarray,
    out: np.ndarray,
    r0: int,
    r1: int,
) -> None:
    """out[r0:r1, :N] += a[r0:r1, :K] @ bᵀ for b (N, K) given in both layouts, b_nk (N, K) and
    b_kn (K, N), either zero-sized when its case cannot occur; a and out may be wider.

    Blocks of four rows use dot products over K with 4×4 accumulators held in registers (LLVM
    vectorises the K loop): each loaded a and b value feeds four multiply-adds. On these short,
    wide per-step products that runs at 65–80 GFLOP/s on one Zen 4 core, on a par with
    OpenBLAS's sgemm (which packs b again on every call); the 16 horizontal sums per block are
    what keeps it from a packed outer-product kernel, whose accumulators are vectors along N —
    which plain numba loops cannot express (LLVM cannot prove that `out` does not alias the
    inputs), :mod:`numpy_lstm.kernels.simd` can with vector intrinsics: float32 on AVX2 and
    AVX-512 CPUs uses it, this kernel serves float64 and the generic path. Left-over rows (all
    of them when B < 4) are a vector-matrix product, done as rank-4 updates of the output row
    along N: for one row, bound by reading b from L2, that beats dot products by ~20%.
    """
    N, K = b_nk.shape if b_nk.size else b_kn.shape[::-1]
    n4 = N - N % 4
    m = r0
    while m + 4 <= r1:
        a0, a1, a2, a3 = a[m], a[m + 1], a[m + 2], a[m + 3]
        o0, o1, o2, o3 = out[m], out[m + 1], out[m + 2], out[m + 3]
        for j in range(0, n4, 4):
            w0, w1, w2, w3 = b_nk[j], b_nk[j + 1], b_nk[j + 2], b_nk[j + 3]
            # Start from k = 0 rather than 0.0 so the accumulators keep a's dtype.
            s00, s01, s02, s03 = a0[0] * w0[0], a0[0] * w1[0], a0[0] * w2[0], a0[0] * w3[0]
            s10, s11, s12, s13 = a1[0] * w0[0], a1[0] * w1[0], a1[0] * w2[0], a1[0] * w3[0]
            s20, s21, s22, s23 = a2[0] * w0[0], a2[0] * w1[0], a2[0] * w2[0], a2[0] * w3[0]
            s30, s31, s32, s33 = a3[0] * w0[0], a3[0] * w1[0], a3[0] * w2[0], a3[0] * w3[0]
            for k in range(1, K):
                v0, v1, v2, v3 = w0[k], w1[k], w2[k], w3[k]
                u = a0[k]
                s00 += u * v0
                s01 += u * v1
                s02 += u * v2
                s03 += u * v3
                u = a1[k]
                s10 += u * v0
                s11 += u * v1
                s12 += u * v2
                s13 += u * v3
                u = a2[k]
                s20 += u * v0
                s21 += u * v1
                s22 += u * v2
                s23 += u * v3
                u = a3[k]
                s30 += u * v0
                s31 += u * v1
                s32 += u * v2
                s33 += u * v3
            o0[j] += s00
            o0[j + 1] += s01
            o0[j + 2] += s02
            o0[j + 3] += s03
            o1[j] += s10
            o1[j + 1] += s11
            o1[j + 2] += s12
            o1[j + 3] += s13
            o2[j] += s20
            o2[j + 1] += s21
            o2[j + 2] += s22
            o2[j + 3] += s23
            o3[j] += s30
            o3[j + 1] += s31
            o3[j + 2] += s32
            o3[j + 3] += s33
        for j in range(n4, N):
            w = b_nk[j]
            for r in range(4):
                row = a[m + r]
                s = row[0] * w[0]
                for k in range(1, K):
                    s += row[k] * w[k]
                out[m + r, j] += s
        m += 4
    for row in range(m, r1):
        _vector_matrix(a[row], b_kn, out[row])


@jit
def _vector_matrix(a: np.ndarray, b_kn: np.ndarray, out: np.ndarray) -> None:
    """out[:N] += a[:K] @ b_kn for b_kn (K, N): four rows of b per pass over out."""
    K, N = b_kn.shape
    k4 = K - K % 4
    for k in range(0, k4, 4):
        u0, u1, u2, u3 = a[k], a[k + 1], a[k + 2], a[k + 3]
        w0, w1, w2, w3 = b_kn[k], b_kn[k + 1], b_kn[k + 2], b_kn[k + 3]
        for j in range(N):
            out[j] += u0 * w0[j] + u1 * w1[j] + u2 * w2[j] + u3 * w3[j]
    for k in range(k4, K):
        u, w = a[k], b_kn[k]
        for j in range(N):
            out[j] += u * w[j]


# -- forward and backward through time ---------------------------------------------------------


class Weights(NamedTuple):
    """One layer-direction's parameters as the kernels take them, each matrix also transposed
    (`_t`, contiguous) for :func:`matmul`; zero-sized where no case needs it (w and w_t in a
    forward with packed weights)."""

    w: np.ndarray  # (4H, H_out + I): [W_hh, W_ih]
    w_t: np.ndarray  # (H_out + I, 4H)
    bias: np.ndarray  # (4H,): b_ih + b_hh, zeros without bias
    w_hr: np.ndarray  # (P, H), zero-sized without projection
    w_hr_t: np.ndarray  # (H, P)


# Inlined where it is called (numba IR): a call would hide from LLVM which arrays are the same,
# and the loop would no longer vectorise (measured: the whole forward 30% slower).
@cached_jit(nogil=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def cell(
    z_i: np.ndarray,
    z_f: np.ndarray,
    z_g: np.ndarray,
    z_o: np.ndarray,
    i_out: np.ndarray,
    f_out: np.ndarray,
    g_out: np.ndarray,
    o_out: np.ndarray,
    c_prev: np.ndarray,
    c_new: np.ndarray,
    tanh_c: np.ndarray,
    o_tanh_c: np.ndarray,
    half: float,
) -> None:
    """One step of the cell for one row's units, from the pre-activations z_* (U,) each: the
    gates into *_out (which may be the z arrays themselves), c_new = f·c_prev + i·g, tanh_c
    = tanh(c_new), o_tanh_c = o·tanh(c_new). Arguments are slices indexed from 0: numba then
    knows no index is negative (no wrap-around test per element), which is what lets LLVM
    vectorise the loop."""
    for j in range(z_i.shape[0]):
        # σ(z) = ½·tanh(z/2) + ½: one transcendental for all four gates.
        i = half * tanh(half * z_i[j]) + half
        f = half * tanh(half * z_f[j]) + half
        g = tanh(z_g[j])
        o = half * tanh(half * z_o[j]) + half
        cj = f * c_prev[j] + i * g
        tcj = tanh(cj)
        i_out[j], f_out[j], g_out[j], o_out[j] = i, f, g, o
        c_new[j], tanh_c[j], o_tanh_c[j] = cj, tcj, o * tcj


@jit
def forward_rows(
    w: Weights,
    packed: simd.Packed,
    mask: np.ndarray,
    carry_output: bool,
    reverse: bool,
    hx: np.ndarray,
    c: np.ndarray,
    gates: np.ndarray,
    tanh_c: np.ndarray,
    shown: np.ndarray,
    out: np.ndarray,
    r0: int,
    r1: int,
    half: float,
    hoisted: bool,
) -> None:
    """Run the whole sequence for rows [r0, r1). On entry hx holds h0 and every x_t, c holds c0;
    writes the states into hx and c, and gates, tanh_c, shown and out (T, B, H_out), the layer's
    output. `half` is 0.5 in the dtype (a literal would be float64 and upcast the math).

    `packed`: [W_hh, W_ih] and the bias packed for a SIMD micro-kernel (float32 only; its
    type picks the kernel at compile time), or :data:`simd.UNPACKED` for :func:`matmul` on w.w.
    `hoisted`: gates already holds every step's x_t·W_ihᵀ + b, and `packed` is W_hh alone
    (with a zero bias), whose product h·W_hhᵀ each step adds to them in place.
    """
    T, H, H_out = gates.shape[0], c.shape[2], out.shape[2]
    has_mask, project = mask.shape[0] > 0, w.w_hr.shape[0] > 0
    scratch = np.empty((simd.SCRATCH_ROWS, simd.SCRATCH_COLUMNS), gates.dtype)
    for s in range(T):
        t = T - 1 - s if reverse else s
        before = t + 2 if reverse else t
        z = gates[t]
        if hoisted:
            for b in range(r0, r1):
                simd.packed_add_row_product(packed, hx[before], z, b, scratch)
        elif not simd.packed_product(packed, hx[before], z, r0, r1, scratch):
            for b in range(r0, r1):
                z[b] = w.bias
            matmul(hx[before], w.w, w.w_t, z, r0, r1)
        for b in range(r0, r1):
            if has_mask and not mask[t, b]:
                continue
            o_tanh_c = shown[t, b] if project else hx[t + 1, b][:H]
            zb = z[b]  # the gates overwrite their pre-activations
            z_i, z_f, z_g, z_o = zb[:H], zb[H : 2 * H], zb[2 * H : 3 * H], zb[3 * H :]
            c_prev, c_new, tc = c[before, b], c[t + 1, b], tanh_c[t, b]
            cell(z_i, z_f, z_g, z_o, z_i, z_f, z_g, z_o, c_prev, c_new, tc, o_tanh_c, half)
        if project:
            for b in range(r0, r1):
                hx[t + 1, b][:H_out] = 0
            matmul(shown[t], w.w_hr, w.w_hr_t, hx[t + 1], r0, r1)
        for b in range(r0, r1):
            h_new = hx[t + 1, b][:H_out]
            if has_mask and not mask[t, b]:  # carry the state; the output is 0 or the carried h
                h_new[:] = hx[before, b][:H_out]
                c[t + 1, b] = c[before, b]
                if project:
                    shown[t, b] = 0  # dW_hr's product must not see stale memory here
                if carry_output:
                    out[t, b] = h_new
                else:
                    out[t, b] = 0
            else:
                out[t, b] = h_new


@jit
def backward_rows(
    d_out: np.ndarray,
    w: Weights,
    packed_t: simd.Packed,
    mask: np.ndarray,
    carry_output: bool,
    reverse: bool,
    c: np.ndarray,
    gates: np.ndarray,
    tanh_c: np.ndarray,
    dh: np.ndarray,
    dc: np.ndarray,
    dz: np.ndarray,
    dx: np.ndarray,
    d_proj: np.ndarray,
    d_shown: np.ndarray,
    d_hx: np.ndarray,
    r0: int,
    r1: int,
    half: float,
) -> None:
    """Backpropagation through time for rows [r0, r1) of :func:`forward_rows`.

    d_out (T, B, H_out) or zero-sized; dh (B, H_out), dc (B, H): in, the gradients w.r.t. the
    final state; out, w.r.t. the initial state. Writes dz (T, B, 4H), the gradient w.r.t. the
    pre-activations (zero at masked steps), dx (T, B, I), and with a projection d_proj
    (T, B, P), the gradient w.r.t. each step's projected h. d_shown (B, H) and
    d_hx (B, H_out + I) are scratch. The weight gradients sum over all steps: the driver forms
    them from dz with one large product. `packed_t`: [W_hh, W_ih]ᵀ packed for a SIMD
    micro-kernel with a zero bias (float32), or :data:`simd.UNPACKED` for :func:`matmul`.
    """
    T, H, H_out = gates.shape[0], c.shape[2], dh.shape[1]
    has_mask, has_d_out, project = mask.shape[0] > 0, d_out.shape[0] > 0, w.w_hr.shape[0] > 0
    one = half + half
    scratch = np.empty((simd.SCRATCH_ROWS, simd.SCRATCH_COLUMNS), gates.dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        for b in range(r0, r1):
            valid = not has_mask or mask[t, b]
            if has_d_out and (valid or carry_output):
                dh[b] += d_out[t, b]
            if project:
                if valid:
                    d_proj[t, b] = dh[b]
                else:
                    d_proj[t, b] = 0
        if project:
            d_shown[r0:r1] = 0
            matmul(dh, w.w_hr_t, w.w_hr, d_shown, r0, r1)  # through h = shown·W_hrᵀ
        d_o_tanh_c = d_shown if project else dh
        dzt = dz[t]
        for b in range(r0, r1):
            if has_mask and not mask[t, b]:
                dzt[b] = 0  # a carried step: dh and dc pass through unchanged
                continue
            gb, dzb, tc, dsh, dcb = gates[t, b], dzt[b], tanh_c[t, b], d_o_tanh_c[b], dc[b]
            c_prev = c[t + 2, b] if reverse else c[t, b]
            g_i, g_f, g_g, g_o = gb[:H], gb[H : 2 * H], gb[2 * H : 3 * H], gb[3 * H :]
            dz_i, dz_f, dz_g, dz_o = dzb[:H], dzb[H : 2 * H], dzb[2 * H : 3 * H], dzb[3 * H :]
            for j in range(H):
                i, f, g, o, tcj = g_i[j], g_f[j], g_g[j], g_o[j], tc[j]
                dcj = dcb[j] + dsh[j] * o * (one - tcj * tcj)  # h = o·tanh(c): c's second path
                dz_i[j] = dcj * g * i * (one - i)
                dz_f[j] = dcj * c_prev[j] * f * (one - f)
                dz_g[j] = dcj * i * (one - g * g)
                dz_o[j] = dsh[j] * tcj * o * (one - o)
                dcb[j] = dcj * f  # the memory highway, scaled only by the Eraser
        # [dh, dx] = dz·[W_hh, W_ih]
        if not simd.packed_product(packed_t, dzt, d_hx, r0, r1, scratch):
            d_hx[r0:r1] = 0
            matmul(dzt, w.w_t, w.w, d_hx, r0, r1)
        for b in range(r0, r1):
            if has_mask and not mask[t, b]:
                dx[t, b] = 0
            else:
                dh[b] = d_hx[b][:H_out]
                dx[t, b] = d_hx[b][H_out:]
