"""Gate traces record exactly what torch computes, gradients through time match torch's autograd
step by step, and the summaries and narration say what the numbers say."""

from __future__ import annotations

import re
import string

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import distinct_gate_state, to_torch
from numpy_lstm.inspect.trace import NARRATION, NARRATION_FIELDS, NUMBER_FORMATS

T, B, I, H = 7, 3, 3, 4


def torch_gates(x: np.ndarray, state: dict[str, np.ndarray], suffix: str, reverse: bool):
    """Gates (T, B, 4H) and memories written out with torch ops, stepping in the given order."""
    W_ih, W_hh = to_torch(state[f"weight_ih_l0{suffix}"]), to_torch(state[f"weight_hh_l0{suffix}"])
    b = to_torch(state[f"bias_ih_l0{suffix}"]) + to_torch(state[f"bias_hh_l0{suffix}"])
    h, c = (
        torch.zeros(x.shape[1], H, dtype=torch.float64),
        torch.zeros(x.shape[1], H, dtype=torch.float64),
    )
    gates, memories = [None] * len(x), [None] * len(x)
    for t in reversed(range(len(x))) if reverse else range(len(x)):
        z = to_torch(x[t]) @ W_ih.T + h @ W_hh.T + b
        i, f, g, o = (
            torch.sigmoid(z[:, :H]),
            torch.sigmoid(z[:, H : 2 * H]),
            torch.tanh(z[:, 2 * H : 3 * H]),
            torch.sigmoid(z[:, 3 * H :]),
        )
        c = f * c + i * g
        h = o * torch.tanh(c)
        gates[t], memories[t] = torch.cat([i, f, g, o], -1), c
    return torch.stack(gates).numpy(), torch.stack(memories).numpy()


def bidirectional(rng: np.random.Generator) -> tuple[numpy_lstm.LSTM, dict[str, np.ndarray]]:
    lstm = numpy_lstm.LSTM(I, H, bidirectional=True, dtype=np.float64)
    state = distinct_gate_state(rng, I, H, np.float64)
    state |= {k + "_reverse": v for k, v in distinct_gate_state(rng, I, H, np.float64).items()}
    lstm.load_state_dict(state)
    return lstm, state


def test_trace_records_the_gates_torch_computes_in_both_directions(
    rng: np.random.Generator,
) -> None:
    lstm, state = bidirectional(rng)
    x = rng.standard_normal((T, B, I))
    tr = numpy_lstm.trace(lstm, x)
    for direction, suffix in ((0, ""), (1, "_reverse")):
        gates, memories = torch_gates(x, state, suffix, reverse=bool(direction))
        record = tr.layer(0, direction)
        np.testing.assert_allclose(record.gates, gates, atol=1e-13)
        np.testing.assert_allclose(record.c, memories, atol=1e-13)
        np.testing.assert_allclose(
            tr.gate("Eraser", 0, direction), gates[..., H : 2 * H], atol=1e-13
        )
    # Pre-activations are what the activations read.
    np.testing.assert_allclose(
        torch.sigmoid(torch.tensor(tr.gate("i", pre=True))).numpy(), tr.gate("i"), atol=1e-15
    )
    np.testing.assert_allclose(np.tanh(tr.gate("g", pre=True)), tr.gate("Writer"), atol=1e-15)


def test_recording_is_only_on_request(rng: np.random.Generator) -> None:
    from numpy_lstm.core.options import SequenceOptions
    from numpy_lstm.core.sequence import lstm_forward

    w = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng).layer_weights()
    x, zeros = rng.standard_normal((T, B, I)), np.zeros((B, H))
    plain = lstm_forward(x, zeros, zeros, w)[3]
    recorded = lstm_forward(x, zeros, zeros, w, SequenceOptions(record=True))[3]
    assert all(step.preactivations is None for step in plain.steps)
    assert all(step.preactivations is not None for step in recorded.steps)


def test_gradients_through_time_match_torch_autograd_per_step(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64)
    state = distinct_gate_state(rng, I, H, np.float64)
    lstm.load_state_dict(state)
    x = rng.standard_normal((T, B, I))
    d_out = rng.standard_normal((T, B, H))
    d_out[:-1] = 0  # a loss on the last step only: watch the signal travel back
    tr = numpy_lstm.trace(lstm, x).backward(d_out)

    cell = torch.nn.LSTMCell(I, H, dtype=torch.float64)
    cell.load_state_dict({k.removesuffix("_l0"): to_torch(v) for k, v in state.items()})
    h, c = torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)
    hs, cs = [], []
    for t in range(T):
        h, c = cell(to_torch(x[t]), (h, c))
        h.retain_grad(), c.retain_grad()
        hs.append(h), cs.append(c)
    (hs[-1] * to_torch(d_out[-1])).sum().backward()
    record = tr.layer()
    np.testing.assert_allclose(record.dh, torch.stack([h.grad for h in hs]).numpy(), atol=1e-13)
    np.testing.assert_allclose(record.dc, torch.stack([c.grad for c in cs]).numpy(), atol=1e-13)
    norms = tr.gradient_norms(batch=1)
    np.testing.assert_allclose(
        norms["c"], [np.linalg.norm(c.grad[1].numpy()) for c in cs], rtol=1e-12
    )
    assert not lstm.grads["weight_hh_l0"].any()  # a trace leaves the layer's gradients alone


@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
def test_backward_keeps_the_gradient_wrt_the_input_time_major(
    rng: np.random.Generator, layout: str
) -> None:
    """trace.input_grad is torch's x.grad through a two-layer stack, (T, B, I) in every layout."""
    batch = 1 if layout == "unbatched" else B
    torch_lstm = torch.nn.LSTM(I, H, num_layers=2, dtype=torch.float64)
    x = rng.standard_normal((T, batch, I))
    d_out = rng.standard_normal((T, batch, H))
    x_torch = to_torch(x, requires_grad=True)
    (torch_lstm(x_torch)[0] * to_torch(d_out)).sum().backward()

    batch_first = layout == "batch_first"
    lstm = numpy_lstm.LSTM(I, H, num_layers=2, batch_first=batch_first, dtype=np.float64)
    lstm.load_state_dict({k: v.detach().numpy() for k, v in torch_lstm.state_dict().items()})
    if layout == "batch_first":
        tr = numpy_lstm.trace(lstm, x.transpose(1, 0, 2)).backward(d_out.transpose(1, 0, 2))
    elif layout == "unbatched":
        tr = numpy_lstm.trace(lstm, x[:, 0]).backward(d_out[:, 0])
    else:
        tr = numpy_lstm.trace(lstm, x).backward(d_out)
    assert tr.input_grad is not None and tr.input_grad.shape == (T, batch, I)
    np.testing.assert_allclose(tr.input_grad, x_torch.grad.numpy(), atol=1e-13)


def constant_eraser_lstm(keep: float) -> numpy_lstm.LSTM:
    """An LSTM whose Eraser is `keep` at every step, whatever the input."""
    lstm = numpy_lstm.LSTM(1, 2, dtype=np.float64, rng=0)
    state = lstm.state_dict()
    state["weight_ih_l0"][2:4] = 0
    state["weight_hh_l0"][2:4] = 0
    state["bias_ih_l0"][2:4] = np.log(keep / (1 - keep))
    state["bias_hh_l0"][2:4] = 0
    lstm.load_state_dict(state)
    return lstm


def test_memory_span_of_a_constant_eraser() -> None:
    """f = e^{-0.3}: after k steps e^{-0.3k} remains, below 1/e first at k = 4."""
    lstm = constant_eraser_lstm(np.exp(-0.3))
    tr = numpy_lstm.trace(lstm, np.random.default_rng(0).standard_normal((60, 2, 1)))
    np.testing.assert_allclose(tr.gate("f"), np.exp(-0.3), rtol=1e-12)
    np.testing.assert_array_equal(tr.memory_span(), [4, 4])


def test_saturation_written_and_erased_follow_their_definitions(rng: np.random.Generator) -> None:
    lstm, _ = bidirectional(rng)
    x = 3 * rng.standard_normal((T, B, I))
    tr = numpy_lstm.trace(lstm, x, lengths=np.array([7, 5, 6]))
    values = tr.gate("o", 0, 1)
    closed, opened = tr.saturation("o", 0, 1)
    for unit in range(H):
        picked = [values[t, b, unit] for t in range(T) for b in range(B) if tr.valid[t, b]]
        assert closed[unit] == sum(v < 0.1 for v in picked) / len(picked)
        assert opened[unit] == sum(v > 0.9 for v in picked) / len(picked)
    record = tr.layer(0, 0)
    # c = f·c_before + i·g at every valid step: written minus erased is the change of memory.
    change = (tr.written() - tr.erased())[tr.valid]
    np.testing.assert_allclose(change, (record.c - record.c_before)[tr.valid], atol=1e-13)


def test_written_and_erased_are_the_two_parts_of_torchs_memory_update(
    rng: np.random.Generator,
) -> None:
    """torch's memories and gates obey c_t = f·c_prev + i·g, so what a step wrote is
    c_t − f·c_prev and what it erased is c_prev + i·g − c_t (c_prev: the memory the step read,
    the next one in time for the reverse direction)."""
    lstm, state = bidirectional(rng)
    x = 3 * rng.standard_normal((T, B, I))
    tr = numpy_lstm.trace(lstm, x)
    for direction, suffix in ((0, ""), (1, "_reverse")):
        gates, c = torch_gates(x, state, suffix, reverse=bool(direction))
        i, f, g = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H : 3 * H]
        start = np.zeros_like(c[:1])
        c_prev = np.concatenate([start, c[:-1]] if direction == 0 else [c[1:], start])
        np.testing.assert_allclose(tr.written(0, direction), c - f * c_prev, atol=1e-13)
        np.testing.assert_allclose(tr.erased(0, direction), c_prev + i * g - c, atol=1e-13)


def test_explain_narrates_the_trace_numbers(rng: np.random.Generator) -> None:
    lstm, state = bidirectional(rng)
    x = 2 * rng.standard_normal((T, B, I))
    tr = numpy_lstm.trace(lstm, x, lengths=np.array([7, 3, 7]))
    text = tr.explain(step=4, unit=2, batch=0)
    gates, _ = torch_gates(x, state, "", reverse=False)  # sequence 0 is full length
    f = gates[4, 0, H + 2]  # torch's forget gate: the share of the memory kept
    i, o = (tr.gate(n)[4, 0, 2] for n in "io")
    percents = [int(p) for p in re.findall(r"(\d+)%", text)]
    # the Eraser's number is what it erases, 1 − f; the Filter's and Presenter's are i and o
    assert percents == [round(100 * (1 - f)), round(100 * i), round(100 * o)]
    assert f"the Eraser wiped {round(100 * (1 - f))}% of the memory" in text
    assert "Eraser" in text and "Filter" in text and "Presenter" in text and "Writer" in text
    assert f"{tr.layer().c[4, 0, 2]:+.2f}" in text
    assert "padding" in tr.explain(step=5, unit=0, batch=1)


def test_the_narration_has_only_plain_fields_that_the_explorer_page_can_fill() -> None:
    parsed = [part for part in string.Formatter().parse(NARRATION) if part[1] is not None]
    assert all(spec == "" and conversion is None for _, _, spec, conversion in parsed)
    assert {name for _, name, _, _ in parsed} == {"step", "unit", *NARRATION_FIELDS}
    assert set(NARRATION_FIELDS.values()) <= set(NUMBER_FORMATS)


def test_trace_errors(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    tr = numpy_lstm.trace(lstm, rng.standard_normal((T, I)))
    with pytest.raises(ValueError, match=r"gate: expected one of"):
        tr.gate("x")
    with pytest.raises(ValueError, match=r"step: expected 0 ≤ step < 7, got 7"):
        tr.explain(7, 0)
    with pytest.raises(ValueError, match=r"layer, direction: no \(0, 1\)"):
        tr.gate("i", direction=1)
    with pytest.raises(ValueError, match=r"call trace\.backward"):
        tr.gradient_norms()
    with pytest.raises(TypeError, match=r"lstm: expected a numpy_lstm\.LSTM"):
        numpy_lstm.trace(numpy_lstm.Linear(2, 2), np.zeros((1, 2)))


def test_backward_runs_through_the_traced_forward_even_after_another_forward(
    rng: np.random.Generator,
) -> None:
    lstm = numpy_lstm.LSTM(3, 4, dtype=np.float64, rng=rng)
    x = rng.standard_normal((5, 2, 3))
    d_out = rng.standard_normal((5, 2, 4))
    expected = numpy_lstm.trace(lstm, x).backward(d_out).input_grad
    tr = numpy_lstm.trace(lstm, x)
    lstm(rng.standard_normal((5, 2, 3)))  # another forward of the same shape, after the trace
    np.testing.assert_array_equal(tr.backward(d_out).input_grad, expected)
    # and against torch's autograd on the traced input
    theirs = torch.nn.LSTM(3, 4, dtype=torch.float64)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.state_dict().items()})
    x_t = torch.from_numpy(x).requires_grad_(True)
    theirs(x_t)[0].backward(torch.from_numpy(d_out))
    np.testing.assert_allclose(expected, x_t.grad.numpy(), rtol=1e-10, atol=1e-12)
