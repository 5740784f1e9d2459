"""Variable-length batches: `lengths` and `mask` give every sequence exactly its own computation.

At a masked step the state (h, c) is carried unchanged; the output there is 0 (mask_output="zero")
or the carried h ("carry"). h_n / c_n are each sequence's state after its last valid step (for the
reverse direction, after its first). Oracles: torch's packed sequences for right padding, running
each sequence alone (no torch needed) for any padding, and central finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import numpy_lstm
from conftest import (
    TOLERANCE,
    assert_lstm_gradients_match,
    assert_matches,
    distinct_gate_lstm_state,
    load_into_torch,
    to_torch,
    torch_lstm,
)

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

T, B, I, H, P = 6, 4, 3, 4, 2
F64 = np.float64
# (B, T), True = valid. Every row has a valid step; "mid" has leading, trailing and inner gaps.
MASKS = {
    "right": [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]],
    "left": [[0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [0, 1, 1, 1, 1, 1]],
    "mid": [[1, 0, 0, 1, 1, 0], [0, 1, 0, 1, 0, 1], [1, 1, 1, 1, 1, 1], [0, 0, 1, 0, 0, 0]],
}


def mask_of(pattern: str) -> np.ndarray:
    return np.array(MASKS[pattern], dtype=bool)


def state_for(rng: np.random.Generator, input_size: int = I, hidden_size: int = H, **config):
    """Distinct-gate parameters (torch's names and order) for the given configuration."""
    torch_config = {k: v for k, v in config.items() if k in ("num_layers", "bidirectional")}
    torch_config["proj_size"] = config.get("proj_size", 0)
    theirs = torch_lstm(input_size, hidden_size, F64, **torch_config)
    return distinct_gate_lstm_state(rng, theirs, F64)


def layer(
    state: dict, input_size: int = I, hidden_size: int = H, dtype: type = F64, **config
) -> numpy_lstm.LSTM:
    lstm = numpy_lstm.LSTM(input_size, hidden_size, **config, dtype=dtype)
    lstm.load_state_dict({k: v.astype(dtype) for k, v in state.items()})
    return lstm


def layout(a: np.ndarray, batch_first: bool) -> np.ndarray:
    """Time-major (T, B, ·) ↔ batch-first (B, T, ·); its own inverse."""
    return a.transpose(1, 0, 2) if batch_first else a


def initial_state(rng: np.random.Generator, layers: int, batch: tuple[int, ...], proj: int):
    h = rng.standard_normal((layers, *batch, proj or H))
    return h, rng.standard_normal((layers, *batch, H))


def unsorted_lengths(rng: np.random.Generator) -> np.ndarray:
    """B lengths in [1, T], one full, one of 1, not sorted in decreasing order."""
    lengths = rng.permutation([T, 1, *rng.integers(1, T + 1, B - 2)])
    return lengths if np.any(np.diff(lengths) > 0) else lengths[::-1].copy()


def forward_backward(lstm, x, hx, d_out, dh_n, dc_n, **masking):
    lstm.zero_grad()
    out, (h_n, c_n) = lstm(x, hx, **masking)
    dx, (dh0, dc0) = lstm.backward(d_out, (dh_n, dc_n))
    grads = {k: v.copy() for k, v in lstm.grads.items()}
    return out, h_n, c_n, dx, dh0, dc0, grads


# -- (a) right padding + lengths == torch's packed sequences -----------------------------------


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("proj_size", [0, P], ids=["noproj", "proj"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["1layer", "2layers"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_lengths_match_torch_packed_sequences(
    rng: np.random.Generator,
    bidirectional: bool,
    num_layers: int,
    proj_size: int,
    batch_first: bool,
) -> None:
    config = dict(num_layers=num_layers, bidirectional=bidirectional, proj_size=proj_size)
    theirs = torch_lstm(I, H, F64, **config, batch_first=batch_first)
    state = distinct_gate_lstm_state(rng, theirs, F64)
    load_into_torch(theirs, state)
    ours = layer(state, **config, batch_first=batch_first)

    lengths = unsorted_lengths(rng)
    valid = layout((np.arange(T)[:, None] < lengths)[..., None], batch_first)  # like x[..., :1]
    x = layout(rng.standard_normal((T, B, I)), batch_first)
    h0, c0 = initial_state(rng, (2 if bidirectional else 1) * num_layers, (B,), proj_size)
    x_t, h0_t, c0_t = (to_torch(a, requires_grad=True) for a in (x, h0, c0))

    out, (h_n, c_n) = ours(x, (h0, c0), lengths=lengths)
    packed = pack_padded_sequence(
        x_t, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False
    )
    packed_out, (h_n_t, c_n_t) = theirs(packed, (h0_t, c0_t))
    out_t, _ = pad_packed_sequence(packed_out, batch_first=batch_first, total_length=T)
    assert_matches(out, out_t, F64, "out")
    assert not out[np.broadcast_to(~valid, out.shape)].any(), "outputs at padding are 0"
    assert_matches(h_n, h_n_t, F64, "h_n")
    assert_matches(c_n, c_n_t, F64, "c_n")

    # Upstream gradients everywhere, padding included: torch's padded outputs are constants,
    # and under mask_output="zero" ours must ignore d_out there too.
    d_out, dh_n, dc_n = (rng.standard_normal(a.shape) for a in (out, h_n, c_n))
    dx, (dh0, dc0) = ours.backward(d_out, (dh_n, dc_n))
    terms = [(out_t, d_out), (h_n_t, dh_n), (c_n_t, dc_n)]
    sum((t * to_torch(g)).sum() for t, g in terms).backward()
    assert_matches(dx, x_t.grad, F64, "dx")
    assert not dx[np.broadcast_to(~valid, dx.shape)].any(), "dx at padding is exactly 0"
    assert_matches(dh0, h0_t.grad, F64, "dh0")
    assert_matches(dc0, c0_t.grad, F64, "dc0")
    for name, param in theirs.named_parameters():
        assert_matches(ours.grads[name], param.grad, F64, f"grad of {name}")


# -- (b) lengths are shorthand for a right-padded mask ------------------------------------------


@pytest.mark.parametrize("mask_output", ["zero", "carry"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_lengths_equal_the_right_padded_mask_exactly(
    rng: np.random.Generator, batch_first: bool, mask_output: str
) -> None:
    config = dict(num_layers=2, bidirectional=True, proj_size=P)
    state = state_for(rng, **config)
    config.update(batch_first=batch_first, mask_output=mask_output)
    lengths = np.array([3, 6, 1, 5])
    mask = np.arange(T) < lengths[:, None]  # (B, T) whatever the layout
    x = layout(rng.standard_normal((T, B, I)), batch_first)
    hx = initial_state(rng, 4, (B,), P)
    d_out = layout(rng.standard_normal((T, B, 2 * P)), batch_first)
    dh_n, dc_n = initial_state(rng, 4, (B,), P)
    by_lengths = forward_backward(layer(state, **config), x, hx, d_out, dh_n, dc_n, lengths=lengths)
    by_mask = forward_backward(layer(state, **config), x, hx, d_out, dh_n, dc_n, mask=mask)
    for name, a, b in zip(
        ("out", "h_n", "c_n", "dx", "dh0", "dc0"), by_lengths[:6], by_mask[:6], strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for name in by_mask[-1]:
        np.testing.assert_array_equal(by_lengths[-1][name], by_mask[-1][name], err_msg=name)


# -- (c) every sequence is computed as if it were alone -----------------------------------------


@pytest.mark.parametrize("mask_output", ["zero", "carry"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("pattern", ["lengths", "right", "left", "mid"])
def test_each_sequence_is_computed_as_if_alone(
    rng: np.random.Generator, pattern: str, batch_first: bool, bidirectional: bool, mask_output: str
) -> None:
    """A padded sequence = its valid steps, compacted, run alone as a batch of one, unmasked."""
    D, L = (2 if bidirectional else 1), 2
    state = state_for(rng, num_layers=L, bidirectional=bidirectional, proj_size=P)
    config = dict(
        num_layers=L,
        bidirectional=bidirectional,
        proj_size=P,
        batch_first=batch_first,
        mask_output=mask_output,
    )
    mask = mask_of("right" if pattern == "lengths" else pattern)
    masking = {"lengths": mask.sum(axis=1)} if pattern == "lengths" else {"mask": mask}
    x_tm = rng.standard_normal((T, B, I))
    h0, c0 = initial_state(rng, D * L, (B,), P)
    dh_n, dc_n = initial_state(rng, D * L, (B,), P)
    d_out_tm = rng.standard_normal((T, B, D * P))
    # Masked outputs are 0 under "zero" (their d_out must be ignored); under "carry" they are
    # the carried state, which a sequence run alone does not have: no gradient enters there.
    d_out_tm[~mask.T] = 0.0 if mask_output == "carry" else 1e3

    batched = layer(state, **config)
    x, d_out = layout(x_tm, batch_first), layout(d_out_tm, batch_first)
    out, h_n, c_n, dx, dh0, dc0, grads = forward_backward(
        batched, x, (h0, c0), d_out, dh_n, dc_n, **masking
    )
    out_tm, dx_tm = layout(out, batch_first), layout(dx, batch_first)
    assert not dx_tm[~mask.T].any(), "dx at masked steps is exactly 0"
    if mask_output == "zero":
        assert not out_tm[~mask.T].any(), "outputs at masked steps are 0"

    alone = layer(state, **config)
    alone_grads = {k: np.zeros_like(v) for k, v in grads.items()}
    for b in range(B):
        valid = mask[b]
        one = slice(b, b + 1)
        out_b, h_n_b, c_n_b, dx_b, dh0_b, dc0_b, grads_b = forward_backward(
            alone,
            layout(x_tm[valid, one], batch_first),
            (h0[:, one], c0[:, one]),
            layout(d_out_tm[valid, one], batch_first),
            dh_n[:, one],
            dc_n[:, one],
        )
        tol = TOLERANCE[F64]
        np.testing.assert_allclose(out_tm[valid, b], layout(out_b, batch_first)[:, 0], **tol)
        np.testing.assert_allclose(h_n[:, b], h_n_b[:, 0], **tol, err_msg=f"h_n of {b}")
        np.testing.assert_allclose(c_n[:, b], c_n_b[:, 0], **tol, err_msg=f"c_n of {b}")
        np.testing.assert_allclose(dx_tm[valid, b], layout(dx_b, batch_first)[:, 0], **tol)
        np.testing.assert_allclose(dh0[:, b], dh0_b[:, 0], **tol, err_msg=f"dh0 of {b}")
        np.testing.assert_allclose(dc0[:, b], dc0_b[:, 0], **tol, err_msg=f"dc0 of {b}")
        for name, g in grads_b.items():
            alone_grads[name] += g
    for name, g in grads.items():  # the batch's loss is the sum of the sequences' losses
        np.testing.assert_allclose(g, alone_grads[name], **TOLERANCE[F64], err_msg=name)


@pytest.mark.parametrize("pattern", ["lengths", "right", "mid"])
def test_unbatched_lengths_and_masks(rng: np.random.Generator, pattern: str) -> None:
    """Unbatched x (T, I): `lengths` is a plain int and `mask` has shape (T,)."""
    config = dict(num_layers=2, bidirectional=True, proj_size=P)
    state = state_for(rng, **config)
    valid = mask_of("mid" if pattern == "mid" else "right")[0]
    masking = {"lengths": int(valid.sum())} if pattern == "lengths" else {"mask": valid}
    x = rng.standard_normal((T, I))
    hx, (dh_n, dc_n) = initial_state(rng, 4, (), P), initial_state(rng, 4, (), P)
    d_out = rng.standard_normal((T, 2 * P))
    d_out[~valid] = 0.0
    padded = forward_backward(layer(state, **config), x, hx, d_out, dh_n, dc_n, **masking)
    alone = forward_backward(layer(state, **config), x[valid], hx, d_out[valid], dh_n, dc_n)
    assert padded[0].shape == (T, 2 * P) and padded[1].shape == (4, P) and padded[2].shape == (4, H)
    assert not padded[0][~valid].any() and not padded[3][~valid].any()
    for name, k in (("out", 0), ("dx", 3)):
        np.testing.assert_allclose(padded[k][valid], alone[k], **TOLERANCE[F64], err_msg=name)
    for name, k in (("h_n", 1), ("c_n", 2), ("dh0", 4), ("dc0", 5)):
        np.testing.assert_allclose(padded[k], alone[k], **TOLERANCE[F64], err_msg=name)
    for name, g in padded[6].items():
        np.testing.assert_allclose(g, alone[6][name], **TOLERANCE[F64], err_msg=name)


# -- (d) padding content never matters ----------------------------------------------------------

mask_rows = st.lists(st.booleans(), min_size=T, max_size=T).filter(any)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@settings(max_examples=50, deadline=None)
@given(
    mask=st.lists(mask_rows, min_size=B, max_size=B),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    mask_output=st.sampled_from(["zero", "carry"]),
    num_layers=st.integers(1, 2),
    proj_size=st.sampled_from([0, P]),
    data=st.data(),
)
def test_garbage_at_masked_positions_changes_nothing(
    dtype: type,
    mask: list,
    bidirectional: bool,
    batch_first: bool,
    mask_output: str,
    num_layers: int,
    proj_size: int,
    data: st.DataObject,
) -> None:
    mask = np.array(mask, dtype=bool)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    D = 2 if bidirectional else 1
    state = state_for(rng, num_layers=num_layers, bidirectional=bidirectional, proj_size=proj_size)
    config = dict(
        num_layers=num_layers,
        bidirectional=bidirectional,
        proj_size=proj_size,
        batch_first=batch_first,
        mask_output=mask_output,
    )
    masked = np.broadcast_to(~mask.T[..., None], (T, B, I))  # time-major
    x_tm = rng.standard_normal((T, B, I)).astype(dtype)
    x_tm[masked] = 0.0
    garbage = data.draw(
        st.lists(
            st.floats(allow_nan=True, allow_infinity=True, width=np.dtype(dtype).itemsize * 8),
            min_size=int(masked.sum()),
            max_size=int(masked.sum()),
        ),
        label="garbage",
    )
    dirty_tm = x_tm.copy()
    dirty_tm[masked] = garbage
    hx = tuple(a.astype(dtype) for a in initial_state(rng, D * num_layers, (B,), proj_size))
    d_state = [a.astype(dtype) for a in initial_state(rng, D * num_layers, (B,), proj_size)]
    d_out_tm = rng.standard_normal((T, B, D * (proj_size or H))).astype(dtype)
    dirty_d_out_tm = d_out_tm.copy()
    if mask_output == "zero":  # d_out at masked positions is ignored, too
        dirty_d_out_tm[~mask.T] = 1e3 * rng.standard_normal(dirty_d_out_tm[~mask.T].shape)

    def run(x_tm: np.ndarray, d_out_tm: np.ndarray) -> tuple:
        lstm = layer(state, dtype=dtype, **config)
        x, d_out = layout(x_tm, batch_first), layout(d_out_tm, batch_first)
        return forward_backward(lstm, x, hx, d_out, *d_state, mask=mask)

    clean, dirty = run(x_tm, d_out_tm), run(dirty_tm, dirty_d_out_tm)
    for name, k in (("out", 0), ("h_n", 1), ("c_n", 2), ("dh0", 4), ("dc0", 5)):
        np.testing.assert_array_equal(dirty[k], clean[k], err_msg=name)
    dx_tm = layout(dirty[3], batch_first)
    np.testing.assert_array_equal(dx_tm, layout(clean[3], batch_first), err_msg="dx")
    assert not dx_tm[masked].any(), "dx at masked positions is exactly 0"
    for name, g in dirty[6].items():
        np.testing.assert_array_equal(g, clean[6][name], err_msg=f"grad of {name}")


# -- (e) mask_output="carry" --------------------------------------------------------------------


def test_carry_outputs_repeat_the_carried_state(rng: np.random.Generator) -> None:
    """Forward half: the last valid step's output (else h0); reverse half: the next valid one's."""
    config = dict(num_layers=2, bidirectional=True, proj_size=P)
    state = state_for(rng, **config)
    mask = mask_of("mid")
    x = rng.standard_normal((T, B, I))
    h0, c0 = initial_state(rng, 4, (B,), P)
    out, (h_n, c_n) = layer(state, **config, mask_output="carry")(x, (h0, c0), mask=mask)
    zero_out, (zero_h_n, zero_c_n) = layer(state, **config)(x, (h0, c0), mask=mask)
    fwd, rev = 2, 3  # h0 / h_n rows of the last layer: index = layer · D + direction
    for b in range(B):
        steps = np.flatnonzero(mask[b])
        np.testing.assert_allclose(out[steps, b], zero_out[steps, b], **TOLERANCE[F64])
        # h_n: the forward direction ends at the last valid step, the reverse at the first.
        np.testing.assert_array_equal(zero_h_n[fwd, b], zero_out[steps[-1], b, :P])
        np.testing.assert_array_equal(zero_h_n[rev, b], zero_out[steps[0], b, P:])
        for t in np.flatnonzero(~mask[b]):
            before, after = steps[steps < t], steps[steps > t]
            carried_fwd = out[before[-1], b, :P] if before.size else h0[fwd, b]
            carried_rev = out[after[0], b, P:] if after.size else h0[rev, b]
            np.testing.assert_array_equal(out[t, b, :P], carried_fwd, err_msg=f"fwd t={t} b={b}")
            np.testing.assert_array_equal(out[t, b, P:], carried_rev, err_msg=f"rev t={t} b={b}")
    np.testing.assert_allclose(h_n, zero_h_n, **TOLERANCE[F64])
    np.testing.assert_allclose(c_n, zero_c_n, **TOLERANCE[F64])


@pytest.mark.parametrize("mask_output", ["zero", "carry"])
def test_masked_gradients_match_finite_differences(
    rng: np.random.Generator, mask_output: str
) -> None:
    """d_out is nonzero at masked steps too: ignored under "zero", flows into the state under
    "carry". Central differences of L = Σ d_out·out + Σ dh_n·h_n + Σ dc_n·c_n decide."""
    small_I, small_H = 2, 3
    config = dict(num_layers=2, bidirectional=True, proj_size=P)
    state = state_for(rng, small_I, small_H, **config)
    lstm = layer(state, small_I, small_H, **config, mask_output=mask_output)
    mask = mask_of("mid")
    x = rng.standard_normal((T, B, small_I))
    h0, c0 = rng.standard_normal((4, B, P)), rng.standard_normal((4, B, small_H))
    d_out = rng.standard_normal((T, B, 2 * P))
    upstream = (d_out, rng.standard_normal(h0.shape), rng.standard_normal(c0.shape))
    assert_lstm_gradients_match(
        lstm, lambda: lstm(x, (h0, c0), mask=mask), {"x": x, "h0": h0, "c0": c0}, upstream
    )
