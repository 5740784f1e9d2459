"""The cases `numpy-lstm bench` times, and each implementation's call for them: numpy-lstm (its
default path and its pure-NumPy reference), torch.nn (oneDNN) and onnxruntime, on the same
float32 inputs and torch's initial weights.

What users do, not only the best case: an LSTM alone (inference and a training step), an LSTM
with a Linear head on every step, streaming (B = 1, one step per call, the state carried, as
sampling does) and one real char-LM training step (our Trainer and CharLMTask — embedding, LSTM,
head, softmax cross-entropy, backward, clipping, Adam — against the same in torch).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..kernels import select as kernels
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.models import SequenceModel
from ..tasks.charlm import CharLMTask, Vocabulary
from ..train import Trainer, TrainerConfig, one_blas_thread_if_fast
from ..train.optim import Adam

Calls = dict[str, dict[str, Callable[[], Any]]]  # {mode: {implementation: zero-argument call}}
STREAM_STEPS = 1000  # one streaming sample: this many one-step calls


@dataclass(frozen=True)
class Case:
    """An LSTM of `layers` layers over (T, B, I) inputs with H units; `vocab` > 0 makes it a
    char-LM training step: embedding (vocab → I) + LSTM + linear (H → vocab) + softmax CE,
    backward, clipping and Adam (see :func:`charlm_calls`);
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


# The char-LM step's training setup (issue 12): Adam at this learning rate, the gradients'
# global norm clipped to this, on both sides.
CHARLM_LR, CHARLM_CLIP = 2e-3, 5.0
CHARLM_WINDOWS = 50  # windows of (T + 1, B) in the random text before it wraps around


def random_text_charlm(case: Case, rng: np.random.Generator) -> CharLMTask:
    """The real :class:`CharLMTask` — its model, its `train_step` with truncated BPTT and the
    state carried — built for `case` (vocab V, embedding I, H units, B streams, T = bptt) over a
    random text of V distinct characters, every one present (so the vocabulary is exactly V),
    long enough for CHARLM_WINDOWS steps before it wraps: a step's cost does not depend on
    which text it reads, and the default corpus would take seconds to build."""
    alphabet = "\n" + "".join(map(chr, range(32, 32 + case.vocab - 1)))
    train_chars = case.B * (CHARLM_WINDOWS * case.T + 1)
    ids = rng.integers(0, case.vocab, round(train_chars / 0.9) + 64)  # 0.9: val_fraction 0.1
    text = alphabet + Vocabulary(alphabet).decode(ids)
    with tempfile.TemporaryDirectory() as folder:  # the task reads its text once, here
        path = Path(folder) / "random.txt"
        path.write_text(text, encoding="utf-8")
        return CharLMTask(
            text=str(path),
            embedding_dim=case.I,
            hidden_size=case.H,
            batch_size=case.B,
            bptt=case.T,
            val_fraction=0.1,
            dtype="float32",
        )


def charlm_calls(case: Case, n_threads: int, rng: np.random.Generator) -> Calls:
    """One training step of a char-LM as users run it, on both sides.

    Ours: `Trainer.train_step` (zero the gradients, the task's forward, cross-entropy and
    backward, the finiteness check, clipping, Adam) over :func:`random_text_charlm` — the real
    entry points, so whatever they do inside is what is timed — with BLAS held to one thread
    while the fast kernels run, as `Trainer.fit` does. Reference: the same step on the
    pure-NumPy path. torch: Embedding, nn.LSTM and Linear loaded with our initial weights,
    cross_entropy, backward, clip_grad_norm_ and torch.optim.Adam, on the same windows with the
    state carried (detached) from step to step."""
    import torch

    task = random_text_charlm(case, rng)
    optimizer = Adam(task.model, lr=CHARLM_LR)
    config = TrainerConfig(clip_norm=CHARLM_CLIP, progress=False)
    trainer = Trainer(task, optimizer, config=config, out=io.StringIO())

    def ours_step() -> float:
        with one_blas_thread_if_fast():  # as Trainer.fit: see there why
            return trainer.train_step()

    V, T = case.vocab, case.T
    theirs = torch.nn.ModuleDict(
        {
            "embedding": torch.nn.Embedding(V, case.I),
            "lstm": torch.nn.LSTM(case.I, case.H),
            "head": torch.nn.Linear(case.H, V),
        }
    )
    weights = task.model.state_dict()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    params = list(theirs.parameters())
    torch_optimizer = torch.optim.Adam(params, lr=CHARLM_LR)
    streams = torch.from_numpy(task.train_streams)
    position, carried = 0, None

    def torch_step() -> float:
        nonlocal position, carried
        if position + T + 1 > len(streams):  # wrap around as the task does
            position, carried = 0, None
        window = streams[position : position + T + 1]
        torch_optimizer.zero_grad()
        out, state = theirs["lstm"](theirs["embedding"](window[:-1]), carried)
        logits = theirs["head"](out).reshape(-1, V)
        loss = torch.nn.functional.cross_entropy(logits, window[1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CHARLM_CLIP)
        torch_optimizer.step()
        carried = (state[0].detach(), state[1].detach())
        position += T
        return loss.item()

    return {
        "training": {"ours": ours_step, "reference": _reference(ours_step), "torch": torch_step}
    }


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
