"""The full layer's arguments — sizes, dropout, masks, lengths, stacked states — fail loudly,
name the argument (and the expected and received shapes), and leave the layer as it was."""

from __future__ import annotations

import re

import numpy as np
import pytest

import numpy_lstm

T, B, I, H, P = 5, 3, 2, 4, 2
F32 = np.float32


def stacked(**kwargs: object) -> numpy_lstm.LSTM:
    """2 layers, bidirectional, projected: h0/h_n (4, B, P), c0/c_n (4, B, H), out (T, B, 2P)."""
    return numpy_lstm.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, rng=0, **kwargs)


def x_ok(shape: tuple[int, ...] = (T, B, I)) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(F32)


def raises_naming(error: type, *parts: str):
    """pytest.raises whose message must contain every one of `parts` (literally)."""
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts))


# -- constructor ---------------------------------------------------------------------------------

CONSTRUCTOR_CASES = {
    "proj_size == hidden_size": (dict(proj_size=H), "proj_size"),
    "proj_size > hidden_size": (dict(proj_size=H + 1), "proj_size"),
    "negative proj_size": (dict(proj_size=-1), "proj_size"),
    "negative dropout": (dict(dropout=-0.1), "dropout"),
    "dropout of 1": (dict(dropout=1.0), "dropout"),
    "dropout above 1": (dict(dropout=1.5), "dropout"),
    "NaN dropout": (dict(dropout=float("nan")), "dropout"),
    "no layers": (dict(num_layers=0), "num_layers"),
    "negative layers": (dict(num_layers=-2), "num_layers"),
    "unknown mask_output": (dict(mask_output="none"), "mask_output"),
    "empty mask_output": (dict(mask_output=""), "mask_output"),
}


@pytest.mark.parametrize("case", CONSTRUCTOR_CASES, ids=list(CONSTRUCTOR_CASES))
def test_constructor_rejects(case: str) -> None:
    kwargs, argument = CONSTRUCTOR_CASES[case]
    with raises_naming(ValueError, argument):
        numpy_lstm.LSTM(I, H, **kwargs)


def test_the_valid_edges_are_accepted() -> None:
    lengths = np.array([5, 2, 3])
    projected = numpy_lstm.LSTM(
        I, H, proj_size=H - 1, dropout=0.0, num_layers=1, mask_output="carry", rng=0
    )
    out, (h_n, c_n) = projected(x_ok(), lengths=lengths)
    assert (out.shape, h_n.shape, c_n.shape) == ((T, B, H - 1), (1, B, H - 1), (1, B, H))
    # "carry": past its length a sequence repeats its last valid output, which is h_n
    np.testing.assert_array_equal(out[2:, 1], np.broadcast_to(h_n[0, 1], (T - 2, H - 1)))
    dropped = numpy_lstm.LSTM(I, H, num_layers=2, dropout=0.999, mask_output="zero", rng=0)
    out, (h_n, _) = dropped(x_ok(), lengths=lengths)
    assert out.shape == (T, B, H) and np.isfinite(out).all()
    assert not out[2:, 1].any() and not out[3:, 2].any()  # "zero": padding outputs zeros
    np.testing.assert_array_equal(out[1, 1], h_n[1, 1])  # the top layer's last valid output


# -- lengths and masks ---------------------------------------------------------------------------

LENGTHS_CASES = {
    "a length of 0": (np.array([5, 0, 3]), ValueError),
    "a length beyond T": (np.array([5, 6, 3]), ValueError),
    "a negative length": (np.array([5, -1, 3]), ValueError),
    "one length too many": (np.array([5, 5, 3, 2]), ValueError),
    "one length too few": (np.array([5, 5]), ValueError),
    "a column of lengths": (np.array([[5], [5], [3]]), ValueError),
    "a plain int for a batch": (5, ValueError),
    "float lengths": (np.array([5.0, 2.0, 3.0]), TypeError),
    "fractional lengths": (np.array([5, 2.5, 3]), TypeError),
}


@pytest.mark.parametrize("case", LENGTHS_CASES, ids=list(LENGTHS_CASES))
def test_bad_lengths(case: str) -> None:
    lengths, error = LENGTHS_CASES[case]
    with raises_naming(error, "lengths"):
        stacked()(x_ok(), lengths=lengths)


@pytest.mark.parametrize("lengths, error", [(0, ValueError), (T + 1, ValueError), (2.0, TypeError)])
def test_bad_unbatched_lengths(lengths: object, error: type) -> None:
    with raises_naming(error, "lengths"):
        stacked()(x_ok((T, I)), lengths=lengths)


@pytest.mark.parametrize(
    "batch_first, x_shape, mask_shape, expected",
    [
        (False, (T, B, I), (T, B), (B, T)),  # time-major x, mask still (B, T)
        (True, (B, T, I), (B, T + 1), (B, T)),
        (False, (T, I), (1, T), (T,)),  # unbatched: (T,)
        (False, (T, I), (T + 1,), (T,)),
    ],
)
def test_a_mask_of_the_wrong_shape_says_what_was_expected_and_received(
    batch_first: bool, x_shape: tuple, mask_shape: tuple, expected: tuple
) -> None:
    lstm = stacked(batch_first=batch_first)
    with raises_naming(ValueError, "mask", str(expected), str(mask_shape)):
        lstm(x_ok(x_shape), mask=np.ones(mask_shape, bool))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, F32], ids=["int64", "uint8", "float32"])
def test_a_mask_must_be_boolean(dtype: type) -> None:
    with raises_naming(TypeError, "mask"):
        stacked()(x_ok(), mask=np.ones((B, T), dtype))


def test_every_sequence_needs_a_valid_step() -> None:
    mask = np.ones((B, T), bool)
    mask[1] = False
    with raises_naming(ValueError, "mask"):
        stacked()(x_ok(), mask=mask)


def test_lengths_and_mask_together_are_rejected() -> None:
    lengths = np.array([5, 2, 3])
    with raises_naming(ValueError, "lengths", "mask"):
        stacked()(x_ok(), lengths=lengths, mask=np.arange(T) < lengths[:, None])


def test_non_finite_x_is_rejected_only_at_valid_positions() -> None:
    lstm = stacked()
    mask = np.arange(T) < np.array([5, 2, 3])[:, None]
    x = x_ok()
    x[3, 1, :] = np.nan  # step 3 of sequence 1 is padding
    x[4, 2, 0] = np.inf  # step 4 of sequence 2 is padding
    out, _ = lstm(x, mask=mask)
    assert np.isfinite(out).all()
    x[1, 2, 1] = np.nan  # a valid step
    with raises_naming(ValueError, "x", "non-finite"):
        lstm(x, mask=mask)


# -- stacked / bidirectional states --------------------------------------------------------------

STATE_CASES = {
    "h0 with num_layers rows": (dict(), (2, B, P), (4, B, H), "h0", (4, B, P)),
    "h0 of size H instead of P": (dict(), (4, B, H), (4, B, H), "h0", (4, B, P)),
    "c0 of size P instead of H": (dict(), (4, B, P), (4, B, P), "c0", (4, B, H)),
    "c0 for another batch": (dict(), (4, B, P), (4, B + 1, H), "c0", (4, B, H)),
    "unbatched h0 with a batch axis": (dict(unbatched=True), (4, 1, P), (4, H), "h0", (4, P)),
    "unbatched c0 with D rows only": (dict(unbatched=True), (4, P), (2, H), "c0", (4, H)),
}


@pytest.mark.parametrize("case", STATE_CASES, ids=list(STATE_CASES))
def test_stacked_initial_state_shapes(case: str) -> None:
    options, h_shape, c_shape, argument, expected = STATE_CASES[case]
    x = x_ok((T, I)) if options.get("unbatched") else x_ok()
    with raises_naming(ValueError, argument, str(expected)):
        stacked()(x, (np.zeros(h_shape, F32), np.zeros(c_shape, F32)))


def test_unidirectional_stack_expects_num_layers_rows() -> None:
    lstm = numpy_lstm.LSTM(I, H, num_layers=3, rng=0)
    with raises_naming(ValueError, "h0", str((3, B, H))):
        lstm(x_ok(), (np.zeros((1, B, H), F32), np.zeros((3, B, H), F32)))


# -- nothing is half-updated --------------------------------------------------------------------


def masked_pass(lstm: numpy_lstm.LSTM) -> tuple[np.ndarray, ...]:
    """A forward with lengths and a state, then a backward; returns dx, dh0, dc0."""
    rng = np.random.default_rng(3)
    hx = (rng.standard_normal((4, B, P)).astype(F32), rng.standard_normal((4, B, H)).astype(F32))
    lstm(x_ok(), hx, lengths=np.array([5, 2, 3]))
    return backward_once(lstm)


def backward_once(lstm: numpy_lstm.LSTM) -> tuple[np.ndarray, ...]:
    ones = np.ones
    dx, (dh0, dc0) = lstm.backward(ones((T, B, 2 * P), F32), (ones((4, B, P), F32), None))
    return dx, dh0, dc0


FAILED_FORWARDS = {
    "bad lengths": lambda lstm: lstm(x_ok(), lengths=np.array([5, 0, 3])),
    "bad lengths, other T": lambda lstm: lstm(x_ok((T + 2, B, I)), lengths=np.array([8, 1, 1])),
    "bad mask": lambda lstm: lstm(x_ok(), mask=np.ones((T, B), bool)),
    "both": lambda lstm: lstm(x_ok(), lengths=np.array([1, 1, 1]), mask=np.ones((B, T), bool)),
    "NaN at a valid step": lambda lstm: lstm(
        np.where(np.arange(T)[:, None, None] == 1, np.nan, x_ok()).astype(F32),
        lengths=np.array([5, 2, 3]),
    ),
    "bad h0": lambda lstm: lstm(x_ok(), (np.zeros((2, B, P), F32), np.zeros((4, B, H), F32))),
}


@pytest.mark.parametrize("case", FAILED_FORWARDS, ids=list(FAILED_FORWARDS))
def test_a_failed_forward_keeps_the_previous_pass_for_backward(case: str) -> None:
    lstm = stacked()
    expected = masked_pass(lstm)
    before = {k: v.copy() for k, v in lstm.grads.items()}
    with pytest.raises((ValueError, TypeError)):
        FAILED_FORWARDS[case](lstm)
    for name, a, b in zip(("dx", "dh0", "dc0"), backward_once(lstm), expected, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for name, grad in lstm.grads.items():  # the same pass, accumulated a second time
        np.testing.assert_allclose(grad, 2 * before[name], rtol=1e-6, err_msg=name)


def with_nan_at(shape: tuple[int, ...], index: tuple[int, ...]) -> np.ndarray:
    a = np.ones(shape, F32)
    a[index] = np.nan
    return a


BACKWARD_CASES = {
    "d_out of H_out, not D·H_out": (
        (np.ones((T, B, P), F32), None),
        ("d_out", str((T, B, 2 * P))),
    ),
    "dh_n of size H": ((None, (np.ones((4, B, H), F32), None)), ("dh_n", str((4, B, P)))),
    "dc_n of size P": ((None, (None, np.ones((4, B, P), F32))), ("dc_n", str((4, B, H)))),
    "dh_n with num_layers rows": (
        (None, (np.ones((2, B, P), F32), None)),
        ("dh_n", str((4, B, P))),
    ),
    "NaN in d_out at a valid step": ((with_nan_at((T, B, 2 * P), (0, 1, 0)), None), ("d_out",)),
}


@pytest.mark.parametrize("case", BACKWARD_CASES, ids=list(BACKWARD_CASES))
def test_a_failed_backward_leaves_gradients_and_cache_alone(case: str) -> None:
    (d_out, d_state), parts = BACKWARD_CASES[case]
    lstm = stacked()
    expected = masked_pass(lstm)
    before = {k: v.copy() for k, v in lstm.grads.items()}
    with raises_naming(ValueError, *parts):
        lstm.backward(d_out, d_state)
    for name, grad in lstm.grads.items():
        np.testing.assert_array_equal(grad, before[name], err_msg=name)
    for name, a, b in zip(("dx", "dh0", "dc0"), backward_once(lstm), expected, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} after the failed backward")
