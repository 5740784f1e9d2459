"""Next-character predictions and their saliency: the probabilities are torch's softmax, and the
windowed gradient × input equals a full-sequence trace.backward (and torch autograd) at every
step checked, early steps included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import to_torch
from numpy_lstm.inspect.predict import Predictions, next_characters, softmax

V, E, H, T, W = 9, 3, 6, 40, 8
ALPHABET = list("abcdefgh\n")


def char_lm(
    rng: np.random.Generator, num_layers: int = 2, dtype: type = np.float64, **options: object
):
    """A char-LM's parts, weights scaled up so the predictions are confident and varied."""
    embedding = numpy_lstm.Embedding(V, E, dtype=dtype, rng=rng)
    lstm = numpy_lstm.LSTM(E, H, num_layers=num_layers, dtype=dtype, rng=rng, **options)
    head = numpy_lstm.Linear(H, V, dtype=dtype, rng=rng)
    lstm.load_state_dict({k: 2.5 * v for k, v in lstm.state_dict().items()})
    head.load_state_dict({k: 4 * v for k, v in head.state_dict().items()})
    return embedding, lstm, head


def torch_model(embedding, lstm, head) -> tuple[torch.nn.LSTM, torch.nn.Linear]:
    torch_lstm = torch.nn.LSTM(E, H, num_layers=lstm.num_layers, dtype=torch.float64)
    torch_lstm.load_state_dict({k: to_torch(v) for k, v in lstm.state_dict().items()})
    torch_head = torch.nn.Linear(H, V, dtype=torch.float64)
    torch_head.load_state_dict({k: to_torch(v) for k, v in head.state_dict().items()})
    return torch_lstm, torch_head


@pytest.fixture
def text_ids(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, V, T)


def test_probabilities_are_torchs_softmax_and_the_top_k_its_topk(
    rng: np.random.Generator, text_ids: np.ndarray
) -> None:
    embedding, lstm, head = char_lm(rng)
    preds = next_characters(embedding, lstm, head, text_ids, ALPHABET, k=4, window=W)
    torch_lstm, torch_head = torch_model(embedding, lstm, head)
    x = to_torch(embedding.weight[text_ids][:, None])
    p = torch.softmax(torch_head(torch_lstm(x)[0][:, 0]), dim=-1).detach()
    top_p, top_ids = torch.topk(p, 4, dim=-1)
    assert isinstance(preds, Predictions) and (preds.steps, preds.k, preds.window) == (T, 4, W)
    assert preds.alphabet == ALPHABET
    np.testing.assert_array_equal(preds.top_ids, top_ids.numpy())
    np.testing.assert_allclose(preds.top_p, top_p.numpy(), rtol=1e-12, atol=1e-15)
    assert preds.top_ids.dtype == np.int64 and preds.top_p.dtype == np.float64
    assert (np.diff(preds.top_p, axis=1) <= 0).all()  # likeliest first


def test_softmax_is_stable_for_large_logits() -> None:
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [3.0, 3.0, 3.0]], dtype=np.float32))
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-15)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("chunk_values", [None, 1])  # default chunks, or one window per chunk
# the plain cell backs through the recorded steps; others (peepholes) rerun each window
@pytest.mark.parametrize("peephole", [False, True])
def test_saliency_equals_a_full_sequence_backward_at_each_step(
    rng: np.random.Generator,
    text_ids: np.ndarray,
    num_layers: int,
    chunk_values: int | None,
    peephole: bool,
) -> None:
    """saliency[t, lag] = Σ x_{t−lag} ⊙ ∂ log p_t(top-1)/∂x_{t−lag}, the gradient from
    trace.backward over the whole text with the upstream gradient at step t only."""
    embedding, lstm, head = char_lm(rng, num_layers, peephole=peephole)
    options = {} if chunk_values is None else {"chunk_values": chunk_values}
    preds = next_characters(embedding, lstm, head, text_ids, ALPHABET, window=W, **options)
    x = embedding.weight[text_ids][:, None]  # (T, 1, E)
    for t in (0, 3, W - 2, W - 1, W, W + 1, 25, T - 1):
        tr = numpy_lstm.trace(lstm, x)
        logits = head(tr.layer(num_layers - 1).h)  # (T, 1, V)
        p = torch.softmax(to_torch(logits[t, 0]), dim=-1).numpy()
        target = int(np.argmax(p))
        d_logits = np.zeros_like(logits)
        d_logits[t, 0] = -p
        d_logits[t, 0, target] += 1  # ∂ log p(target) / ∂ logits
        tr.backward(head.backward(d_logits))
        gradient_x_input = (x * tr.input_grad)[:, 0].sum(axis=-1)  # (T,)
        expected = np.zeros(W)
        lags = np.arange(min(W, t + 1))
        expected[lags] = gradient_x_input[t - lags]
        assert preds.top_ids[t, 0] == target
        np.testing.assert_allclose(preds.saliency[t], expected, rtol=1e-10, atol=1e-12)
        assert np.abs(expected).max() > 1e-3  # the check is not of zeros


def test_windows_split_between_threads_give_the_full_backward(rng: np.random.Generator) -> None:
    from numpy_lstm.kernels.threads import set_num_threads

    embedding, lstm, head = char_lm(rng, 1)
    ids = rng.integers(0, V, 1200)
    previous = set_num_threads(2)  # two threads, the second from step 600
    try:
        preds = next_characters(embedding, lstm, head, ids, ALPHABET, window=W, max_steps=1200)
    finally:
        set_num_threads(previous)
    x = embedding.weight[ids][:, None]
    for t in (599, 600, 606, 1199):
        tr = numpy_lstm.trace(lstm, x)
        logits = head(tr.layer().h)
        p = torch.softmax(to_torch(logits[t, 0]), dim=-1).numpy()
        d_logits = np.zeros_like(logits)
        d_logits[t, 0] = -p
        d_logits[t, 0, np.argmax(p)] += 1
        tr.backward(head.backward(d_logits))
        gradient_x_input = (x * tr.input_grad)[:, 0].sum(axis=-1)
        np.testing.assert_allclose(
            preds.saliency[t], gradient_x_input[t - np.arange(W)], rtol=1e-10, atol=1e-12
        )


def test_saliency_equals_torch_autograd(rng: np.random.Generator, text_ids: np.ndarray) -> None:
    embedding, lstm, head = char_lm(rng)
    preds = next_characters(embedding, lstm, head, text_ids, ALPHABET, window=W)
    torch_lstm, torch_head = torch_model(embedding, lstm, head)
    t = 30
    x = to_torch(embedding.weight[text_ids][:, None], requires_grad=True)
    log_p = torch.log_softmax(torch_head(torch_lstm(x)[0][t, 0]), dim=-1)
    log_p[log_p.argmax()].backward()
    saliency = (x * x.grad).sum(-1)[:, 0].detach().numpy()
    np.testing.assert_allclose(preds.saliency[t], saliency[t - np.arange(W)], atol=1e-12)


def test_a_batch_first_lstm_gives_the_same_predictions(
    rng: np.random.Generator, text_ids: np.ndarray
) -> None:
    embedding, lstm, head = char_lm(rng)
    batch_first = numpy_lstm.LSTM(E, H, num_layers=2, batch_first=True, dtype=np.float64)
    batch_first.load_state_dict(lstm.state_dict())
    expected = next_characters(embedding, lstm, head, text_ids, ALPHABET, window=W)
    preds = next_characters(embedding, batch_first, head, text_ids, ALPHABET, window=W)
    np.testing.assert_array_equal(preds.top_ids, expected.top_ids)
    np.testing.assert_allclose(preds.top_p, expected.top_p, rtol=1e-12)
    np.testing.assert_allclose(preds.saliency, expected.saliency, rtol=1e-10, atol=1e-13)


def test_a_cap_keeps_the_first_steps_and_float32_works(
    rng: np.random.Generator, text_ids: np.ndarray
) -> None:
    embedding, lstm, head = char_lm(rng, dtype=np.float32)
    capped = next_characters(embedding, lstm, head, text_ids, ALPHABET, window=W, max_steps=12)
    full = next_characters(embedding, lstm, head, text_ids, ALPHABET, window=W)
    assert capped.steps == 12 and full.steps == T
    np.testing.assert_array_equal(capped.top_ids, full.top_ids[:12])
    np.testing.assert_allclose(capped.saliency, full.saliency[:12], rtol=1e-4, atol=1e-6)
    assert full.saliency.dtype == np.float64 and np.isfinite(full.saliency).all()
    np.testing.assert_allclose(full.top_p.sum(axis=1) <= 1 + 1e-12, True)
    # a window longer than the text: every step looks back to the first character
    short = next_characters(embedding, lstm, head, text_ids[:5], ALPHABET, window=W)
    assert short.saliency.shape == (5, W) and (short.saliency[:, 5:] == 0).all()
    assert (short.saliency[4, :5] != 0).all()
    assert not lstm.grads["weight_hh_l0"].any() and not head.grads["weight"].any()


def test_bad_arguments_are_refused_by_name(rng: np.random.Generator) -> None:
    embedding, lstm, head = char_lm(rng)
    ids = np.arange(5)
    with pytest.raises(ValueError, match="alphabet"):
        next_characters(embedding, lstm, head, ids, ALPHABET[:-1])
    with pytest.raises(ValueError, match="k: expected at most 9"):
        next_characters(embedding, lstm, head, ids, ALPHABET, k=10)
    with pytest.raises(ValueError, match="window"):
        next_characters(embedding, lstm, head, ids, ALPHABET, window=0)
    with pytest.raises(ValueError, match="ids"):
        next_characters(embedding, lstm, head, np.zeros((2, 2), int), ALPHABET)
    both_ways = numpy_lstm.LSTM(E, H // 2, bidirectional=True, dtype=np.float64)
    with pytest.raises(ValueError, match="bidirectional"):
        next_characters(embedding, both_ways, head, ids, ALPHABET)
    with pytest.raises(TypeError, match="head"):
        next_characters(embedding, lstm, lambda h: h, ids, ALPHABET)  # type: ignore[arg-type]
