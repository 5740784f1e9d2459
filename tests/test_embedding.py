"""numpy_lstm.Embedding against torch.nn.Embedding: lookups and gradients with repeated indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import to_torch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_matches_torch(rng: np.random.Generator, dtype: type) -> None:
    ours = numpy_lstm.Embedding(10, 4, dtype=dtype, rng=rng)
    theirs = torch.nn.Embedding(
        10, 4, dtype=torch.float32 if dtype == np.float32 else torch.float64
    )
    theirs.load_state_dict({k: to_torch(v) for k, v in ours.state_dict().items()})
    idx = rng.integers(0, 10, size=(5, 3))
    idx[0, :] = 7  # repeated rows must add up
    dy = rng.standard_normal((5, 3, 4)).astype(dtype)
    y = ours(idx)
    ours.backward(dy)
    y_t = theirs(torch.tensor(idx))
    (y_t * to_torch(dy)).sum().backward()
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_allclose(ours.grads["weight"], theirs.weight.grad.numpy(), rtol=1e-6)


def test_embedding_init_is_standard_normal() -> None:
    weight = numpy_lstm.Embedding(500, 40, rng=0).weight
    assert abs(weight.mean()) < 0.02 and abs(weight.std() - 1) < 0.02


def test_embedding_errors() -> None:
    embedding = numpy_lstm.Embedding(5, 2)
    with pytest.raises(TypeError, match=r"idx: expected integer indices, got dtype float64"):
        embedding(np.zeros(3))
    with pytest.raises(ValueError, match=r"idx: indices must be in \[0, 5\), got min 0 and max 5"):
        embedding(np.array([0, 5]))
    with pytest.raises(ValueError, match=r"Embedding.backward\(\) called before forward"):
        embedding.backward(np.zeros((1, 2), np.float32))
