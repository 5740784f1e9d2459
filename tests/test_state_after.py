"""`LSTM.state_after(k)` — the state a truncated-BPTT window carries on — is the final state of
torch's nn.LSTM run over the first k steps alone, on either kernel, for stacked, projected,
batch-first and unbatched inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_lstm
from conftest import assert_matches, distinct_gate_lstm_state, load_into_torch, to_torch, torch_lstm
from numpy_lstm.core.options import SequenceOptions
from numpy_lstm.core.sequence import lstm_forward

CASES = [
    dict(num_layers=1),
    dict(num_layers=2),
    dict(num_layers=2, proj_size=3),
    dict(num_layers=1, batch_first=True),
]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_state_after_k_steps_is_torchs_final_state_over_those_steps(
    rng: np.random.Generator, fast: bool, dtype: type, config: dict, batched: bool
) -> None:
    T, B, I, H = 9, 3, 4, 5
    theirs = torch_lstm(I, H, dtype, **config)
    state = distinct_gate_lstm_state(rng, theirs, dtype)
    load_into_torch(theirs, state)
    ours = numpy_lstm.LSTM(I, H, dtype=dtype, **config)
    ours.load_state_dict(state)
    time_axis = 1 if config.get("batch_first") and batched else 0
    x = rng.standard_normal((B, T, I) if time_axis else (T, B, I)).astype(dtype)
    if not batched:
        x = x[:, 0]
    with numpy_lstm.kernels.use_fast(fast):
        ours(x)
        for k in (1, 4, T):
            h_k, c_k = ours.state_after(k)
            with torch.no_grad():
                _, (h_n, c_n) = theirs(to_torch(np.take(x, range(k), axis=time_axis)))
            assert_matches(h_k, h_n, dtype, f"h after {k} steps")
            assert_matches(c_k, c_n, dtype, f"c after {k} steps")


def test_state_after_refuses_steps_outside_the_last_forward(rng: np.random.Generator) -> None:
    lstm = numpy_lstm.LSTM(2, 3)
    lstm(rng.standard_normal((4, 1, 2)).astype(np.float32))
    for steps in (0, 5):
        with pytest.raises(ValueError, match="steps"):
            lstm.state_after(steps)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_a_caches_state_after_s_steps_processed_is_the_references(
    rng: np.random.Generator, reverse: bool
) -> None:
    T, B, I, H = 7, 2, 3, 4
    lstm = numpy_lstm.LSTM(I, H, dtype=np.float64, rng=rng)
    w = lstm.layer_weights(0)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    options = SequenceOptions(reverse=reverse)
    *_, fast = numpy_lstm.kernels.sequence_forward(x, h0, c0, w, options)
    *_, reference = lstm_forward(x, h0, c0, w, options)
    assert not isinstance(fast, type(reference))  # the fast path ran
    for steps in range(T + 1):
        for ours, theirs, what in zip(fast.state(steps), reference.state(steps), "hc", strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12, err_msg=what)
