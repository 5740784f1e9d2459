"""Weights change only through the library, which says so: parameters are read-only arrays, and
every way of changing them — assignment, load_state_dict, an optimizer step, an editing block —
moves the weights' version on, so a kernel's prepared copy of the weights is never stale."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

import numpy_lstm
from numpy_lstm import kernels
from numpy_lstm.core.cell import LSTMWeights
from numpy_lstm.kernels import use_fast
from numpy_lstm.kernels.versions import weights_version
from numpy_lstm.train.optim import SGD

I, H = 5, 7


def torch_output(lstm: numpy_lstm.LSTM, x: np.ndarray) -> np.ndarray:
    """The independent oracle: torch's nn.LSTM with our current weights."""
    theirs = torch.nn.LSTM(I, H, dtype=torch.float64)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    with torch.no_grad():
        return theirs(torch.from_numpy(x))[0].numpy()


def assign(lstm: numpy_lstm.LSTM) -> None:
    lstm.weight_hh_l0 = lstm.weight_hh_l0 * 0.5


def load(lstm: numpy_lstm.LSTM) -> None:
    state = lstm.state_dict()
    state["bias_ih_l0"] = state["bias_ih_l0"] + 1.0
    lstm.load_state_dict(state)


def optimizer_step(lstm: numpy_lstm.LSTM) -> None:
    lstm.zero_grad()
    out, _ = lstm(np.ones((3, 2, I)))
    lstm.backward(np.ones_like(out))
    SGD(lstm, lr=0.5).step()


def edit_in_place(lstm: numpy_lstm.LSTM) -> None:
    with lstm.editing():
        lstm.weight_ih_l0[0, :] = 3.0


CHANGES: dict[str, Callable[[numpy_lstm.LSTM], None]] = {
    "assignment": assign,
    "load_state_dict": load,
    "optimizer step": optimizer_step,
    "editing block": edit_in_place,
}


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("change", CHANGES)
def test_every_way_of_changing_weights_reaches_the_next_call(
    rng: np.random.Generator, change: str, fast: bool
) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    x = rng.standard_normal((6, 3, I))
    with use_fast(fast):
        before = lstm(x)[0]
        lstm(x)  # twice: a kernel may have prepared the weights by now
        version = weights_version()
        CHANGES[change](lstm)
        assert weights_version() != version
        after = lstm(x)[0]
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, torch_output(lstm, x), rtol=1e-10, atol=1e-10)


def test_inside_an_editing_block_every_call_sees_the_latest_weights(
    rng: np.random.Generator,
) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    x = rng.standard_normal((4, 2, I))
    with lstm.editing():
        first = lstm(x)[0]
        lstm.bias_hh_l0[:] += 0.5  # an edit between two calls of one block
        second = lstm(x)[0]
        assert weights_version() != weights_version()  # nothing prepared is reused here
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, torch_output(lstm, x), rtol=1e-10, atol=1e-10)


def test_parameters_cannot_be_edited_behind_the_librarys_back(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    with pytest.raises(ValueError, match="read-only"):
        lstm.weight_ih_l0[0, 0] = 1.0
    for _, param in lstm.named_parameters():
        with pytest.raises(ValueError, match="read-only"):
            param *= 2
    with lstm.editing():
        lstm.weight_ih_l0[0, 0] = 1.0
    assert lstm.weight_ih_l0[0, 0] == 1.0 and not lstm.weight_ih_l0.flags.writeable


def test_an_error_inside_an_editing_block_leaves_the_weights_read_only(
    rng: np.random.Generator,
) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    version = weights_version()
    with pytest.raises(RuntimeError), lstm.editing():
        lstm.bias_ih_l0[0] = 2.0
        raise RuntimeError("half-way")
    assert not lstm.bias_ih_l0.flags.writeable and weights_version() != version


def test_prepared_weights_do_not_keep_a_model_alive(rng: np.random.Generator) -> None:
    import gc
    import weakref

    lstm = numpy_lstm.LSTM(I, H, dtype=np.float32, rng=rng)
    out, _ = lstm(rng.standard_normal((4, 2, I)).astype(np.float32))
    lstm.backward(np.ones_like(out))
    weight = weakref.ref(lstm.weight_hh_l0)
    del lstm, out
    gc.collect()
    assert weight() is None  # whatever a kernel prepared from it, it did not keep it


def test_editing_blocks_nest(rng: np.random.Generator) -> None:
    model = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    with model.editing():
        with model.editing():
            model.bias_ih_l0[0] = 1.0
        model.bias_ih_l0[1] = 2.0  # the outer block still edits after the inner one ends
    assert model.bias_ih_l0[:2].tolist() == [1.0, 2.0] and not model.bias_ih_l0.flags.writeable


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_handed_to_the_kernels_directly_may_be_edited_in_place(
    rng: np.random.Generator, dtype: type
) -> None:
    # Plain writable arrays, not parameters: nothing moves the weights' version on when they
    # change, so the kernels must not keep a prepared copy of them.
    shapes = [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]
    w = LSTMWeights(*(rng.standard_normal(shape).astype(dtype) for shape in shapes))
    x = rng.standard_normal((6, 3, I)).astype(dtype)
    h0 = c0 = np.zeros((3, H), dtype)
    kernels.sequence_forward(x, h0, c0, w)
    w.weight_hh[:] *= 2
    w.bias_ih[0] += 1
    edited = kernels.sequence_forward(x, h0, c0, w)[0]
    theirs = torch.nn.LSTM(I, H, dtype=torch.float64)
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    arrays = (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh)
    state = {n: torch.from_numpy(a.astype(np.float64)) for n, a in zip(names, arrays, strict=True)}
    theirs.load_state_dict(state)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x.astype(np.float64)))[0].numpy()
    tolerance = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(edited, expected, rtol=tolerance, atol=tolerance)
