"""One row's sequence with its units split over threads: the one-row forward (B = 1) on two
cores or more.

Rows of a batch never interact, so the batch's rows are what the kernels split over threads —
but one row cannot be split. Its step is bound by reading the weights from L2 (the product of
one row with [W_hh, W_ih] does two flops per weight loaded), so the way to use a second core is
to split the *units*: thread k of n owns units [u0, u1) and packs only their rows of the four
gate blocks, [W_hh, W_ih][i_k, f_k, g_k, o_k] (4U, H + I); every step it forms z for its units,
runs the cell for them and writes its part of h; then all threads wait for each other, since
the next step's product reads all of h. Measured on a Zen 4 (I, H = 32, 128, float32): the
product of two half-packs on two cores takes 1.7 µs a step against 3.3 µs for the whole on
one, but the wait costs ~0.25 µs a step and waking a thread ~35 µs a call, so the driver splits
only where a step reads more weights than one core's L2 holds (see
:data:`numpy_lstm.kernels.numba_driver.MIN_UNIT_GROUP_STEP_WORK`).

The wait is a spin on one counter per thread (each on lines of its own): thread k stores the
number of steps it has finished (an atomic store with release order, so its writes to h are
visible first) and reads the others' (atomic loads with acquire order). numba has no atomics,
so they are emitted as LLVM IR; the spin pauses the core, and after a while gives the time
slice away (sched_yield), so a thread that has no core yet — just woken, or beside other
work — is not starved by its partner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import simd
from .disk_cache import cached_jit
from .numba_kernels import cell, jit

# int64s between two threads' counters: two cache lines (the CPU fetches lines in pairs)
LINE = 16
SPINS_BEFORE_YIELD = 2000  # pause instructions (~20–140 cycles each) before yielding the core


def _item_pointer(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> ir.Value:
    array_type = sig.args[0]
    array = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])


def _int64_array(t: Any) -> bool:
    return isinstance(t, types.Array) and t.dtype == types.int64 and t.ndim == 1


@intrinsic
def _store_release_intrinsic(typingctx: Any, counters: Any, index: Any, value: Any) -> Any:
    """counters[index] = value, an atomic store that orders every write before it."""
    if not (_int64_array(counters) and isinstance(index, types.Integer)):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        stored = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(stored, _item_pointer(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()

    return types.void(counters, index, value), codegen


@intrinsic
def _load_acquire_intrinsic(typingctx: Any, counters: Any, index: Any) -> Any:
    """counters[index], an atomic load that orders every read after it."""
    if not (_int64_array(counters) and isinstance(index, types.Integer)):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        return builder.load_atomic(_item_pointer(context, builder, sig, args), "acquire", 8)

    return types.int64(counters, index), codegen


def _void_call(name: str, returns: ir.Type) -> Any:
    """An intrinsic that calls the external function `name` (no arguments)."""

    @intrinsic
    def call(typingctx: Any) -> Any:
        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
            function_type = ir.FunctionType(returns, [])
            builder.call(cgutils.get_or_insert_function(builder.module, function_type, name), [])
            return context.get_dummy_value()

        return types.void(), codegen

    return call


# Their calls as compiled code sees them (an intrinsic's own signature starts with the typing
# context).
_store_release = cast(Callable[[np.ndarray, int, int], None], _store_release_intrinsic)
_load_acquire = cast(Callable[[np.ndarray, int], int], _load_acquire_intrinsic)
_pause = cast(Callable[[], None], _void_call("llvm.x86.sse2.pause", ir.VoidType()))  # spin hint
_sched_yield = cast(Callable[[], None], _void_call("sched_yield", ir.IntType(32)))  # libc


@cached_jit(nogil=True)
def wait_for_all(counters: np.ndarray, k: int, steps: int) -> None:
    """Thread k has finished `steps` steps: say so, and wait until every thread has."""
    _store_release(counters, k * LINE, steps)
    for j in range(counters.shape[0] // LINE):
        spins = 0
        while _load_acquire(counters, j * LINE) < steps:
            _pause()
            spins += 1
            if spins == SPINS_BEFORE_YIELD:
                _sched_yield()
                spins = 0


@jit
def forward_units(
    packed: simd.PackedAvx512 | simd.PackedAvx2,
    mask: np.ndarray,
    carry_output: bool,
    reverse: bool,
    hx: np.ndarray,
    c: np.ndarray,
    gates: np.ndarray,
    tanh_c: np.ndarray,
    out: np.ndarray,
    u0: int,
    u1: int,
    k: int,
    counters: np.ndarray,
    half: float,
    inputs: np.ndarray,
    input_packed: simd.PackedAvx512 | simd.PackedAvx2,
) -> None:
    """Thread k's part of a one-row forward (arrays as :func:`numba_kernels.forward_rows` takes
    them, B = 1, no projection): units [u0, u1), whose [W_hh, W_ih] rows of the four gate
    blocks and their bias are `packed` in the order i, f, g, o. Every thread runs every step;
    counters (n·LINE,) zeros on entry, one line per thread.

    With `inputs` (T, I) — every step's x, zeros where masked — the input products are formed
    first, x_t·W_ihᵀ + b of these units for all steps from `input_packed`, and `packed` holds
    their W_hh rows alone (zero bias); `inputs` zero-sized: not hoisted (input_packed unused)."""
    T, H = gates.shape[0], c.shape[2]
    U = u1 - u0
    has_mask, hoisted = mask.shape[0] > 0, inputs.shape[0] > 0
    z = np.empty((1, 4 * U), gates.dtype)
    scratch = np.empty((simd.SCRATCH_ROWS, simd.SCRATCH_COLUMNS), gates.dtype)
    from_inputs = np.empty((T if hoisted else 0, 4 * U), gates.dtype)
    if hoisted:
        simd.product(input_packed, inputs, from_inputs, 0, T, scratch)
    for s in range(T):
        t = T - 1 - s if reverse else s
        before = t + 2 if reverse else t
        h_new, c_new, shown = hx[t + 1, 0, u0:u1], c[t + 1, 0, u0:u1], out[t, 0, u0:u1]
        if has_mask and not mask[t, 0]:  # carry the state; the output is 0 or the carried h
            h_new[:] = hx[before, 0, u0:u1]
            c_new[:] = c[before, 0, u0:u1]
            if carry_output:
                shown[:] = h_new
            else:
                shown[:] = 0
        else:
            if hoisted:  # x_t's products, formed before the loop, take the state's in place
                zb = from_inputs[t]
                simd.add_row_product(packed, hx[before], from_inputs[t : t + 1], 0, scratch)
            else:
                simd.product(packed, hx[before], z, 0, 1, scratch)
                zb = z[0]
            gt = gates[t, 0]  # zb: this thread's units; gates: the layer's layout
            z_i, z_f, z_g, z_o = zb[:U], zb[U : 2 * U], zb[2 * U : 3 * U], zb[3 * U :]
            i, f = gt[u0:u1], gt[H + u0 : H + u1]
            g, o = gt[2 * H + u0 : 2 * H + u1], gt[3 * H + u0 : 3 * H + u1]
            c_prev, tc = c[before, 0, u0:u1], tanh_c[t, 0, u0:u1]
            cell(z_i, z_f, z_g, z_o, i, f, g, o, c_prev, c_new, tc, h_new, half)
            shown[:] = h_new
        wait_for_all(counters, k, s + 1)


def gate_rows(hidden_size: int, u0: int, u1: int) -> np.ndarray:
    """The rows of a (4H, ·) gate-block matrix that hold units [u0, u1): i, f, g, o in turn."""
    return np.concatenate([np.arange(g * hidden_size + u0, g * hidden_size + u1) for g in range(4)])
