"""Character-level language model: any UTF-8 text, trained with truncated BPTT over parallel
streams (the standard way: Elman 1990; Williams & Peng 1990; Karpathy's char-rnn), evaluated in
bits per character, sampled with temperature and top-k.

The default corpus needs no download: the text of the running Python's own documentation topics
(`pydoc_data.topics`, ≈ 465 KB of English prose and code, in every CPython).

Truncated BPTT(k1, k2): every k1 characters, backpropagate through the last k2 (k1 ≤ k2). Each
training step reads a window of k2 characters per stream, starting from the state carried in;
only the last k1 targets count (the earlier ones were trained by the previous window), and the
state after k1 steps is carried on. With k1 = k2 (the default) windows simply follow each other.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..nn.layers import Embedding, Linear, State
from ..nn.lstm import LSTM
from ..nn.module import Module
from ..train.losses import cross_entropy, log_softmax
from ..train.task import Arrays, Task


def default_corpus() -> str:
    """Python's own documentation topics, joined in a fixed order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


class CarriedState:
    """The LSTM state carried between consecutive chunks of a stream (truncated BPTT):
    gradients stop at the chunk boundary, values flow on."""

    def __init__(self) -> None:
        self.value: State | None = None

    def arrays(self) -> Arrays:
        return (
            {} if self.value is None else {"carried.h": self.value[0], "carried.c": self.value[1]}
        )

    def load(self, arrays: Arrays) -> None:
        has = "carried.h" in arrays
        self.value = (arrays["carried.h"].copy(), arrays["carried.c"].copy()) if has else None


class Vocabulary:
    """The sorted set of characters of a text; encode/decode between text and int ids."""

    def __init__(self, chars: str) -> None:
        if not chars or len(set(chars)) != len(chars):
            raise ValueError("chars: expected distinct characters, at least one")
        self.chars = chars
        self.index = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"text: characters not in the vocabulary: {unknown[:10]!r}")
        return np.fromiter((self.index[ch] for ch in text), dtype=np.int64, count=len(text))

    def decode(self, ids: Any) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class CharLM(Module):
    """Embedding(V → E) → LSTM(E → H, layers) → Linear(H → V), over time-major ids (T, B)."""

    def __init__(
        self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int,
        dropout: float, rng: np.random.Generator, dtype: np.dtype,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, rng=rng)
        self.lstm = LSTM(
            embedding_dim, hidden_size, num_layers, dropout=dropout, dtype=dtype, rng=rng,
            forget_bias=1.0,
        )  # fmt: skip
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, rng=rng)

    def forward(self, ids: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """ids (T, B) → logits (T, B, V) and the final state."""
        out, state = self.lstm(self.embedding(ids), state)
        return self.head(out), state

    def backward(self, dlogits: np.ndarray) -> None:
        self.embedding.backward(self.lstm.backward(self.head.backward(dlogits))[0])


def stream_layout(ids: np.ndarray, streams: int) -> np.ndarray:
    """(N,) → (L, streams): `streams` contiguous pieces of the text side by side, time-major."""
    length = len(ids) // streams
    if length < 2:
        raise ValueError(f"text: too short ({len(ids)} characters) for {streams} streams")
    return ids[: length * streams].reshape(streams, length).T.copy()


class CharLMTask(Task):
    """Character language model on a UTF-8 text (bits per character).

    A :class:`CharLM` trained with truncated BPTT; metrics in nats and bits per character (bpc).
    """

    name = "charlm"
    item_name = "chars"

    def __init__(
        self, text: str | None = None, embedding_dim: int = 32, hidden_size: int = 256,
        num_layers: int = 1, dropout: float = 0.0, batch_size: int = 32, bptt: int = 64,
        stride: int | None = None, val_fraction: float = 0.1, seed: int = 0,
        dtype: str = "float32",
    ) -> None:  # fmt: skip
        path, text = text, (default_corpus() if text is None else Path(text).read_text("utf-8"))
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction}")
        self.stride = bptt if stride is None else stride
        if not 1 <= self.stride <= bptt:
            raise ValueError(f"stride: expected 1 ≤ stride (k1) ≤ bptt (k2) = {bptt}, got {stride}")
        self.arguments = {
            "text": path, "embedding_dim": embedding_dim, "hidden_size": hidden_size,
            "num_layers": num_layers, "dropout": dropout, "batch_size": batch_size, "bptt": bptt,
            "stride": stride, "val_fraction": val_fraction, "seed": seed, "dtype": dtype,
        }  # fmt: skip
        self.vocab = Vocabulary.from_text(text)
        split = int(len(text) * (1 - val_fraction))
        self.train_streams = stream_layout(self.vocab.encode(text[:split]), batch_size)
        self.val_streams = stream_layout(self.vocab.encode(text[split:]), 16)
        if len(self.train_streams) <= bptt:
            raise ValueError(f"bptt: {bptt} is longer than each training stream")
        self.bptt, self.batch_size = bptt, batch_size
        self.model = CharLM(
            len(self.vocab), embedding_dim, hidden_size, num_layers, dropout,
            np.random.default_rng(seed), np.dtype(dtype),
        )  # fmt: skip
        self.position, self.epoch = 0, 0
        self.carried = CarriedState()
        self.items_per_step = batch_size * self.stride
        self.train_items = self.train_streams.size

    def config(self) -> dict[str, Any]:
        return dict(self.arguments)

    def train_step(self) -> float:
        k1, k2 = self.stride, self.bptt
        if self.position + k2 + 1 > len(self.train_streams):  # the streams are used up
            self.position, self.epoch, self.carried.value = 0, self.epoch + 1, None
        window = self.train_streams[self.position : self.position + k2 + 1]
        logits, _ = self.model(window[:-1], self.carried.value)
        counted = np.zeros(window[1:].shape, dtype=bool)
        counted[k2 - k1 :] = True  # earlier targets were already trained by the last window
        loss, dlogits = cross_entropy(logits, window[1:], mask=counted)
        self.model.backward(dlogits)
        self.carried.value = self.model.lstm.state_after(k1)
        self.position += k1
        return loss

    def evaluate(self) -> dict[str, float]:
        """Cross-entropy over the whole validation text, streamed with the state carried."""
        total, count, state = 0.0, 0, None
        for start in range(0, len(self.val_streams) - 1, self.bptt):
            chunk = self.val_streams[start : start + self.bptt + 1]
            logits, state = self.model(chunk[:-1], state)
            loss, _ = cross_entropy(logits, chunk[1:])
            total, count = total + loss * chunk[1:].size, count + chunk[1:].size
        loss = total / count
        return {"loss": loss, "bpc": loss / math.log(2)}

    def baseline(self) -> dict[str, float]:
        """A unigram model (character frequencies of the training text) on the validation text."""
        counts = np.bincount(self.train_streams.reshape(-1), minlength=len(self.vocab)) + 1
        log_p = np.log(counts / counts.sum())
        loss = -float(log_p[self.val_streams[1:].reshape(-1)].mean())
        return {"loss": loss, "bpc": loss / math.log(2)}

    def state(self) -> tuple[dict[str, Any], Arrays]:
        values, arrays = super().state()
        # The vocabulary travels with the checkpoint, so sampling never needs the text again.
        values |= {"position": self.position, "epoch": self.epoch, "vocabulary": self.vocab.chars}
        return values, arrays | self.carried.arrays()

    def load_state(self, values: dict[str, Any], arrays: Arrays) -> None:
        super().load_state(values, arrays)
        self.position, self.epoch = int(values["position"]), int(values["epoch"])
        self.carried.load(arrays)

    def sample(self, prime: str = "\n", length: int = 200, **kwargs: Any) -> str:
        return sample(self.model, self.vocab, prime, length, **kwargs)


def load_for_sampling(path: str | Path) -> tuple[CharLM, Vocabulary]:
    """The model and vocabulary of a char-LM checkpoint (the training text is not needed)."""
    from ..train.checkpoint import read_checkpoint

    saved = read_checkpoint(path)
    task = saved.meta["task"]
    if task.get("name") != CharLMTask.name:
        raise ValueError(f"{path}: not a char-LM checkpoint (task {task.get('name')!r})")
    config, vocab = task["config"], Vocabulary(task["state"]["vocabulary"])
    model = CharLM(
        len(vocab), config["embedding_dim"], config["hidden_size"], config["num_layers"],
        config["dropout"], np.random.default_rng(0), np.dtype(config["dtype"]),
    )  # fmt: skip
    model.load_state_dict(saved.model)
    return model, vocab


def sample(
    model: CharLM, vocab: Vocabulary, prime: str, length: int, temperature: float = 1.0,
    top_k: int | None = None, seed: int | None = 0,
) -> str:  # fmt: skip
    """Continue `prime` by `length` characters. temperature → 0 approaches greedy decoding;
    top_k keeps only the k most likely characters. Reproducible for a given seed."""
    if not prime:
        raise ValueError("prime: expected at least one character")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if top_k is not None and not 1 <= top_k <= len(vocab):
        raise ValueError(f"top_k: expected 1 ≤ top_k ≤ {len(vocab)}, got {top_k}")
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    try:
        logits, state = model(vocab.encode(prime)[:, None])
        out = []
        for _ in range(length):
            scores = logits[-1, 0].astype(np.float64) / temperature
            if top_k is not None:
                scores[scores < np.sort(scores)[-top_k]] = -np.inf
            probabilities = np.exp(log_softmax(scores))
            nxt = int(rng.choice(len(vocab), p=probabilities / probabilities.sum()))
            out.append(vocab.chars[nxt])
            logits, state = model(np.array([[nxt]]), state)
    finally:
        model.train(was_training)
    return "".join(out)
