"""Bad input fails loudly, names the argument, the expectation and what was received, and
leaves the layer exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest

import numpy_lstm

T, B, I, H = 5, 2, 3, 4
F32 = np.float32


def fresh_lstm(**kwargs: object) -> numpy_lstm.LSTM:
    return numpy_lstm.LSTM(I, H, rng=0, **kwargs)


def x_ok() -> np.ndarray:
    return np.zeros((T, B, I), F32)


def state(shape: tuple[int, ...] = (1, B, H), dtype: type = F32) -> np.ndarray:
    return np.zeros(shape, dtype)


def with_nan(shape: tuple[int, ...], index: tuple[int, ...], value: float = np.nan) -> np.ndarray:
    a = np.zeros(shape, F32)
    a[index] = value
    return a


FORWARD_CASES = {
    "x with 4 dims": (
        (np.zeros((T, B, I, 1), F32), None),
        ValueError,
        r"x: expected shape \(T, B, I\) or unbatched \(T, I\) with I = 3, got \(5, 2, 3, 1\)",
    ),
    "x with 1 dim": (
        (np.zeros(I, F32), None),
        ValueError,
        r"x: expected shape .* got \(3,\)",
    ),
    "wrong feature size": (
        (np.zeros((T, B, I + 1), F32), None),
        ValueError,
        r"x: expected shape \(T, B, I\) .* I = 3, got \(5, 2, 4\)",
    ),
    "empty sequence": (
        (np.zeros((0, B, I), F32), None),
        ValueError,
        r"x: the sequence is empty \(T = 0\)",
    ),
    "integer x": (
        (np.zeros((T, B, I), np.int64), None),
        TypeError,
        r"x: expected a floating array of dtype float32, got dtype int64",
    ),
    "boolean x": (
        (np.zeros((T, B, I), bool), None),
        TypeError,
        r"x: expected a floating array of dtype float32, got dtype bool",
    ),
    "complex x": (
        (np.zeros((T, B, I), np.complex64), None),
        TypeError,
        r"x: expected a floating array of dtype float32, got dtype complex64",
    ),
    "object x": (
        (np.array([[[None] * I] * B] * T), None),
        TypeError,
        r"x: expected a floating array of dtype float32, got dtype object",
    ),
    "float64 x into a float32 layer": (
        (np.zeros((T, B, I)), None),
        TypeError,
        r"x: dtype float64 does not match the parameters' dtype float32",
    ),
    "NaN in x": (
        (with_nan((T, B, I), (3, 1, 2)), None),
        ValueError,
        r"x: contains a non-finite value \(nan\) at index \(3, 1, 2\)",
    ),
    "Inf in x": (
        (with_nan((T, B, I), (0, 0, 0), np.inf), None),
        ValueError,
        r"x: contains a non-finite value \(inf\) at index \(0, 0, 0\)",
    ),
    "h0 for another batch size": (
        (x_ok(), (state((1, B + 1, H)), state())),
        ValueError,
        r"h0: expected shape \(1, 2, 4\), got \(1, 3, 4\)",
    ),
    "c0 without the layer axis": (
        (x_ok(), (state(), state((B, H)))),
        ValueError,
        r"c0: expected shape \(1, 2, 4\), got \(2, 4\)",
    ),
    "float64 h0": (
        (x_ok(), (state(dtype=np.float64), state())),
        TypeError,
        r"h0: dtype float64 does not match the parameters' dtype float32",
    ),
    "NaN in c0": (
        (x_ok(), (state(), with_nan((1, B, H), (0, 1, 3)))),
        ValueError,
        r"c0: contains a non-finite value \(nan\) at index \(0, 1, 3\)",
    ),
    "state not a pair": (
        (x_ok(), state()),
        TypeError,
        r"hx: expected a tuple \(h0, c0\), got ndarray",
    ),
}


@pytest.mark.parametrize("case", FORWARD_CASES, ids=list(FORWARD_CASES))
def test_lstm_forward_rejects(case: str) -> None:
    (x, hx), error, message = FORWARD_CASES[case]
    lstm = fresh_lstm()
    with pytest.raises(error, match=message):
        lstm(x, hx)


def test_batch_first_message_names_its_layout() -> None:
    lstm = fresh_lstm(batch_first=True)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, I\)"):
        lstm(np.zeros((B, T, I + 2), F32))


def test_backward_before_forward() -> None:
    with pytest.raises(ValueError, match=r"LSTM.backward\(\) called before forward\(\)"):
        fresh_lstm().backward(np.zeros((T, B, H), F32))
    with pytest.raises(ValueError, match=r"LSTMCell.backward\(\) called before forward\(\)"):
        numpy_lstm.LSTMCell(I, H).backward((np.zeros((B, H), F32), None))


BACKWARD_CASES = {
    "d_out of the wrong shape": (
        (np.zeros((T, B, H + 1), F32), None),
        ValueError,
        r"d_out: expected shape \(5, 2, 4\), got \(5, 2, 5\)",
    ),
    "float64 d_out": (
        (np.zeros((T, B, H)), None),
        TypeError,
        r"d_out: dtype float64 does not match",
    ),
    "NaN in d_out": (
        (with_nan((T, B, H), (4, 0, 0)), None),
        ValueError,
        r"d_out: contains a non-finite value \(nan\) at index \(4, 0, 0\)",
    ),
    "dh_n of the wrong shape": (
        (None, (state((B, H)), None)),
        ValueError,
        r"dh_n: expected shape \(1, 2, 4\), got \(2, 4\)",
    ),
    "integer dc_n": (
        (None, (None, state(dtype=np.int32))),
        TypeError,
        r"dc_n: expected a floating array of dtype float32, got dtype int32",
    ),
    "d_state not a pair": (
        (None, state()),
        TypeError,
        r"d_state: expected a tuple \(dh, dc\)",
    ),
}


@pytest.mark.parametrize("case", BACKWARD_CASES, ids=list(BACKWARD_CASES))
def test_lstm_backward_rejects_without_touching_gradients(case: str) -> None:
    (d_out, d_state), error, message = BACKWARD_CASES[case]
    lstm = fresh_lstm()
    lstm(np.random.default_rng(0).standard_normal((T, B, I)).astype(F32))
    lstm.backward(np.ones((T, B, H), F32))
    before = {k: v.copy() for k, v in lstm.grads.items()}
    with pytest.raises(error, match=message):
        lstm.backward(d_out, d_state)
    for name, grad in lstm.grads.items():
        np.testing.assert_array_equal(grad, before[name], err_msg=name)


def test_a_failed_forward_keeps_the_previous_pass_for_backward() -> None:
    lstm = fresh_lstm()
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(F32)
    d_out = np.ones((T, B, H), F32)
    lstm(x)
    expected, _ = lstm.backward(d_out)
    with pytest.raises(ValueError):
        lstm(x, (state((1, 9, H)), state((1, 9, H))))
    again, _ = lstm.backward(d_out)
    np.testing.assert_array_equal(again, expected)


@pytest.mark.parametrize(
    "x, hx, error, message",
    [
        (
            np.zeros((B, I + 1), F32),
            None,
            ValueError,
            r"x: expected shape \(B, 3\) .* got \(2, 4\)",
        ),
        (np.zeros((1, B, I), F32), None, ValueError, r"x: expected shape .* got \(1, 2, 3\)"),
        (np.zeros((B, I), np.float16), None, TypeError, r"x: expected a floating array .*float16"),
        (np.zeros((B, I), F32), (state((B, H + 1)), state((B, H))), ValueError, r"h0: expected"),
        (
            np.zeros(I, F32),
            (state((B, H)), state((B, H))),
            ValueError,
            r"h0: expected shape \(4,\)",
        ),
    ],
)
def test_lstm_cell_rejects(x: np.ndarray, hx: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        numpy_lstm.LSTMCell(I, H)(x, hx)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"input_size": 0, "hidden_size": 4}, ValueError, r"input_size: expected a positive int"),
        ({"input_size": 3, "hidden_size": 2.5}, ValueError, r"hidden_size: expected a positive"),
        ({"input_size": 3, "hidden_size": True}, ValueError, r"hidden_size: expected a positive"),
        ({"input_size": 3, "hidden_size": 4, "dtype": np.int32}, TypeError, r"dtype: expected"),
        ({"input_size": 3, "hidden_size": 4, "dtype": "float16"}, TypeError, r"dtype: expected"),
        ({"input_size": 3, "hidden_size": 4, "rng": "seed"}, TypeError, r"rng: expected a numpy"),
    ],
)
def test_constructor_arguments_are_checked(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        numpy_lstm.LSTM(**kwargs)
