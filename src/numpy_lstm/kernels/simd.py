"""Register-blocked SIMD micro-kernels for the float32 per-step product (numba `@intrinsic`).

The forward's per-step product z = [h, x]·[W_hh, W_ih]ᵀ + b is short and wide (B ≤ ~64 rows,
K = H_out + I, N = 4H columns). The generic kernel (:func:`numba_kernels.matmul`) holds its sums
as scalars and ends every 4×4 block with 16 horizontal sums; here the accumulators are LLVM vector
values (SSA, so no alias analysis is needed) in an outer-product loop over K:

    for k in range(K):
        b_v   = panel[k, v·W : (v+1)·W]            NV vector loads of the packed weights
        a_r   = broadcast(a[m + r, k])              one per row of the block
        acc[r][v] = fma(a_r, b_v, acc[r][v])        MR·NV fused multiply-adds

The weights are packed into panels (NP, K, PW) — once per weights version: the driver reuses
them — PW = NV·W columns of Wᵀ each, 64-byte aligned and zero-padded past N, so each k reads PW
contiguous floats. Accumulators start from the (padded) bias — or from what the output holds
(`_block_add`: a one-row forward adds each step's recurrent product to its input products,
formed before the loop, with no pass of its own). Blocks of fewer than MR rows (the
batch's remainder, B = 1) get code of their own: one or two rows take four or two panels at a
time, and K is split into interleaved partial sums where needed, so that ≥ 8 FMA chains are in
flight to hide the FMA latency (one row of one panel would run at a quarter of the FMA rate).

Blocking per instruction set (W floats per vector, NV vectors per panel row, MR rows):
    avx512   W=16, NV=2, MR=8   16 accumulators of the 32 zmm registers, panel width 32
    avx2     W=8,  NV=2, MR=6   12 accumulators of the 16 ymm registers, panel width 16
LLVM splits vectors wider than the host's into legal ones, so every kernel computes the right
numbers on any CPU (tests run the 16-wide one on AVX2 hosts); the dispatch (:func:`isa_path`)
picks the one that is fast here. The packed weights' class (:class:`PackedAvx512`,
:class:`PackedAvx2`) selects the blocking at compile time, so a process compiles only the kernels
it uses, and all of them are cached on disk like any numba function (`@intrinsic` does not
prevent caching: the IR is emitted into the caller's module).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, cast

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .disk_cache import cached_jit

ISA_ENV = "NUMPY_LSTM_ISA"
ISAS = ("generic", "avx2", "avx512")  # each needs what the ones before it need
ALIGN = 64  # bytes: the packed panels start on a cache line (and an AVX-512 vector)


@dataclass(frozen=True)
class Blocking:
    """The register block of one instruction set: MR rows × NV vectors of W floats."""

    width: int  # W: floats per vector register
    vectors: int  # NV: vectors per panel row
    rows: int  # MR: rows of `a` per block

    @property
    def panel_width(self) -> int:
        """PW = NV·W: the columns of Wᵀ in one panel."""
        return self.width * self.vectors


BLOCKING = {"avx512": Blocking(16, 2, 8), "avx2": Blocking(8, 2, 6)}
# ≥ (MR, PW) of every blocking: where the product of a partial last panel lands
SCRATCH_ROWS, SCRATCH_COLUMNS = 8, 32
SCRATCH_SHAPE = (SCRATCH_ROWS, SCRATCH_COLUMNS)


# -- which path: detected once, overridable ---------------------------------------------------


def choose_isa(requested: str | None, features: Mapping[str, bool]) -> str:
    """The kernel path for a CPU with these LLVM feature flags: `requested` (from $NUMPY_LSTM_ISA)
    if given, else the widest the CPU has. Refuses an unknown name or one the CPU lacks."""
    available = ["generic"]
    if features.get("avx2") and features.get("fma"):
        available.append("avx2")
        if features.get("avx512f"):
            available.append("avx512")
    if requested is None or not requested.strip():
        return available[-1]
    name = requested.strip().lower()
    if name not in ISAS:
        raise ValueError(f"${ISA_ENV}: expected one of {', '.join(ISAS)}; got {requested!r}")
    if name not in available:
        raise ValueError(
            f"${ISA_ENV}={requested!r}: this CPU lacks it (it supports {', '.join(available)})"
        )
    return name


@cache
def cpu_features() -> Mapping[str, bool]:
    """The features numba compiles for: the host's, or $NUMBA_CPU_FEATURES when numba is told
    to target another CPU ($NUMBA_CPU_NAME), since a kernel must not use what the target lacks."""
    from numba.core import config

    cpu_name = getattr(config, "CPU_NAME", None)  # set by numba at import, from the environment
    if cpu_name and cpu_name != "host":
        flags = (getattr(config, "CPU_FEATURES", None) or "").split(",")
        return {f[1:]: f[0] == "+" for f in flags if f[:1] in "+-" and len(f) > 1}
    import llvmlite.binding as llvm

    return dict(llvm.get_host_cpu_features())


@cache
def isa_path() -> str:
    """The kernel path the float32 forward uses: "avx512", "avx2" or "generic" — detected once
    (see :func:`choose_isa`); $NUMPY_LSTM_ISA overrides it. A bad value raises ValueError on
    every call (failures are not cached)."""
    return choose_isa(os.environ.get(ISA_ENV), cpu_features())


def path_for(dtype: np.dtype) -> str | None:
    """The SIMD kernels' path for this dtype ("avx512", "avx2"), or None where the generic kernel
    runs (float64, or the generic path)."""
    isa = isa_path()  # asked for every dtype: a bad $NUMPY_LSTM_ISA is always refused
    return None if dtype != np.float32 or isa == "generic" else isa


# -- packing ----------------------------------------------------------------------------------


def _aligned_panels(n_panels: int, K: int, panel_width: int) -> np.ndarray:
    """An uninitialised float32 array (n_panels, K, panel_width) starting on a cache line."""
    size = n_panels * K * panel_width * 4
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + size].view(np.float32).reshape(n_panels, K, panel_width)


def pack(
    blocks: list[np.ndarray], bias: np.ndarray, panel_width: int, transposed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Wᵀ in panels for the micro-kernel, W (N, K) = [blocks side by side] — or, if
    `transposed`, W = [blocks side by side]ᵀ (the backward's [W_hh, W_ih] as is).

    blocks: one or two, (N, K_i) each, K = ΣK_i (transposed: (K, N_i), N = ΣN_i); bias: (N,).
    Returns panels (NP, K, PW), NP = ⌈N/PW⌉, panels[n, k, j] = W[n·PW + j, k], zero for
    n·PW + j ≥ N, aligned to 64 bytes; and the bias padded with zeros to NP·PW.
    """
    first, second = (*blocks, blocks[0][:, :0])[:2]
    N = first.shape[1] + second.shape[1] if transposed else first.shape[0]
    K = first.shape[0] if transposed else first.shape[1] + second.shape[1]
    n_panels = -(-N // panel_width)
    padded_bias = np.zeros(n_panels * panel_width, np.float32)
    padded_bias[:N] = bias
    panels = _aligned(n_panels * K * panel_width).reshape(n_panels, K, panel_width)
    # Compiled loops: NumPy's strided copies of 16- or 32-float runs were ~5× slower. (Panels
    # viewed in place in [W_hh, W_ih] need no transposing for the backward, but measured 35%
    # slower in the product than contiguous ones: a k step jumps a whole row.)
    (_pack_columns if transposed else _pack_rows)(first, second, panels)
    return panels, padded_bias


def _aligned(size: int) -> np.ndarray:
    """An uninitialised float32 vector of `size` starting on a cache line."""
    raw = np.empty(size * 4 + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + size * 4].view(np.float32)


@cached_jit(nogil=True)
def _pack_rows(a: np.ndarray, b: np.ndarray, panels: np.ndarray) -> None:
    """panels[n, k, j] = [a, b][n·PW + j, k] (a, b side by side), zero past the last row."""
    n_panels, K, PW = panels.shape
    N, Ka = a.shape
    for n in range(n_panels):
        for j in range(PW):
            i = n * PW + j
            if i < N:
                for k in range(Ka):
                    panels[n, k, j] = a[i, k]
                for k in range(K - Ka):
                    panels[n, Ka + k, j] = b[i, k]
            else:
                for k in range(K):
                    panels[n, k, j] = 0


@cached_jit(nogil=True, error_model="numpy")
def _pack_columns(a: np.ndarray, b: np.ndarray, panels: np.ndarray) -> None:
    """panels[n, k, j] = [a, b][k, n·PW + j] (a, b side by side), zero past the last column:
    panel n is columns [n·PW, (n+1)·PW), which take ja of a, then jb of b, then zeros."""
    n_panels, K, PW = panels.shape
    Na, N = a.shape[1], a.shape[1] + b.shape[1]
    for n in range(n_panels):
        c0 = n * PW
        ja = min(PW, max(0, Na - c0))
        jb = min(PW, max(0, N - c0)) - ja
        b0 = max(0, c0 - Na)
        for k in range(K):
            dst, from_a, from_b = panels[n, k], a[k, c0 : c0 + ja], b[k, b0 : b0 + jb]
            for j in range(ja):
                dst[j] = from_a[j]
            for j in range(jb):
                dst[ja + j] = from_b[j]
            for j in range(ja + jb, PW):
                dst[j] = 0


# -- the micro-kernel, emitted as LLVM IR -------------------------------------------------------

Body = Callable[[ir.Value, list[ir.Value]], list[ir.Value]]


def _loop(
    builder: ir.IRBuilder,
    start: ir.Value,
    keep_going: Callable[[ir.Value], ir.Value],
    step: int,
    accs: list[ir.Value],
    body: Body,
) -> tuple[ir.Value, list[ir.Value]]:
    """Emit `k = start; while keep_going(k): accs = body(k, accs); k += step` with k and the
    accumulators as phi nodes (SSA values: LLVM keeps them in registers). Returns (k, accs)
    at the exit."""
    before = builder.block
    header = builder.append_basic_block("k_loop")
    body_block = builder.append_basic_block("k_body")
    done = builder.append_basic_block("k_done")
    builder.branch(header)
    builder.position_at_end(header)
    k = builder.phi(start.type)
    k.add_incoming(start, before)
    phis = []
    for acc in accs:
        phi = builder.phi(acc.type)
        phi.add_incoming(acc, before)
        phis.append(phi)
    builder.cbranch(keep_going(k), body_block, done)
    builder.position_at_end(body_block)
    new_accs = body(k, phis)
    k_next = builder.add(k, ir.Constant(start.type, step))
    end = builder.block
    k.add_incoming(k_next, end)
    for phi, acc in zip(phis, new_accs, strict=True):
        phi.add_incoming(acc, end)
    builder.branch(header)
    builder.position_at_end(done)
    return k, phis


class _Emitter:
    """The IR of one micro-kernel call (see :func:`_block`): vector loads, broadcasts, FMAs and
    the K loop of a block of `rows` rows."""

    def __init__(self, builder: ir.IRBuilder, intp: ir.Type, blocking: Blocking) -> None:
        self.builder, self.intp, self.blocking = builder, intp, blocking
        self.row_stride: ir.Value = ir.Constant(intp, blocking.panel_width)  # floats, k to k + 1
        W = blocking.width
        self.vec = ir.VectorType(ir.FloatType(), W)
        self.undef = ir.Constant(self.vec, ir.Undefined)
        self.splat_mask = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)
        # llvmlite's builder.fma and declare_intrinsic take scalars only: declare the vector one.
        self.fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vec, [self.vec] * 3), f"llvm.fma.v{W}f32"
        )

    def const(self, value: int) -> ir.Constant:
        return ir.Constant(self.intp, value)

    def at(self, ptr: ir.Value, offset: ir.Value | int) -> ir.Value:
        """&ptr[offset] (in floats)."""
        return self.builder.gep(ptr, [self.const(offset) if isinstance(offset, int) else offset])

    def load(self, ptr: ir.Value) -> ir.Value:
        """W floats from ptr: align 4 is right for any address and as fast when aligned."""
        return self.builder.load(self.builder.bitcast(ptr, self.vec.as_pointer()), align=4)

    def store(self, value: ir.Value, ptr: ir.Value) -> None:
        self.builder.store(value, self.builder.bitcast(ptr, self.vec.as_pointer()), align=4)

    def broadcast(self, ptr: ir.Value) -> ir.Value:
        """*ptr in every lane (LLVM emits one vbroadcastss from memory)."""
        scalar = self.builder.load(ptr, align=4)
        first = self.builder.insert_element(self.undef, scalar, ir.Constant(ir.IntType(32), 0))
        return self.builder.shuffle_vector(first, self.undef, self.splat_mask)

    def step(
        self, panels: list[ir.Value], a_rows: list[ir.Value], k: ir.Value, accs: list[ir.Value]
    ) -> list[ir.Value]:
        """One k of the outer product: accs[(r·G + g)·NV + v] += a[r, k] · panels[g][k, v·W:]
        (G panels, each NV vectors wide)."""
        W, NV = self.blocking.width, self.blocking.vectors
        offset = self.builder.mul(k, self.row_stride)
        b = [self.load(self.at(self.at(p, offset), v * W)) for p in panels for v in range(NV)]
        new: list[ir.Value] = []
        for r, a_row in enumerate(a_rows):
            a_rk = self.broadcast(self.at(a_row, k))
            new.extend(
                self.builder.call(self.fma, [a_rk, b_j, accs[r * len(b) + j]])
                for j, b_j in enumerate(b)
            )
        return new

    def block(
        self,
        K: ir.Value,
        panels: list[ir.Value],
        starts: list[list[ir.Value]],
        a_rows: list[ir.Value],
    ) -> list[ir.Value]:
        """starts + a_rows @ panels: the accumulators (row by row, panel by panel, NV vectors
        each) after K steps, begun from starts[r][g] (PW floats for row r and panel g)."""
        builder, const = self.builder, self.const
        W, NV, MR = self.blocking.width, self.blocking.vectors, self.blocking.rows
        size = len(a_rows) * len(panels) * NV  # accumulators of one partial sum
        # Few rows, few FMA chains: split K over `split` interleaved partial sums so that ≥ 8
        # independent FMAs are in flight (latency 4 cycles, 2 issued a cycle), in registers.
        split = max(1, min(4, -(-8 // size), MR * NV // size))
        first = [self.load(self.at(p, v * W)) for row in starts for p in row for v in range(NV)]
        accs = first + [ir.Constant(self.vec, None)] * (size * (split - 1))

        def unrolled(k: ir.Value, accs: list[ir.Value]) -> list[ir.Value]:
            out = []
            for j in range(split):
                part = accs[j * size : (j + 1) * size]
                out.extend(self.step(panels, a_rows, builder.add(k, const(j)), part))
            return out

        def step(k: ir.Value, accs: list[ir.Value]) -> list[ir.Value]:
            return self.step(panels, a_rows, k, accs)

        def room_for_all(k: ir.Value) -> ir.Value:
            return builder.icmp_signed("<=", builder.add(k, const(split)), K)

        k, accs = _loop(builder, const(0), room_for_all, split, accs, unrolled)
        if split == 1:
            return accs
        # the K % split leftover steps, then the partial sums summed
        _, total = _loop(builder, k, lambda k: builder.icmp_signed("<", k, K), 1, accs[:size], step)
        for j in range(1, split):
            part = accs[j * size : (j + 1) * size]
            total = [builder.fadd(x, y) for x, y in zip(total, part, strict=True)]
        return total


def _emit_block(
    context: Any, builder: ir.IRBuilder, sig: Any, args: Any, blocking: Blocking, add: bool
) -> None:
    """The IR of `_block(packed, a, m, nrows, n0, n1, out, om, oc)`: for every panel n in
    [n0, n1) and r < nrows, out[om + r, oc + (n - n0)·PW :][:PW] = bias[n·PW :][:PW] +
    a[m + r, :K] @ panels[n], K = panels.shape[1], (panels, bias, _) = packed; 1 ≤ nrows ≤ MR
    (other values do nothing). With `add`, the sums start from what out holds instead of the
    bias (`_block_add`: a one-row forward adding its state's product to its input's).
    A `switch` on nrows picks code made for that many rows; one or two rows take panels two
    or four at a time (more FMA chains, fewer broadcasts)."""
    W, NV, MR, PW = blocking.width, blocking.vectors, blocking.rows, blocking.panel_width
    packed_ty, a_ty, _, _, _, _, out_ty, _, _ = sig.args
    emit = _Emitter(builder, context.get_value_type(types.intp), blocking)
    const, at = emit.const, emit.at
    m, nrows, n0, n1, om, oc = (
        context.cast(builder, args[i], sig.args[i], types.intp) for i in (2, 3, 4, 5, 7, 8)
    )
    a = context.make_array(a_ty)(context, builder, args[1])
    panels, bias = (
        context.make_array(packed_ty.types[i])(context, builder, builder.extract_value(args[0], i))
        for i in (0, 1)
    )
    out = context.make_array(out_ty)(context, builder, args[6])
    K = cgutils.unpack_tuple(builder, panels.shape, 3)[1]

    def in_floats(strides: Any, ndim: int, axis: int) -> ir.Value:
        return builder.sdiv(cgutils.unpack_tuple(builder, strides, ndim)[axis], const(4))

    lda, ldo = in_floats(a.strides, 2, 0), in_floats(out.strides, 2, 0)
    # Panels by their strides (K·PW and PW floats when packed): any float32 view works.
    panel_size, emit.row_stride = in_floats(panels.strides, 3, 0), in_floats(panels.strides, 3, 1)

    def row(data: ir.Value, first: ir.Value, r: int, stride: ir.Value) -> ir.Value:
        return at(data, builder.mul(builder.add(first, const(r)), stride))

    def out_row(r: int) -> ir.Value:
        return at(row(out.data, om, r, ldo), oc)

    def panel_loop(start: ir.Value, group: int, a_rows: list[ir.Value]) -> ir.Value:
        """Panels [start, n1) `group` at a time, while a whole group fits; returns where it
        stopped."""

        def body(n: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            ns = [builder.add(n, const(g)) for g in range(group)]
            group_panels = [at(panels.data, builder.mul(n_g, panel_size)) for n_g in ns]
            out_panels = [
                [at(out_row(r), builder.mul(builder.sub(n_g, n0), const(PW))) for n_g in ns]
                for r in range(len(a_rows))
            ]
            biases = [at(bias.data, builder.mul(n_g, const(PW))) for n_g in ns]
            starts = out_panels if add else [biases] * len(a_rows)
            total = emit.block(K, group_panels, starts, a_rows)
            for r, row_panels in enumerate(out_panels):
                for g, out_panel in enumerate(row_panels):
                    for v in range(NV):
                        emit.store(total[(r * group + g) * NV + v], at(out_panel, v * W))
            return []

        def fits(n: ir.Value) -> ir.Value:
            return builder.icmp_signed("<=", builder.add(n, const(group)), n1)

        end, _ = _loop(builder, start, fits, group, [], body)
        return end

    done = builder.append_basic_block("rows_done")
    switch = builder.switch(nrows, done)
    for rows in range(1, MR + 1):
        case = builder.append_basic_block(f"rows_{rows}")
        switch.add_case(const(rows), case)
        builder.position_at_end(case)
        a_rows = [row(a.data, m, r, lda) for r in range(rows)]
        group = {1: 4, 2: 2}.get(rows, 1)
        n = panel_loop(n0, group, a_rows)
        if group > 1:
            panel_loop(n, 1, a_rows)
        builder.branch(done)
    builder.position_at_end(done)


class PackedAvx512(NamedTuple):
    """Weights packed for the AVX-512 blocking (see :func:`pack`); its class picks the kernel."""

    panels: np.ndarray  # (NP, K, 32) float32, 64-byte aligned
    bias: np.ndarray  # (NP·32,) float32
    rows: int  # MR, the rows of a register block


class PackedAvx2(NamedTuple):
    """Weights packed for the AVX2 blocking (see :func:`pack`); its class picks the kernel."""

    panels: np.ndarray  # (NP, K, 16) float32, 64-byte aligned
    bias: np.ndarray  # (NP·16,) float32
    rows: int


class Unpacked(NamedTuple):
    """No packed weights: the generic kernel runs (every float64 call, and the generic path)."""

    nothing: np.ndarray  # zero-sized: numba types an empty tuple poorly


PACKED: dict[str, type[PackedAvx512 | PackedAvx2]] = {"avx512": PackedAvx512, "avx2": PackedAvx2}
Packed = PackedAvx512 | PackedAvx2 | Unpacked
UNPACKED = Unpacked(np.empty(0, np.float32))


def pack_for(
    isa: str, blocks: list[np.ndarray], bias: np.ndarray, transposed: bool = False
) -> PackedAvx512 | PackedAvx2:
    """W = [blocks side by side] (N, K) — or its transpose, see :func:`pack` — and the bias
    (N,) packed for `isa`'s kernel (not generic)."""
    blocking = BLOCKING[isa]
    return PACKED[isa](*pack(blocks, bias, blocking.panel_width, transposed), blocking.rows)


def _blocking_of(packed: Any) -> Blocking | None:
    """The blocking a numba type of packed weights asks for (None: not packed weights)."""
    cls = getattr(packed, "instance_class", None)
    names = {cls_: name for name, cls_ in PACKED.items()}
    return BLOCKING[names[cls]] if cls in names else None


def _float32_c(t: Any, ndim: int) -> bool:
    return (
        isinstance(t, types.Array)
        and t.dtype == types.float32
        and t.ndim == ndim
        and t.layout == "C"
    )


def _typed_block(add: bool, packed: Any, a: Any, out: Any, indices: tuple[Any, ...]) -> Any:
    """The signature and code of `_block` (add=False) or `_block_add` for these argument
    types, or None where they do not fit: the blocking comes from packed's class."""
    blocking = _blocking_of(packed)
    if blocking is None or not (_float32_c(a, 2) and _float32_c(out, 2)):
        return None
    if not all(isinstance(i, types.Integer) for i in indices):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        _emit_block(context, builder, sig, args, blocking, add)
        return context.get_dummy_value()

    m, nrows, n0, n1, om, oc = indices
    return types.void(packed, a, m, nrows, n0, n1, out, om, oc), codegen


@intrinsic
def _block_intrinsic(
    typingctx: Any,
    packed: Any,
    a: Any,
    m: Any,
    nrows: Any,
    n0: Any,
    n1: Any,
    out: Any,
    om: Any,
    oc: Any,
) -> Any:
    """The micro-kernel, out = bias + a @ panels: see :func:`_emit_block`."""
    return _typed_block(False, packed, a, out, (m, nrows, n0, n1, om, oc))


@intrinsic
def _block_add_intrinsic(
    typingctx: Any,
    packed: Any,
    a: Any,
    m: Any,
    nrows: Any,
    n0: Any,
    n1: Any,
    out: Any,
    om: Any,
    oc: Any,
) -> Any:
    """The micro-kernel, out += a @ panels: see :func:`_emit_block`."""
    return _typed_block(True, packed, a, out, (m, nrows, n0, n1, om, oc))


# their calls as compiled code sees them
_block = cast(Callable[..., None], _block_intrinsic)
_block_add = cast(Callable[..., None], _block_add_intrinsic)


FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
jit = cached_jit(nogil=True, fastmath=FASTMATH, error_model="numpy")


@jit
def product(
    packed: PackedAvx512 | PackedAvx2,
    a: np.ndarray,
    out: np.ndarray,
    r0: int,
    r1: int,
    scratch: np.ndarray,
) -> None:
    """out[r0:r1, :N] = bias[:N] + a[r0:r1, :K] @ Wᵀ for W (N, K) packed by :func:`pack_for`;
    a (B, ≥K), out (B, N); scratch ≥ (MR, PW) takes a partial last panel."""
    MR, PW = packed.rows, packed.panels.shape[2]
    N = out.shape[1]
    full = N // PW  # panels wholly inside out
    whole = r0 + (r1 - r0) // MR * MR  # rows [r0, whole) in blocks of MR
    # Panels outer: one panel (K·PW floats) stays in L1/L2 while every row block reads it.
    for n in range(full):
        for m in range(r0, whole, MR):
            _block(packed, a, m, MR, n, n + 1, out, m, n * PW)
    if whole < r1:  # the last few rows, all panels in one call
        _block(packed, a, whole, r1 - whole, 0, full, out, whole, 0)
    if full < packed.panels.shape[0]:
        left = N - full * PW
        for m in range(r0, r1, MR):
            rows = min(MR, r1 - m)
            _block(packed, a, m, rows, full, full + 1, scratch, 0, 0)
            for r in range(rows):
                out[m + r, full * PW :] = scratch[r, :left]


def packed_product(
    packed: Packed, a: np.ndarray, out: np.ndarray, r0: int, r1: int, scratch: np.ndarray
) -> bool:
    """Inside the kernels: :func:`product` if `packed` holds packed weights, and whether it
    did (a compile-time constant: for :class:`Unpacked` this is a no-op returning False)."""
    raise NotImplementedError("only callable from compiled code")


@overload(packed_product, jit_options=dict(fastmath=FASTMATH))
def _packed_product_overload(
    packed: Any, a: Any, out: Any, r0: Any, r1: Any, scratch: Any
) -> Callable[..., bool]:
    # numba compares the parameters, annotations included: all three spell them alike.
    def unpacked(packed: Any, a: Any, out: Any, r0: Any, r1: Any, scratch: Any) -> bool:
        return False

    if _blocking_of(packed) is None:
        return unpacked

    def run(packed: Any, a: Any, out: Any, r0: Any, r1: Any, scratch: Any) -> bool:
        product(packed, a, out, r0, r1, scratch)
        return True

    return run


@jit
def add_row_product(
    packed: PackedAvx512 | PackedAvx2, a: np.ndarray, out: np.ndarray, r: int, scratch: np.ndarray
) -> None:
    """out[r, :N] += a[r, :K] @ Wᵀ (the same row r of both; the bias not added) for W packed
    by :func:`pack_for`: the sums start from what row r of out holds — a one-row forward's
    input products, formed for every step before the loop — so adding the state's product
    costs no pass of its own."""
    PW = packed.panels.shape[2]
    N = out.shape[1]
    full = N // PW
    _block_add(packed, a, r, 1, 0, full, out, r, 0)
    if full < packed.panels.shape[0]:
        left = N - full * PW
        scratch[0, :left] = out[r, full * PW :]
        _block_add(packed, a, r, 1, full, full + 1, scratch, 0, 0)
        out[r, full * PW :] = scratch[0, :left]


def packed_add_row_product(
    packed: Packed, a: np.ndarray, out: np.ndarray, r: int, scratch: np.ndarray
) -> None:
    """Inside the kernels: :func:`add_row_product` if `packed` holds packed weights, else
    nothing (:class:`Unpacked`: a forward that never hoists, compiled all the same)."""
    raise NotImplementedError("only callable from compiled code")


@overload(packed_add_row_product, jit_options=dict(fastmath=FASTMATH))
def _packed_add_row_product_overload(
    packed: Any, a: Any, out: Any, r: Any, scratch: Any
) -> Callable[..., None]:
    def unpacked(packed: Any, a: Any, out: Any, r: Any, scratch: Any) -> None:
        pass

    if _blocking_of(packed) is None:
        return unpacked

    def run(packed: Any, a: Any, out: Any, r: Any, scratch: Any) -> None:
        add_row_product(packed, a, out, r, scratch)

    return run
