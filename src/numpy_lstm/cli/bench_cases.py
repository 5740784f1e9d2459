"""The cases `numpy-lstm bench` times, and each implementation's call for them: numpy-lstm (its
default path and its pure-NumPy reference), torch.nn (oneDNN) and onnxruntime, on the same
float32 inputs and torch's initial weights.

What users do, not only the best case: an LSTM alone (inference and a training step), an LSTM
with a Linear head on every step, streaming (B = 1, one step per call, the state carried, as
sampling does) and a char-LM training step (embedding, LSTM, head, softmax cross-entropy and the
backward of it all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels import select as kernels
from ..kernels.threads import blas_threads
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.models import SequenceModel

Calls = dict[str, dict[str, Callable[[], Any]]]  # {mode: {implementation: zero-argument call}}
STREAM_STEPS = 1000  # one streaming sample: this many one-step calls


@dataclass(frozen=True)
class Case:
    """An LSTM of `layers` layers over (T, B, I) inputs with H units; `vocab` > 0 makes it a
    char-LM training step: embedding (vocab → I) + LSTM + linear (H → vocab) + softmax CE;
    `head` > 0 adds a Linear head (inference); `stream` runs T one-step calls."""

    name: str
    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    bidirectional: bool = False
    vocab: int = 0
    head: int = 0  # > 0: a Linear head (H → head) on every step's output
    stream: bool = False  # T one-step calls, the state carried (B = 1: sampling)

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1


CASES = (
    Case("100,1,32,128", 100, 1, 32, 128),
    Case("100,32,64,256", 100, 32, 64, 256),
    Case("50,64,128,512", 50, 64, 128, 512),
    Case("1000,1,1,64", 1000, 1, 1, 64),
    Case("2-layer bidir 100,32,64,256", 100, 32, 64, 256, layers=2, bidirectional=True),
    Case("char-LM step 100,32,V96,E64,256", 100, 32, 64, 256, vocab=96),
    Case("LSTM + Linear 1000 head 100,32,64,256", 100, 32, 64, 256, head=1000),
    Case(f"streaming {STREAM_STEPS} calls of 1,1,32,128", STREAM_STEPS, 1, 32, 128, stream=True),
)
QUICK_CASES = (
    Case("20,4,8,16", 20, 4, 8, 16),
    Case("char-LM 20,4,V12,E8,16", 20, 4, 8, 16, vocab=12),
    Case("head 20,4,8,16", 20, 4, 8, 16, head=10),
    Case("streaming 20 calls of 1,1,8,16", 20, 1, 8, 16, stream=True),
)
IMPLS = ("ours", "reference", "torch", "onnxruntime")


Gemms = list[tuple[int, int, int, int]]  # (count, M, K, N): `count` products (M×K)·(K×N)


def gemm_shapes(case: Case) -> tuple[Gemms, Gemms]:
    """The matrix products of one forward and of one training step: (count, M, K, N) each."""
    T, B, H, TB = case.T, case.B, case.H, case.T * case.B
    forward: Gemms = []
    train: Gemms = []
    for k in range(case.layers):
        I = case.I if k == 0 else case.D * H
        for _ in range(case.D):
            forward += [(1, TB, I, 4 * H), (T, B, H, 4 * H)]
            train += [(T, B, 4 * H, H), (1, TB, 4 * H, I), (1, 4 * H, TB, I), (1, 4 * H, TB, H)]
    if case.vocab or case.head:
        out = case.vocab or case.head
        forward.append((1, TB, H, out))
        train += [(1, TB, out, H), (1, out, TB, H)]
    return forward, forward + train


def flops(shapes: Gemms) -> float:
    return float(sum(2 * count * M * K * N for count, M, K, N in shapes))


def _models(case: Case, rng: np.random.Generator) -> tuple[LSTM, Any]:
    """Our LSTM and torch's, with torch's initial weights in both."""
    import torch

    theirs = torch.nn.LSTM(case.I, case.H, case.layers, bidirectional=case.bidirectional)
    ours = LSTM(case.I, case.H, case.layers, bidirectional=case.bidirectional, dtype=np.float32)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _onnx_session(ours: LSTM | SequenceModel, n_threads: int, initial_state: bool = False) -> Any:
    """An onnxruntime session of our exported model, or None if export/runtime is missing."""
    try:
        import onnxruntime as ort

        from ..io.onnx.export import export_onnx
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = n_threads, 1
    model = export_onnx(ours, initial_state=initial_state).SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def calls(case: Case, n_threads: int, rng: np.random.Generator) -> Calls:
    """The calls that time `case` at n_threads, by the kind of case."""
    if case.vocab:
        return charlm_calls(case, n_threads, rng)
    if case.head:
        return head_calls(case, n_threads, rng)
    if case.stream:
        return streaming_calls(case, n_threads, rng)
    return lstm_calls(case, n_threads, rng)


def lstm_calls(case: Case, n_threads: int, rng: np.random.Generator) -> Calls:
    """{mode: {impl: zero-argument call}} for a plain LSTM case; modes "inference", "training"."""
    import torch

    ours, theirs = _models(case, rng)
    x = rng.standard_normal((case.T, case.B, case.I), dtype=np.float32)
    d_out = rng.standard_normal((case.T, case.B, case.D * case.H), dtype=np.float32)
    x_t, d_out_t = torch.from_numpy(x), torch.from_numpy(d_out)
    x_grad = x_t.clone().requires_grad_(True)  # both sides compute dx

    def ours_train() -> None:
        ours(x)
        ours.backward(d_out)

    def torch_infer() -> None:
        with torch.inference_mode():
            theirs(x_t)

    def torch_train() -> None:
        out, _ = theirs(x_grad)
        out.backward(d_out_t)

    inference = _inference(ours, x, torch_infer, n_threads)
    training = {"ours": ours_train, "reference": _reference(ours_train), "torch": torch_train}
    return {"inference": inference, "training": training}


def _inference(
    ours: LSTM | SequenceModel, x: np.ndarray, torch_infer: Callable[[], Any], n_threads: int
) -> dict[str, Callable[[], Any]]:
    """One forward of x: ours (fast and reference paths), torch's, and onnxruntime's on our
    exported graph when it is installed."""
    inference = {"ours": lambda: ours(x), "reference": _reference(lambda: ours(x))}
    inference["torch"] = torch_infer
    session = _onnx_session(ours, n_threads)
    if session is not None:
        feed = {session.get_inputs()[0].name: x}
        inference["onnxruntime"] = lambda: session.run(None, feed)
    return inference


def _reference(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        with kernels.use_fast(False):
            return fn()

    return call


def charlm_calls(case: Case, n_threads: int, rng: np.random.Generator) -> Calls:
    """One training step of a char-LM — embedding, LSTM, linear, softmax cross-entropy and the
    backward of it all — written inline in NumPy around our LSTM, and the same in torch."""
    import torch

    V, T, B, H = case.vocab, case.T, case.B, case.H
    ours, theirs = _models(case, rng)
    embedding, head = torch.nn.Embedding(V, case.I), torch.nn.Linear(H, V)
    emb, w_out = embedding.weight.detach().numpy(), head.weight.detach().numpy()
    b_out = head.bias.detach().numpy()
    idx, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, T * B)
    idx_t, targets_t = torch.from_numpy(idx), torch.from_numpy(targets)
    rows = np.arange(T * B)

    def step() -> float:
        out, _ = ours(emb[idx])  # the embedding is a row lookup
        flat = out.reshape(T * B, H)
        logits = flat @ w_out.T + b_out
        logits -= logits.max(axis=1, keepdims=True)  # a stable softmax
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[rows, targets]).mean()
        p[rows, targets] -= 1  # d loss / d logits = (softmax − onehot) / N
        p /= T * B
        _grads = (p.T @ flat, p.sum(axis=0))  # d w_out, d b_out: part of the step's work
        dx, _ = ours.backward((p @ w_out).reshape(T, B, H))
        d_emb = np.zeros_like(emb)
        np.add.at(d_emb, idx, dx)  # rows used several times add up
        return float(loss)

    def ours_step() -> float:
        # Our kernels bring their own threads; left multi-threaded, OpenBLAS would keep one
        # spinning for ~0.1 s after each of the head's products, taking its core from them.
        with blas_threads(1):
            return step()

    params = [*embedding.parameters(), *theirs.parameters(), *head.parameters()]

    def torch_step() -> float:
        for p in params:
            p.grad = None
        logits = head(theirs(embedding(idx_t))[0]).reshape(T * B, V)
        loss = torch.nn.functional.cross_entropy(logits, targets_t)
        loss.backward()
        return loss.item()

    return {"training": {"ours": ours_step, "reference": _reference(step), "torch": torch_step}}


def head_calls(case: Case, n_threads: int, rng: np.random.Generator) -> Calls:
    """Inference of an LSTM with a Linear head on every step (torch: nn.LSTM → nn.Linear)."""
    import torch

    ours_lstm, theirs = _models(case, rng)
    head = torch.nn.Linear(case.H * case.D, case.head)
    ours_head = Linear(case.H * case.D, case.head, dtype=np.float32)
    ours_head.load_state_dict({k: v.detach().numpy() for k, v in head.state_dict().items()})
    ours = SequenceModel(ours_lstm, ours_head)
    x = rng.standard_normal((case.T, case.B, case.I), dtype=np.float32)
    x_t = torch.from_numpy(x)

    def torch_infer() -> None:
        with torch.inference_mode():
            head(theirs(x_t)[0])

    inference = _inference(ours, x, torch_infer, n_threads)
    return {"inference": inference}


def streaming_calls(case: Case, n_threads: int, rng: np.random.Generator) -> Calls:
    """T calls of one step each (B = 1), the state carried from call to call: sampling."""
    import torch

    ours, theirs = _models(case, rng)
    steps = rng.standard_normal((case.T, 1, case.B, case.I), dtype=np.float32)  # (1, B, I) each
    steps_t = torch.from_numpy(steps)

    def ours_stream() -> None:
        state = None
        for x in steps:
            _, state = ours(x, state)

    def torch_stream() -> None:
        state = None
        with torch.inference_mode():
            for x in steps_t:
                _, state = theirs(x, state)

    inference = {"ours": ours_stream, "reference": _reference(ours_stream), "torch": torch_stream}
    session = _onnx_session(ours, n_threads, initial_state=True)
    if session is not None:
        names = [i.name for i in session.get_inputs()]
        zeros = np.zeros((case.layers * case.D, case.B, case.H), np.float32)

        def ort_stream() -> None:
            h, c = zeros, zeros
            for x in steps:
                _, h, c = session.run(None, dict(zip(names, (x, h, c), strict=True)))

        inference["onnxruntime"] = ort_stream
    return {"inference": inference}
