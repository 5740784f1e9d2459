"""numpy_lstm.RNN (the plain Elman RNN) computes what torch.nn.RNN computes, and its BPTT is the
derivative of its forward (central finite differences in float64)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import TOLERANCE, TORCH_DTYPE, numerical_gradient

DTYPES = [np.float32, np.float64]

# (T, B, I, H, num_layers, nonlinearity, bias, batch_first, unbatched)
CASES = [
    (1, 1, 1, 1, 1, "tanh", True, False, False),
    (7, 3, 4, 5, 1, "tanh", True, False, False),
    (6, 2, 3, 4, 1, "tanh", False, True, False),
    (5, 4, 2, 6, 2, "tanh", True, True, False),
    (9, 1, 3, 3, 3, "relu", True, False, False),
    (4, 2, 5, 2, 1, "relu", False, False, False),
    (8, 1, 3, 4, 2, "tanh", True, False, True),
]


def distinct_state(
    rng: np.random.Generator, rnn: numpy_lstm.RNN, dtype: type
) -> dict[str, np.ndarray]:
    """Random parameters, each tensor with its own scale and offset, so that swapping any two
    (W_ih for W_hh, b_ih for b_hh) changes the result."""
    return {
        name: (rng.uniform(-1, 1, value.shape) * (0.5 + 0.15 * k) + 0.05 * (k - 2)).astype(dtype)
        for k, (name, value) in enumerate(rnn.state_dict().items())
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_rnn_matches_torch_forward_and_all_gradients(dtype: type, case: tuple) -> None:
    T, B, I, H, L, nonlinearity, bias, batch_first, unbatched = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))  # not hash(): salted per run
    ours = numpy_lstm.RNN(
        I, H, L, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first, dtype=dtype
    )
    state = distinct_state(rng, ours, dtype)
    ours.load_state_dict(state)
    theirs = torch.nn.RNN(
        I, H, L, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first
    ).to(TORCH_DTYPE[dtype])
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    assert list(ours.state_dict()) == list(theirs.state_dict())

    x_shape = (T, I) if unbatched else ((B, T, I) if batch_first else (T, B, I))
    h_shape = (L, H) if unbatched else (L, B, H)
    x = rng.standard_normal(x_shape).astype(dtype)
    h0 = (0.5 * rng.standard_normal(h_shape)).astype(dtype)
    out, h_n = ours(x, h0)
    x_t = torch.from_numpy(x).requires_grad_()
    h0_t = torch.from_numpy(h0).requires_grad_()
    out_t, h_n_t = theirs(x_t, h0_t)

    d_out = rng.standard_normal(out.shape).astype(dtype)
    dh_n = rng.standard_normal(h_n.shape).astype(dtype)
    dx, dh0 = ours.backward(d_out, dh_n)
    torch.autograd.backward([out_t, h_n_t], [torch.from_numpy(d_out), torch.from_numpy(dh_n)])

    pairs = {
        "out": (out, out_t),
        "h_n": (h_n, h_n_t),
        "dx": (dx, x_t.grad),
        "dh0": (dh0, h0_t.grad),
    }
    pairs |= {f"grad {n}": (ours.grads[n], p.grad) for n, p in theirs.named_parameters()}
    for what, (mine, ref) in pairs.items():
        assert mine.dtype == dtype, f"{what}: dtype {mine.dtype}"
        assert ref is not None
        expected = ref.detach().numpy()
        # A weight gradient sums T·B products: float32 rounding grows with the array's largest
        # entries (up to ~20 here), so the absolute tolerance is taken relative to them.
        scale = max(1.0, float(np.abs(expected).max()))
        tolerance = TOLERANCE[dtype]
        np.testing.assert_allclose(
            mine, expected, rtol=tolerance["rtol"], atol=tolerance["atol"] * scale, err_msg=what
        )


def test_rnn_default_init_is_torch_uniform_bound() -> None:
    rnn = numpy_lstm.RNN(3, 16, 2, dtype=np.float64, rng=0)
    bound = 1 / np.sqrt(16)
    for name, value in rnn.state_dict().items():
        assert np.abs(value).max() <= bound, name
        assert np.abs(value).max() > 0.8 * bound, name  # spread over the range, not near zero
    assert rnn.weight_ih_l0.shape == (16, 3) and rnn.weight_hh_l1.shape == (16, 16)


def test_rnn_gradients_accumulate_over_calls() -> None:
    rnn = numpy_lstm.RNN(2, 3, dtype=np.float64, rng=1)
    x = np.random.default_rng(2).standard_normal((4, 2, 2))
    rnn(x)
    rnn.backward(np.ones((4, 2, 3)))
    once = {k: v.copy() for k, v in rnn.grads.items()}
    rnn(x)
    rnn.backward(np.ones((4, 2, 3)))
    for name, grad in rnn.grads.items():
        np.testing.assert_allclose(grad, 2 * once[name], rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_finite_difference_gradients(nonlinearity: str) -> None:
    """L = Σ w_out·out + Σ w_h·h_n; every analytic gradient (x, h0, each parameter) against
    central differences with step 1e-6 in float64."""
    T, B, I, H, L = 5, 2, 3, 4, 2
    rng = np.random.default_rng(7)
    rnn = numpy_lstm.RNN(I, H, L, nonlinearity=nonlinearity, dtype=np.float64, rng=3)
    x = rng.standard_normal((T, B, I))
    h0 = 0.5 * rng.standard_normal((L, B, H))
    w_out, w_h = rng.standard_normal((T, B, H)), rng.standard_normal((L, B, H))

    def loss() -> float:
        out, h_n = rnn(x, h0)
        return float((w_out * out).sum() + (w_h * h_n).sum())

    loss()
    dx, dh0 = rnn.backward(w_out, w_h)
    analytic = {"x": dx, "h0": dh0, **{k: v.copy() for k, v in rnn.grads.items()}}
    arrays = {"x": x, "h0": h0, **rnn._params}
    with rnn.editing():  # the parameters are perturbed in place
        for name, array in arrays.items():
            numeric = numerical_gradient(loss, array, eps=1e-6)
            np.testing.assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_rnn_record_gives_the_total_gradient_at_every_step() -> None:
    """backward_pass(record=True)'s dh[t] is ∂L/∂h_t (torch: retain_grad on every step's h)."""
    T, B, I, H = 6, 2, 3, 4
    rng = np.random.default_rng(5)
    rnn = numpy_lstm.RNN(I, H, dtype=np.float64, rng=4)
    x = rng.standard_normal((T, B, I))
    d_out = rng.standard_normal((T, B, H))
    rnn(x)
    _, _, (grads,) = rnn.backward_pass(d_out, record=True)
    assert grads.dh is not None
    w = {k: torch.from_numpy(v) for k, v in rnn.state_dict().items()}
    h = torch.zeros(B, H, dtype=torch.float64, requires_grad=True)
    hs = []
    for t in range(T):
        h = torch.tanh(
            torch.from_numpy(x[t]) @ w["weight_ih_l0"].T
            + w["bias_ih_l0"]
            + h @ w["weight_hh_l0"].T
            + w["bias_hh_l0"]
        )
        h.retain_grad()
        hs.append(h)
    (torch.stack(hs) * torch.from_numpy(d_out)).sum().backward()
    for t in range(T):
        np.testing.assert_allclose(grads.dh[t], hs[t].grad.numpy(), rtol=1e-12, atol=1e-12)
    assert all(not g.any() for g in rnn.grads.values())  # backward_pass leaves grads alone


@pytest.mark.parametrize(
    ("make", "kind", "match"),
    [
        (lambda: numpy_lstm.RNN(0, 3), ValueError, "input_size"),
        (lambda: numpy_lstm.RNN(2, 3, nonlinearity="sigmoid"), ValueError, "nonlinearity"),
        (lambda: numpy_lstm.RNN(2, 3, num_layers=0), ValueError, "num_layers"),
        (lambda: numpy_lstm.RNN(2, 3, dtype=np.int32), TypeError, "dtype"),
        (lambda: numpy_lstm.RNN(2, 3)(np.zeros((4, 1, 5), np.float32)), ValueError, "x: expected"),
        (lambda: numpy_lstm.RNN(2, 3)(np.zeros((4, 1, 2))), TypeError, "x: dtype float64"),
        (lambda: numpy_lstm.RNN(2, 3)(np.zeros((0, 1, 2), np.float32)), ValueError, "empty"),
        (
            lambda: numpy_lstm.RNN(2, 3)(np.full((4, 1, 2), np.nan, np.float32)),
            ValueError,
            "x: contains a non-finite",
        ),
        (
            lambda: numpy_lstm.RNN(2, 3)(np.zeros((4, 1, 2), np.float32), np.zeros((1, 2, 3))),
            TypeError,
            "h0",
        ),
        (
            lambda: numpy_lstm.RNN(2, 3)(
                np.zeros((4, 1, 2), np.float32), np.zeros((2, 1, 3), np.float32)
            ),
            ValueError,
            r"h0: expected shape \(1, 1, 3\)",
        ),
        (lambda: numpy_lstm.RNN(2, 3).backward(None, None), ValueError, "before forward"),
    ],
)
def test_rnn_bad_inputs_fail_clearly(make, kind: type, match: str) -> None:
    with pytest.raises(kind, match=match):
        make()


def test_rnn_bad_upstream_gradient_fails_before_touching_grads() -> None:
    rnn = numpy_lstm.RNN(2, 3, rng=0)
    rnn(np.zeros((4, 1, 2), np.float32))
    with pytest.raises(ValueError, match=r"d_out: expected shape \(4, 1, 3\)"):
        rnn.backward(np.ones((4, 1, 2), np.float32))
    assert all(not g.any() for g in rnn.grads.values())


def test_adding_task_builds_a_plain_rnn_on_request_and_an_lstm_by_default() -> None:
    """`cell="rnn"` swaps the recurrent layer (parameters `rnn.*`, torch's shapes); the default
    and a config saved before the option existed (no "cell") keep the LSTM and its `lstm.*`
    keys, so old checkpoints load unchanged."""
    from numpy_lstm.tasks import AddingTask
    from numpy_lstm.train.task import build_task

    rnn_task = AddingTask(T=6, hidden_size=4, eval_size=8, cell="rnn")
    assert isinstance(rnn_task.model.recurrent, numpy_lstm.RNN)
    shapes = {k: v.shape for k, v in rnn_task.model.state_dict().items()}
    assert shapes == {
        "rnn.weight_ih_l0": (4, 2),
        "rnn.weight_hh_l0": (4, 4),
        "rnn.bias_ih_l0": (4,),
        "rnn.bias_hh_l0": (4,),
        "head.weight": (1, 4),
        "head.bias": (1,),
    }
    assert np.isfinite(rnn_task.train_step())
    assert any(g.any() for g in rnn_task.model.grads.values())
    assert build_task("adding", rnn_task.config()).config()["cell"] == "rnn"

    lstm_task = AddingTask(T=6, hidden_size=4, eval_size=8)
    old_config = {k: v for k, v in lstm_task.config().items() if k != "cell"}
    rebuilt = build_task("adding", old_config)
    assert isinstance(rebuilt.model.recurrent, numpy_lstm.LSTM)
    assert list(rebuilt.model.state_dict()) == list(lstm_task.model.state_dict())
    assert "lstm.weight_ih_l0" in lstm_task.model.state_dict()
    with pytest.raises(ValueError, match=r"cell: expected one of \('lstm', 'rnn'\), got 'gru'"):
        AddingTask(cell="gru")


def test_cli_trains_and_resumes_the_adding_task_with_a_plain_rnn(tmp_path: Path) -> None:
    """`numpy-lstm train adding --cell rnn` writes a checkpoint that `--resume` continues (the
    resume's size check counts an RNN's H² recurrent weights, not an LSTM's 4H²)."""
    from numpy_lstm.cli import main
    from numpy_lstm.train.checkpoint import read_checkpoint

    checkpoint = str(tmp_path / "rnn.ckpt")
    tiny = ["--T", "6", "--hidden-size", "4", "--batch-size", "2", "--eval-size", "4"]
    steps = ["--eval-every", "1", "--threads", "1", "--no-progress"]
    argv = ["train", "adding", *tiny, "--cell", "rnn", "--steps", "1", *steps]
    assert main([*argv, "--checkpoint", checkpoint]) == 0
    assert main(["train", "adding", "--resume", checkpoint, "--steps", "2", *steps]) == 0
    loaded = read_checkpoint(checkpoint)
    assert "rnn.weight_hh_l0" in loaded.model
