"""The fused pieces of a training step, against torch (autograd) and against the pure-NumPy path:
the compiled softmax cross-entropy (loss, gradient in place, the bias gradient in the same pass),
a Linear head fused with it, the embedding's scatter-add, and a char-LM step that uses them.

Every test runs with the fast path on and off (`use_fast(False)`): both must match torch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TORCH_DTYPE, to_torch
from numpy_lstm import Embedding, Linear
from numpy_lstm.kernels import use_fast
from numpy_lstm.kernels.training import scatter_add_rows, softmax_cross_entropy
from numpy_lstm.tasks import CharLMTask
from numpy_lstm.train.losses import (
    cross_entropy,
    linear_cross_entropy,
    linear_cross_entropy_loss,
)

TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-300)}
# Gradients of whole heads sum thousands of terms: float32 rounding grows with them.
HEAD_TOL = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-11, atol=1e-14)}


@pytest.fixture(params=[True, False], ids=["fast", "numpy"])
def fast(request: pytest.FixtureRequest) -> Iterator[bool]:
    with use_fast(request.param):
        yield request.param


def torch_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, counted: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """torch's F.cross_entropy (mean over counted rows) and its autograd gradient."""
    logits_t = to_torch(logits, requires_grad=True)
    classes = logits.shape[-1]
    kept = targets if counted is None else np.where(counted, targets, -100)
    loss = torch.nn.functional.cross_entropy(
        logits_t.reshape(-1, classes), torch.tensor(kept.reshape(-1)), ignore_index=-100
    )
    loss.backward()
    return loss.item(), logits_t.grad.numpy()


# -- the softmax cross-entropy --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 96), (33, 97), (6, 4, 13)])
def test_cross_entropy_matches_torch(
    rng: np.random.Generator, fast: bool, dtype: type, shape: tuple[int, ...]
) -> None:
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    targets = rng.integers(0, shape[-1], shape[:-1])
    before = logits.copy()

    loss, dlogits = cross_entropy(logits, targets)

    loss_t, grad_t = torch_cross_entropy(logits, targets)
    np.testing.assert_allclose(loss, loss_t, **TOL[dtype])
    assert dlogits.dtype == dtype and dlogits.shape == shape
    np.testing.assert_allclose(dlogits, grad_t, **TOL[dtype])
    np.testing.assert_array_equal(logits, before)  # the caller's logits are not overwritten


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ignored_and_masked_targets_pass_no_gradient(
    rng: np.random.Generator, fast: bool, dtype: type
) -> None:
    logits = rng.standard_normal((10, 8, 31)).astype(dtype)
    targets = rng.integers(0, 31, (10, 8))
    targets[rng.random((10, 8)) < 0.2] = -1  # ignore_index=-1
    mask = rng.random((10, 8)) < 0.7

    loss, dlogits = cross_entropy(logits, targets, ignore_index=-1, mask=mask)

    counted = (targets != -1) & mask
    loss_t, grad_t = torch_cross_entropy(logits, targets, counted)
    np.testing.assert_allclose(loss, loss_t, **TOL[dtype])
    np.testing.assert_allclose(dlogits, grad_t, **TOL[dtype])
    assert not dlogits[~counted].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_and_infinitely_negative_logits_stay_finite(
    rng: np.random.Generator, fast: bool, dtype: type
) -> None:
    """±1e4 logits (exp would overflow without the max shift; most probabilities underflow to 0),
    and −inf logits (a class ruled out) which get probability and gradient exactly 0."""
    logits = rng.uniform(-1e4, 1e4, (40, 50)).astype(dtype)
    logits[:, 3] = -np.inf
    targets = rng.integers(4, 50, 40)
    targets[:5] = logits[:5, 4:].argmax(axis=1) + 4  # some targets are the likeliest class

    loss, dlogits = cross_entropy(logits, targets)

    loss_t, grad_t = torch_cross_entropy(logits, targets)
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    np.testing.assert_allclose(loss, loss_t, **TOL[dtype])
    np.testing.assert_allclose(dlogits, grad_t, **TOL[dtype])
    assert not dlogits[:, 3].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_down_to_the_smallest_float64(
    rng: np.random.Generator, fast: bool, dtype: type
) -> None:
    """Logits spread over [−800, 0]: the softmax spans every exponent down to subnormals and 0,
    where the kernel switches from its polynomial to libm's exp."""
    logits = np.linspace(-800, 0, 4 * 300).reshape(4, 300).astype(dtype)
    targets = np.array([0, 299, 150, 299])

    loss, dlogits = cross_entropy(logits, targets)

    loss_t, grad_t = torch_cross_entropy(logits, targets)
    np.testing.assert_allclose(loss, loss_t, **TOL[dtype])
    np.testing.assert_allclose(dlogits, grad_t, **TOL[dtype])


def test_a_nan_logit_makes_the_loss_nan_as_numpy_does(fast: bool) -> None:
    logits = np.zeros((3, 5))
    logits[1, 2] = np.nan
    loss, dlogits = cross_entropy(logits, np.array([0, 1, 2]))
    assert np.isnan(loss) and np.isnan(dlogits[1]).all() and np.isfinite(dlogits[[0, 2]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernel_adds_the_bias_overwrites_the_logits_and_sums_the_columns(
    rng: np.random.Generator, fast: bool, dtype: type
) -> None:
    """out=logits: the gradient replaces the logits; the column sums are the bias gradient."""
    logits = rng.standard_normal((300, 37)).astype(dtype)
    bias = rng.standard_normal(37).astype(dtype)
    targets = rng.integers(0, 37, 300)
    counted = rng.random(300) < 0.9
    loss_t, grad_t = torch_cross_entropy(logits + bias, targets, counted)

    loss_only, nothing = softmax_cross_entropy(logits, targets, counted, bias=bias)
    loss, column_sums = softmax_cross_entropy(logits, targets, counted, bias=bias, out=logits)

    assert nothing is None
    np.testing.assert_allclose([loss_only, loss], loss_t, **TOL[dtype])
    np.testing.assert_allclose(logits, grad_t, **TOL[dtype])
    assert column_sums is not None
    np.testing.assert_allclose(column_sums, grad_t.sum(axis=0), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_and_numpy_paths_agree(rng: np.random.Generator, dtype: type) -> None:
    logits = rng.standard_normal((200, 96)).astype(dtype)
    targets = rng.integers(0, 96, 200)
    with use_fast(True):
        fast_result = cross_entropy(logits, targets)
    with use_fast(False):
        numpy_result = cross_entropy(logits, targets)
    np.testing.assert_allclose(fast_result[0], numpy_result[0], **TOL[dtype])
    np.testing.assert_allclose(fast_result[1], numpy_result[1], **TOL[dtype])


def test_the_kernel_refuses_what_its_loop_could_not_index(fast: bool) -> None:
    logits, targets, counted = np.zeros((3, 4)), np.array([0, 1, 2]), np.ones(3, bool)
    with pytest.raises(ValueError, match=r"targets: must be in \[0, 4\), got 0..4"):
        softmax_cross_entropy(logits, np.array([0, 4, 1]), counted)
    with pytest.raises(ValueError, match=r"counted: no row counts"):
        softmax_cross_entropy(logits, targets, np.zeros(3, bool))
    with pytest.raises(TypeError, match=r"targets: expected \(N,\) = \(3,\) integers"):
        softmax_cross_entropy(logits, targets[:2], counted)
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4\) and dtype float64"):
        softmax_cross_entropy(logits, targets, counted, out=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"bias: expected shape \(4,\)"):
        softmax_cross_entropy(logits, targets, counted, bias=np.zeros(3))
    with pytest.raises(ValueError, match=r"C-contiguous"):
        softmax_cross_entropy(np.zeros((4, 3)).T, targets, counted)
    # An uncounted row's target is never read: any value (here an ignore_index) is fine.
    some = np.array([True, False, True])
    loss, _ = softmax_cross_entropy(logits, np.array([0, -100, 2], np.int16), some)
    assert loss == pytest.approx(np.log(4), rel=1e-12)


# -- the fused head -------------------------------------------------------------------------------


def torch_head_and_loss(
    head: Linear, x: np.ndarray, targets: np.ndarray, counted: np.ndarray | None
) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """torch.nn.Linear with head's weights, then F.cross_entropy: loss, parameter grads, dx."""
    theirs = torch.nn.Linear(head.in_features, head.out_features, bias="bias" in head.grads)
    theirs = theirs.to(TORCH_DTYPE[head.dtype.type])
    theirs.load_state_dict({k: to_torch(v) for k, v in head.state_dict().items()})
    x_t = to_torch(x, requires_grad=True)
    logits = theirs(x_t)
    kept = targets if counted is None else np.where(counted, targets, -100)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, head.out_features), torch.tensor(kept.reshape(-1))
    )
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    return loss.item(), grads, x_t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(100, 32, 64), (257, 48)])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_head_matches_torch_autograd(
    rng: np.random.Generator,
    fast: bool,
    dtype: type,
    shape: tuple[int, ...],
    masked: bool,
) -> None:
    head = Linear(shape[-1], 96, dtype=dtype, rng=rng)
    x = rng.standard_normal(shape).astype(dtype)
    targets = rng.integers(0, 96, shape[:-1])
    mask = rng.random(shape[:-1]) < 0.6 if masked else None

    loss, dx = linear_cross_entropy(head, x, targets, mask=mask)

    loss_t, grads_t, dx_t = torch_head_and_loss(head, x, targets, mask)
    np.testing.assert_allclose(loss, loss_t, **TOL[dtype])
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, dx_t, **HEAD_TOL[dtype])
    for name, grad in grads_t.items():
        np.testing.assert_allclose(head.grads[name], grad, **HEAD_TOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_head_equals_the_unfused_calls_and_accumulates(
    rng: np.random.Generator, fast: bool, dtype: type
) -> None:
    """head.forward → cross_entropy → head.backward, twice, gives what the fused call does, twice
    (gradients add up); without a bias too. The loss-only call touches no gradient."""
    for bias in (True, False):
        fused = Linear(40, 23, bias=bias, dtype=dtype, rng=np.random.default_rng(1))
        plain = Linear(40, 23, bias=bias, dtype=dtype, rng=np.random.default_rng(1))
        for _ in range(2):
            x = rng.standard_normal((9, 7, 40)).astype(dtype)
            targets = rng.integers(0, 23, (9, 7))
            loss, dx = linear_cross_entropy(fused, x, targets)
            loss_plain, dlogits = cross_entropy(plain(x), targets)
            dx_plain = plain.backward(dlogits)
            np.testing.assert_allclose(loss, loss_plain, **TOL[dtype])
            np.testing.assert_allclose(dx, dx_plain, **HEAD_TOL[dtype])
        assert fused.grads.keys() == plain.grads.keys()
        for name, grad in plain.grads.items():
            np.testing.assert_allclose(fused.grads[name], grad, **HEAD_TOL[dtype])
        fused.zero_grad()
        assert linear_cross_entropy_loss(fused, x, targets) == pytest.approx(loss, rel=1e-5)
        assert not any(grad.any() for grad in fused.grads.values())


def test_fused_head_refuses_what_the_head_and_the_loss_refuse(fast: bool) -> None:
    head = Linear(4, 3, dtype=np.float64, rng=0)
    x, targets = np.zeros((2, 4)), np.array([0, 2])
    with pytest.raises(TypeError, match=r"x: dtype float32 does not match"):
        linear_cross_entropy(head, x.astype(np.float32), targets)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 4\), got \(2, 5\)"):
        linear_cross_entropy(head, np.zeros((2, 5)), targets)
    with pytest.raises(
        ValueError, match=r"x: contains a non-finite value \(nan\) at index \(1, 0\)"
    ):
        linear_cross_entropy(head, np.array([[0.0] * 4, [np.nan] + [0.0] * 3]), targets)
    with pytest.raises(ValueError, match=r"cross_entropy: targets must be in \[0, 3\), got 0..3"):
        linear_cross_entropy(head, x, np.array([0, 3]))
    with pytest.raises(TypeError, match=r"cross_entropy: targets must be integers"):
        linear_cross_entropy(head, x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"cross_entropy: no target counts"):
        linear_cross_entropy(head, x, targets, mask=np.array([False, False]))
    assert not any(grad.any() for grad in head.grads.values())


# -- the embedding's scatter-add ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_adds_repeated_ids_like_torch(
    rng: np.random.Generator, fast: bool, dtype: type
) -> None:
    ours = Embedding(11, 6, dtype=dtype, rng=rng)
    theirs = torch.nn.Embedding(11, 6).to(TORCH_DTYPE[dtype])
    theirs.weight.data = to_torch(ours.weight.copy())
    ids = rng.integers(0, 4, (30, 5))  # ids 0..3 repeat many times; 4..10 never occur
    dy = rng.standard_normal((30, 5, 6)).astype(dtype)

    ours(ids)
    ours.backward(dy)
    theirs(torch.tensor(ids)).backward(to_torch(dy))

    expected = theirs.weight.grad.numpy()
    if dtype == np.float64:  # the same additions in the same order: exactly torch's result
        np.testing.assert_array_equal(ours.grads["weight"], expected)
    else:
        np.testing.assert_allclose(ours.grads["weight"], expected, rtol=1e-6, atol=1e-6)
    assert not ours.grads["weight"][4:].any()
    ours.backward(dy)  # a second backward adds to the first
    np.testing.assert_allclose(ours.grads["weight"], 2 * expected, rtol=1e-6, atol=1e-6)


def test_scatter_add_refuses_ids_out_of_range(fast: bool) -> None:
    target = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"ids: must be in \[0, 3\), got 0..3"):
        scatter_add_rows(target, np.array([0, 3]), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"ids: must be in \[0, 3\), got -1..1"):
        scatter_add_rows(target, np.array([-1, 1]), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"rows: expected shape \(2, 2\) and dtype float64"):
        scatter_add_rows(target, np.array([0, 1]), np.ones((2, 2), np.float32))
    assert not target.any()


# -- a char-LM training step ----------------------------------------------------------------------


class TorchCharLM(torch.nn.Module):
    """CharLM's model in torch, with the same parameter names."""

    def __init__(self, vocab: int, embedding_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embedding_dim)
        self.lstm = torch.nn.LSTM(embedding_dim, hidden, layers)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        return self.head(self.lstm(self.embedding(ids), state)[0])


@pytest.mark.parametrize("stride", [None, 5])
def test_a_charlm_training_step_has_torchs_gradients(
    tmp_path: Path, fast: bool, stride: int | None
) -> None:
    """Two steps (the second starts from the carried state) of a 2-layer char-LM in float64:
    each step's loss and every parameter's gradient equal torch autograd's for the same
    weights, window and counted targets (with stride < bptt only the last 5 of 12 count)."""
    text = tmp_path / "text.txt"
    text.write_text("def f(x):\n    return [x * 2 for x in range(10)]  # ça va\n" * 30)
    task = CharLMTask(
        str(text),
        embedding_dim=8,
        hidden_size=16,
        num_layers=2,
        batch_size=4,
        bptt=12,
        stride=stride,
        dtype="float64",
    )
    theirs = TorchCharLM(len(task.vocab), 8, 16, 2).double()
    theirs.load_state_dict({k: to_torch(v) for k, v in task.model.state_dict().items()})
    k1, k2 = task.stride, task.bptt
    for _ in range(2):
        start, carried = task.position, task.carried.value
        task.model.zero_grad()
        loss = task.train_step()

        window = task.train_streams[start : start + k2 + 1]
        state = None if carried is None else tuple(to_torch(s.copy()) for s in carried)
        theirs.zero_grad()
        logits = theirs(torch.tensor(window[:-1]), state)
        counted = np.zeros(window[1:].shape, dtype=bool)
        counted[k2 - k1 :] = True
        targets = np.where(counted, window[1:], -100)
        loss_t = torch.nn.functional.cross_entropy(
            logits[k2 - k1 :].reshape(-1, len(task.vocab)),
            torch.tensor(targets[k2 - k1 :].reshape(-1)),
        )
        loss_t.backward()

        assert loss == pytest.approx(loss_t.item(), rel=1e-12)
        for name, param in theirs.named_parameters():
            np.testing.assert_allclose(
                task.model.grads[name], param.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name
            )


def test_charlm_evaluation_is_torchs_cross_entropy_over_the_validation_text(
    tmp_path: Path, fast: bool
) -> None:
    """evaluate() streams the validation text in bptt chunks, the state carried: its loss is the
    mean cross-entropy of one torch forward over the whole validation streams."""
    text = tmp_path / "text.txt"
    text.write_text("for k in range(10):\n    print(k ** 2, 'ok')\n" * 60)
    task = CharLMTask(
        str(text), embedding_dim=8, hidden_size=16, batch_size=4, bptt=7, dtype="float64"
    )
    theirs = TorchCharLM(len(task.vocab), 8, 16, 1).double()
    theirs.load_state_dict({k: to_torch(v) for k, v in task.model.state_dict().items()})
    streams = task.val_streams
    with torch.no_grad():
        logits = theirs(torch.tensor(streams[:-1]), None)
        loss_t = torch.nn.functional.cross_entropy(
            logits.reshape(-1, len(task.vocab)), torch.tensor(streams[1:].reshape(-1))
        ).item()
    metrics = task.evaluate()
    assert metrics["loss"] == pytest.approx(loss_t, rel=1e-12)
    assert metrics["bpc"] == pytest.approx(loss_t / np.log(2), rel=1e-12)
