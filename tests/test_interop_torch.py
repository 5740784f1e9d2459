"""PyTorch ⇄ numpy-lstm (numpy_lstm.io.torch): modules and state dicts convert exactly, the
converted models compute torch's outputs and gradients, and training continues in torch from
where numpy-lstm stopped, step for step."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import numpy_lstm
from conftest import TOLERANCE, assert_matches, distinct_gate_lstm_state, load_into_torch
from numpy_lstm.io.torch import (
    TorchSequenceModel,
    from_torch,
    model_from_state_dict,
    to_torch,
)
from numpy_lstm.nn.models import SequenceModel
from numpy_lstm.train.losses import mse_loss

T, B, I, H = 6, 3, 4, 5

CONFIGS = [
    {},
    {"num_layers": 2, "bidirectional": True},
    {"num_layers": 2, "proj_size": 3, "batch_first": True},
    {"bidirectional": True, "proj_size": 2, "bias": False},
    {"num_layers": 3, "dtype": np.float64},
]


def torch_module(rng: np.random.Generator, config: dict) -> nn.LSTM:
    config = dict(config)
    dtype = config.pop("dtype", np.float32)
    theirs = nn.LSTM(
        I, H, dtype={np.float32: torch.float32, np.float64: torch.float64}[dtype], **config
    )
    return load_into_torch(theirs, distinct_gate_lstm_state(rng, theirs, dtype))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "+".join(c) or "plain")
def test_from_torch_computes_torchs_outputs_and_gradients(
    rng: np.random.Generator, config: dict
) -> None:
    theirs = torch_module(rng, config)
    ours = from_torch(theirs)
    dtype = ours.dtype.type
    assert ours.config()["batch_first"] == theirs.batch_first
    shape = (B, T, I) if theirs.batch_first else (T, B, I)
    x = rng.standard_normal(shape).astype(dtype)
    x_t = torch.tensor(x, requires_grad=True)
    out_t, (h_t, c_t) = theirs(x_t)
    d_out, dh, dc = (rng.standard_normal(tuple(a.shape)).astype(dtype) for a in (out_t, h_t, c_t))
    (out_t * torch.tensor(d_out)).sum().add((h_t * torch.tensor(dh)).sum()).add(
        (c_t * torch.tensor(dc)).sum()
    ).backward()
    out, (h_n, c_n) = ours(x)
    dx, _ = ours.backward(d_out, (dh, dc))
    for name, a, b in (
        ("out", out, out_t),
        ("h_n", h_n, h_t),
        ("c_n", c_n, c_t),
        ("dx", dx, x_t.grad),
    ):
        assert_matches(a, b, dtype, name)
    for name, param in theirs.named_parameters():
        assert_matches(ours.grads[name], param.grad, dtype, f"d{name}")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "+".join(c) or "plain")
def test_round_trips_are_exact(rng: np.random.Generator, config: dict) -> None:
    theirs = torch_module(rng, config).eval()
    ours = from_torch(theirs)
    assert not ours.training
    back = to_torch(ours)
    assert type(back) is nn.LSTM and not back.training
    for name, tensor in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name], tensor.numpy())
        assert torch.equal(back.state_dict()[name], tensor), name
    for option in ("batch_first", "bidirectional", "num_layers", "proj_size", "bias", "dropout"):
        assert getattr(back, option) == getattr(theirs, option), option


def test_lstm_cell_and_linear_convert_both_ways(rng: np.random.Generator) -> None:
    cell_t = nn.LSTMCell(I, H)
    cell = from_torch(cell_t)
    x = rng.standard_normal((B, I)).astype(np.float32)
    h0, c0 = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    x_t = torch.tensor(x, requires_grad=True)
    h_t, c_t = cell_t(x_t, (torch.tensor(h0), torch.tensor(c0)))
    (h_t.sum() + 2 * c_t.sum()).backward()
    h1, c1 = cell(x, (h0, c0))
    dx, _ = cell.backward((np.ones_like(h1), 2 * np.ones_like(c1)))
    assert isinstance(cell, numpy_lstm.LSTMCell)
    for name, a, b in (("h1", h1, h_t), ("c1", c1, c_t), ("dx", dx, x_t.grad)):
        assert_matches(a, b, np.float32, name)
    for name, param in cell_t.named_parameters():
        assert_matches(cell.grads[name], param.grad, np.float32, f"d{name}")
    back = to_torch(cell)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in cell_t.state_dict().items())
    linear = to_torch(numpy_lstm.Linear(3, 2, bias=False, rng=0))
    assert isinstance(linear, nn.Linear) and linear.bias is None


def test_a_plain_state_dict_gives_the_architecture(rng: np.random.Generator) -> None:
    theirs = torch_module(rng, {"num_layers": 2, "bidirectional": True, "proj_size": 3})
    ours = from_torch(theirs.state_dict(), batch_first=True)
    assert ours.config() | {"batch_first": False} == from_torch(theirs).config()
    assert ours.batch_first
    cell = model_from_state_dict({k: v.numpy() for k, v in nn.LSTMCell(I, H).state_dict().items()})
    assert isinstance(cell, numpy_lstm.LSTMCell) and cell.hidden_size == H


def test_sequence_model_converts_with_its_head(rng: np.random.Generator) -> None:
    theirs = TorchSequenceModel(nn.LSTM(I, H, batch_first=True), nn.Linear(H, 2))
    ours = from_torch(theirs)
    assert isinstance(ours, SequenceModel) and ours.head is not None
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    assert_matches(ours(x)[0], theirs(torch.tensor(x))[0], np.float32, "y")
    from_dict = from_torch(theirs.state_dict(), batch_first=True)
    assert from_dict.config() == ours.config()
    back = to_torch(ours)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in theirs.state_dict().items())


def test_training_continues_in_torch_step_for_step(rng: np.random.Generator) -> None:
    """Train 3 SGD steps in numpy-lstm, export, then 4 more steps in both: same losses and
    parameters (torch computes its own gradients with autograd)."""
    lr, steps = 0.1, 4
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True, rng=1)
    model = SequenceModel(lstm, numpy_lstm.Linear(2 * H, 2, rng=2))
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    target = rng.standard_normal((B, T, 2)).astype(np.float32)
    lengths = np.array([T, 4, 2])

    def numpy_step() -> float:
        model.zero_grad()
        y, _ = model(x, lengths=lengths)
        loss, dy = mse_loss(y, target)
        model.backward(dy)
        with model.editing():  # plain SGD, in place
            for name, param in model.named_parameters():
                param -= lr * model.grads[name]
        return loss

    for _ in range(3):
        numpy_step()
    theirs = to_torch(model)
    sgd = torch.optim.SGD(theirs.parameters(), lr=lr)
    packed = nn.utils.rnn.pack_padded_sequence(torch.tensor(x), lengths, batch_first=True)
    for _ in range(steps):
        ours_loss = numpy_step()
        sgd.zero_grad()
        out, _ = theirs.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        loss = nn.functional.mse_loss(theirs.head(out), torch.tensor(target))
        loss.backward()
        sgd.step()
        assert abs(ours_loss - loss.item()) < 1e-6
    for name, tensor in theirs.state_dict().items():
        np.testing.assert_allclose(
            model.state_dict()[name], tensor.numpy(), **TOLERANCE[np.float32]
        )


@pytest.mark.parametrize(
    "options, named",
    [
        ({"peephole": True}, "peephole=True"),
        ({"layer_norm": True, "clip": 2.0}, "clip=2.0, layer_norm=True"),
        ({"zoneout": 0.1}, "zoneout=[0.1, 0.1]"),
        ({"activations": ("hard_sigmoid", "tanh", "tanh")}, "activations="),
        ({"coupled_input_forget": True}, "coupled_input_forget=True"),
    ],
)
def test_options_torch_lacks_are_refused(options: dict, named: str) -> None:
    with pytest.raises(ValueError, match=r"torch.nn.LSTM cannot represent .*" + re.escape(named)):
        to_torch(numpy_lstm.LSTM(I, H, **options))


def test_bad_torch_inputs_are_refused() -> None:
    with pytest.raises(TypeError, match=r"module: expected nn.LSTM.* got GRU"):
        from_torch(nn.GRU(I, H))
    with pytest.raises(TypeError, match=r"weight_ih_l0: expected dtype float32 or float64"):
        from_torch(nn.LSTM(I, H, dtype=torch.float16).state_dict())
    state = {k: v.numpy() for k, v in nn.LSTM(I, H).state_dict().items()}
    with pytest.raises(ValueError, match=r"unexpected keys \['weight_peephole_l0'\]"):
        model_from_state_dict(state | {"weight_peephole_l0": np.zeros((3, H), np.float32)})
    with pytest.raises(ValueError, match=r"weight_hh_l0: expected shape \(20, 5\), got \(20, 4\)"):
        model_from_state_dict(state | {"weight_hh_l0": np.zeros((4 * H, 4), np.float32)})
    with pytest.raises(ValueError, match=r"state: not the state dict of an nn.LSTM"):
        model_from_state_dict({"embedding.weight": np.zeros((3, 2), np.float32)})
