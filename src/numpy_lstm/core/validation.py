"""Checks for user-supplied arrays, with messages that name the argument, the expectation and
what was received. The math modules trust their inputs; the layers call these first, so a bad
argument fails before anything is computed or mutated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_dtype(dtype: Any) -> np.dtype:
    """The `dtype=` argument of a layer → np.dtype('float32') or np.dtype('float64')."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from err
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {resolved}")
    return resolved


def resolve_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """`rng=` argument → a Generator. An int is a seed; None draws fresh OS entropy."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng: expected a numpy.random.Generator, an int seed or None, got {rng!r}")


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int ≥ `minimum` (bools and floats refused, NumPy integers accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise ValueError(f"{name}: expected {wanted}, got {value!r}")
    return int(value)


def check_probability(name: str, value: Any) -> float:
    """`value` as a float in [0, 1) (bools and non-numbers refused: TypeError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value}")
    return float(value)


def as_float_array(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """`value` as an ndarray of exactly `dtype`; never converts silently.

    Integer, boolean, complex and object data are rejected (TypeError), and so is a float
    array of the other precision: mixing float32 and float64 would silently upcast.
    """
    array = np.asarray(value)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a floating array of dtype {dtype}, got dtype {array.dtype}"
        )
    if array.dtype != dtype:
        raise TypeError(
            f"{name}: dtype {array.dtype} does not match the parameters' dtype {dtype}; "
            f"convert it with .astype(np.{dtype}) or build the layer with dtype=np.{array.dtype}"
        )
    return array


def check_shape(name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    if array.shape != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {array.shape}")


def check_finite(name: str, array: np.ndarray, where: np.ndarray | None = None) -> None:
    """Raise if `array` holds NaN or ±Inf — only where `where` (broadcastable bool) is True —
    pointing at the first offending element."""
    finite = np.isfinite(array)
    if where is not None:
        finite |= ~where
    if not finite.all():
        index = tuple(int(k) for k in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name}: contains a non-finite value ({array[index]}) at index {index} "
            f"of an array of shape {array.shape}"
        )


def valid_steps(lengths: Any, mask: Any, batch: int | None, steps: int) -> np.ndarray | None:
    """`lengths` or `mask` → a (B, T) bool array of valid steps (None if neither is given).

    batch is None for unbatched input: lengths is then one int and mask has shape (T,).
    lengths[b] = L means steps 0..L-1 are valid, L in [1, T]; a mask may be any pattern with at
    least one valid step per sequence.
    """
    if lengths is not None and mask is not None:
        raise ValueError("lengths, mask: give at most one of them (lengths L means mask = t < L)")
    expected = (steps,) if batch is None else (batch, steps)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths: expected integers, got dtype {lengths.dtype}")
        if lengths.shape != expected[:-1]:
            raise ValueError(f"lengths: expected shape {expected[:-1]}, got {lengths.shape}")
        if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
            raise ValueError(
                f"lengths: every length must be in [1, {steps}] (the sequence length), "
                f"got min {lengths.min()} and max {lengths.max()}"
            )
        mask = np.arange(steps) < lengths[..., None]
    elif mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask: expected a boolean array, got dtype {mask.dtype}")
        if mask.shape != expected:
            raise ValueError(f"mask: expected shape {expected} (batch, time), got {mask.shape}")
        empty = np.flatnonzero(~mask.reshape(-1, steps).any(axis=1))
        if empty.size:
            raise ValueError(f"mask: sequence {int(empty[0])} has no valid step")
    else:
        return None
    return mask.reshape(-1, steps)


def checked_input(
    name: str, value: Any, dtype: np.dtype, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """The usual trio for an input array: dtype, then shape (if given), then finiteness."""
    array = as_float_array(name, value, dtype)
    if shape is not None:
        check_shape(name, array, shape)
    check_finite(name, array)
    return array
