"""Cross-entropy and BCE-with-logits against torch.nn.functional: values and autograd gradients,
including ignored targets, masks, extreme logits and the errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import to_torch
from numpy_lstm.train.losses import bce_with_logits, cross_entropy

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
def test_cross_entropy_matches_torch(rng: np.random.Generator, dtype: type, shape: tuple) -> None:
    classes = 7
    logits = (3 * rng.standard_normal((*shape, classes))).astype(dtype)
    targets = rng.integers(0, classes, size=shape)
    targets.reshape(-1)[::3] = -100  # some ignored
    loss, dlogits = cross_entropy(logits, targets)
    logits_t = to_torch(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(
        logits_t.reshape(-1, classes), torch.tensor(targets.reshape(-1)), ignore_index=-100
    )
    loss_t.backward()
    assert dlogits.dtype == dtype
    np.testing.assert_allclose(loss, loss_t.item(), **TOL[dtype])
    np.testing.assert_allclose(dlogits, logits_t.grad.numpy(), **TOL[dtype])


def test_a_mask_equals_ignoring_those_targets(rng: np.random.Generator) -> None:
    logits = rng.standard_normal((3, 6, 5))
    targets = rng.integers(0, 5, size=(3, 6))
    mask = rng.random((3, 6)) < 0.6
    mask[0, 0] = True
    loss, dlogits = cross_entropy(logits, targets, mask=mask)
    logits_t = to_torch(logits, requires_grad=True)
    ignored = torch.tensor(np.where(mask, targets, -1).reshape(-1))
    loss_t = torch.nn.functional.cross_entropy(logits_t.reshape(-1, 5), ignored, ignore_index=-1)
    loss_t.backward()
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-12)
    np.testing.assert_allclose(dlogits, logits_t.grad.numpy(), atol=1e-14)
    assert not dlogits[~mask].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype: type) -> None:
    logits = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 2e4]], dtype=dtype)
    targets = np.array([0, 2])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
        warnings.simplefilter("error")
        loss, dlogits = cross_entropy(logits, targets)
    logits_t = to_torch(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(targets))
    loss_t.backward()
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-6)
    np.testing.assert_allclose(dlogits, logits_t.grad.numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "logits, targets, kwargs, error, message",
    [
        (np.zeros((2, 3)), np.zeros(2, np.float64), {}, TypeError, "targets must be integers"),
        (np.zeros((2, 3)), np.zeros(3, int), {}, ValueError, r"targets have shape \(3,\)"),
        (np.zeros((2, 3)), np.array([0, 3]), {}, ValueError, r"targets must be in \[0, 3\)"),
        (np.zeros((2, 3), int), np.zeros(2, int), {}, TypeError, "logits must be a float"),
        (np.zeros((2, 3)), np.full(2, -100), {}, ValueError, "no target counts"),
        (np.zeros((2, 3)), np.zeros(2, int), {"mask": np.ones(2)}, ValueError, "mask must be"),
    ],
)
def test_cross_entropy_errors(logits, targets, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        cross_entropy(logits, targets, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_matches_torch(rng: np.random.Generator, dtype: type) -> None:
    logits = np.concatenate([10 * rng.standard_normal(20), [1e4, -1e4, 0.0]]).astype(dtype)
    targets = rng.random(23).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dlogits = bce_with_logits(logits, targets)
    logits_t = to_torch(logits, requires_grad=True)
    loss_t = torch.nn.functional.binary_cross_entropy_with_logits(logits_t, to_torch(targets))
    loss_t.backward()
    assert dlogits.dtype == dtype
    np.testing.assert_allclose(loss, loss_t.item(), **TOL[dtype])
    np.testing.assert_allclose(dlogits, logits_t.grad.numpy(), **TOL[dtype])


def test_bce_errors() -> None:
    with pytest.raises(ValueError, match=r"targets have shape \(2,\), logits \(3,\)"):
        bce_with_logits(np.zeros(3), np.zeros(2))
    with pytest.raises(TypeError, match="targets: dtype float32 does not match"):
        bce_with_logits(np.zeros(3), np.zeros(3, np.float32))
