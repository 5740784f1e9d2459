"""Character-level language model: any UTF-8 text, trained with truncated BPTT over parallel
streams (the standard way: Elman 1990; Williams & Peng 1990; Karpathy's char-rnn), evaluated in
bits per character, sampled with temperature and top-k.

The default corpus needs no download: the running CPython's own standard-library source
(:func:`default_corpus`, ≈ 31 MB of Python in CPython 3.11 with its tests).

Truncated BPTT(k1, k2): every k1 characters, backpropagate through the last k2 (k1 ≤ k2). Each
training step reads a window of k2 characters per stream, starting from the state carried in;
only the last k1 targets count (the earlier ones were trained by the previous window), and the
state after k1 steps is carried on. With k1 = k2 (the default) windows simply follow each other.
"""

from __future__ import annotations

import hashlib
import math
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..nn.layers import Embedding, Linear, State
from ..nn.lstm import LSTM
from ..nn.module import Module, evaluating
from ..train.losses import linear_cross_entropy, linear_cross_entropy_loss, log_softmax
from ..train.task import (
    Arrays,
    DataChangedError,
    Task,
    TaskOptions,
    finite_number,
    float_dtype,
    fraction,
    non_negative_int,
    option,
    optional,
    positive_int,
    probability,
    read_data_file,
    takes_options,
)

# Folders of the standard library's directory that hold third-party packages, not the stdlib.
THIRD_PARTY_FOLDERS = frozenset({"site-packages", "dist-packages", "__pycache__"})


def _written_by_the_build(path: str) -> bool:
    """Files the build generates, with its paths and flags (`_sysconfigdata_*.py`, the
    `config-3.11-*/python-config.py` script): they differ between installs of one version."""
    return path.split("/")[-1].startswith("_sysconfigdata") or path.startswith("config-")


def default_corpus() -> str:
    """The running CPython's standard-library source: every ``*.py`` file under
    ``sysconfig.get_paths()["stdlib"]`` (tests included), each after a ``# file: PATH`` line.

    Built in about a second from files every CPython install has; nothing is downloaded or
    cached. The same for every install of one Python version (and OS):

    - Files are ordered by the SHA-256 of their POSIX path relative to the stdlib folder, not
      alphabetically, so the held-out end of the text (the last `val_fraction`) is a random
      sample of modules and tests — like the training part — rather than the alphabetically
      last packages (`xml`, `zipfile`, `zoneinfo`): validation then tracks training.
    - The tests (``test/``, ``*/tests/``, ``idlelib/idle_test/``) stay in: without them
      CPython 3.11 gives ≈ 12 MB, which the 4-minute demo (5,400 steps × 2,048 characters =
      11 M) would read once over; with them ≈ 31.6 MB (28.4 M training characters, read 0.39
      times), so the model cannot memorise its training text. Distributions that ship the
      tests separately give the ≈ 12 MB — still far above 3 MB.
    - Non-ASCII characters (3,269 of 31.6 M in CPython 3.11.7, in 127 of 1,786 files, mostly
      tests of Unicode handling) are written as the escapes :func:`ascii` gives (``é`` →
      ``\\xe9``, ``€`` → ``\\u20ac``). Inside a (non-raw) string literal, where nearly all of
      them are, and in a comment, that changes nothing the code means — 113 of those 127 files
      parse to the same syntax tree (the others use them in names, raw strings or doctests) —
      and the vocabulary stays within printable ASCII plus the newline (96 characters) instead
      of gaining 348 characters seen a few times each, every one a row of the output layer
      that cannot be learned.
    - Newlines are ``\\n`` (``\\r\\n`` and ``\\r`` become ``\\n``, as when Python reads
      source); the few files that are not UTF-8 (deliberately mis-encoded test data) are left
      out, and so are site-packages and dist-packages (third-party code) and the two files the
      build writes with its own paths (`_sysconfigdata_*.py`, `config-*/python-config.py`).
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in THIRD_PARTY_FOLDERS]
        relative = Path(folder).relative_to(root)
        found += [(relative / name).as_posix() for name in names if name.endswith(".py")]
    found = [path for path in found if not _written_by_the_build(path)]
    found.sort(key=lambda path: hashlib.sha256(path.encode("utf-8")).hexdigest())
    parts = []
    for path in found:
        try:
            source = (root / path).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        source = source.replace("\r\n", "\n").replace("\r", "\n")
        source = source.encode("ascii", "backslashreplace").decode("ascii")
        parts.append(f"# file: {path}\n{source}" + ("" if source.endswith("\n") else "\n"))
    if not parts:
        raise FileNotFoundError(f"text: no Python source found under {root} (pass --text FILE)")
    return "".join(parts)


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
        """text → (N,) int64 ids; refuses characters outside the vocabulary."""
        # Vectorised through the code points (a table lookup): ~50× faster than a Python loop,
        # which matters for a corpus of tens of millions of characters.
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        table = np.full(max(map(ord, self.chars)) + 2, -1, dtype=np.int64)  # last: "unknown"
        table[[ord(ch) for ch in self.chars]] = np.arange(len(self.chars))
        ids = table[np.minimum(codes, len(table) - 1)]
        if (ids < 0).any():
            unknown = sorted(set(text) - set(self.index))
            raise ValueError(f"text: characters not in the vocabulary: {unknown[:10]!r}")
        return ids

    def decode(self, ids: Any) -> str:
        """ids (N,) → text (vectorised through the code points, like :meth:`encode`)."""
        points = np.array([ord(ch) for ch in self.chars], dtype=np.uint32)
        picked = points[np.asarray(ids, dtype=np.int64).reshape(-1)]
        return picked.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


class CharLM(Module):
    """Embedding(V → E) → LSTM(E → H, layers) → Linear(H → V), over time-major ids (T, B)."""

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        rng: np.random.Generator,
        dtype: np.dtype,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, rng=rng)
        self.lstm = LSTM(
            embedding_dim,
            hidden_size,
            num_layers,
            dropout=dropout,
            dtype=dtype,
            rng=rng,
            forget_bias=forget_bias,
        )
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, rng=rng)

    @classmethod
    def for_options(cls, options: CharLMOptions, vocab_size: int) -> CharLM:
        """The model that `options` describe, for a vocabulary of `vocab_size` characters."""
        return cls(
            vocab_size,
            options.embedding_dim,
            options.hidden_size,
            options.num_layers,
            options.dropout,
            np.random.default_rng(options.seed),
            np.dtype(options.dtype),
            options.forget_bias,
        )

    def forward(self, ids: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """ids (T, B) → logits (T, B, V) and the final state."""
        out, state = self.lstm(self.embedding(ids), state)
        return self.head(out), state

    def backward(self, dlogits: np.ndarray) -> None:
        self.embedding.backward(self.lstm.backward(self.head.backward(dlogits))[0])

    def loss_and_backward(
        self,
        ids: np.ndarray,
        targets: np.ndarray,
        state: State | None = None,
        mask: np.ndarray | None = None,
    ) -> tuple[float, State]:
        """One training pass: ids (T, B) → the mean cross-entropy of targets (T, B) over the
        positions where mask (T, B) is True (all without one), gradients accumulated, and the
        final state — what `logits, state = model(ids, state)`, `cross_entropy(logits, targets,
        mask=mask)` and `model.backward(dlogits)` give, with the head and the loss fused
        (:func:`~numpy_lstm.train.losses.linear_cross_entropy`): no (T, B, V) logits or
        gradient beyond the one buffer the loss overwrites."""
        out, state = self.lstm(self.embedding(ids), state)
        loss, d_out = linear_cross_entropy(self.head, out, targets, mask=mask)
        self.embedding.backward(self.lstm.backward(d_out)[0])
        return loss, state

    def loss(
        self, ids: np.ndarray, targets: np.ndarray, state: State | None = None
    ) -> tuple[float, State]:
        """ids (T, B) → the mean cross-entropy of targets (T, B) and the final state, with no
        gradient: `cross_entropy(model(ids, state)[0], targets)[0]` and the state."""
        out, state = self.lstm(self.embedding(ids), state)
        return linear_cross_entropy_loss(self.head, out, targets), state


def stream_layout(ids: np.ndarray, streams: int) -> np.ndarray:
    """(N,) → (L, streams): `streams` contiguous pieces of the text side by side, time-major."""
    length = len(ids) // streams
    if length < 2:
        raise ValueError(f"text: too short ({len(ids)} characters) for {streams} streams")
    return ids[: length * streams].reshape(streams, length).T.copy()


@dataclass(frozen=True)
class CharLMOptions(TaskOptions):
    text: str | None = option(None, "a UTF-8 text file (default: Python's standard library source)")
    embedding_dim: int = option(32, "size of each character's embedding", positive_int)
    hidden_size: int = option(256, "LSTM hidden units per layer", positive_int)
    num_layers: int = option(1, "stacked LSTM layers", positive_int)
    dropout: float = option(0.0, "dropout between LSTM layers, in [0, 1)", probability)
    batch_size: int = option(32, "parallel streams of the text per step", positive_int)
    bptt: int = option(64, "k2: characters backpropagated through per window", positive_int)
    stride: int | None = option(
        None, "k1 ≤ bptt: characters per step (default: bptt)", optional(positive_int)
    )
    val_fraction: float = option(0.1, "the end of the text held out for validation", fraction)
    seed: int = option(0, "seed of the weights (and of dropout)", non_negative_int)
    # None, measured (benchmarks/charlm_init.py, two texts, two seeds): a forget bias of 1 left
    # validation 0.03–0.07 bpc behind the plain uniform start after 1,000–1,500 steps.
    forget_bias: float | None = option(
        None,
        "start the forget gate's bias at this value (default: drawn like every other weight, "
        "as torch does)",
        optional(finite_number),
    )
    dtype: str = option("float32", "float32 or float64", float_dtype)

    # Before the option existed every char-LM started with a forget bias of 1.
    stored_defaults: ClassVar[dict[str, Any]] = {"forget_bias": 1.0}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stride is not None and self.stride > self.bptt:
            raise ValueError(
                f"stride: expected 1 ≤ stride (k1) ≤ bptt (k2) = {self.bptt}, got {self.stride}"
            )


class CharLMTask(Task):
    """Character language model on a UTF-8 text (bits per character).

    A :class:`CharLM` trained with truncated BPTT; metrics in nats and bits per character (bpc).
    """

    name = "charlm"
    item_name = "chars"
    default_data = (
        "the default corpus, this Python's standard-library source; checkpoints of earlier "
        "versions trained on Python's documentation topics: write `'\\n\\n'.join(topics[k] "
        "for k in sorted(topics))` (from pydoc_data.topics import topics) to a file and resume "
        "with --text naming it"
    )
    Options = CharLMOptions
    options: CharLMOptions
    model: CharLM

    @takes_options(CharLMOptions)
    def __init__(self, options: CharLMOptions) -> None:
        self.options = options
        path = options.text
        if path is None:
            text = default_corpus()
        else:
            try:
                text = read_data_file("text", path).decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"text: {path!r} is not UTF-8 ({err})") from None
        self._digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.bptt, self.batch_size = options.bptt, options.batch_size
        self.stride = options.bptt if options.stride is None else options.stride
        self.vocab = Vocabulary.from_text(text)
        split = int(len(text) * (1 - options.val_fraction))
        self.train_streams = stream_layout(self.vocab.encode(text[:split]), self.batch_size)
        self.val_streams = stream_layout(self.vocab.encode(text[split:]), 16)
        if len(self.train_streams) <= self.bptt:
            raise ValueError(f"bptt: {self.bptt} is longer than each training stream")
        self.model = CharLM.for_options(options, len(self.vocab))
        self.position, self.epoch = 0, 0
        self.carried = CarriedState()
        self.items_per_step = self.batch_size * self.stride
        self.train_items = self.train_streams.size

    def train_step(self) -> float:
        k1, k2 = self.stride, self.bptt
        if self.position + k2 + 1 > len(self.train_streams):  # the streams are used up
            self.position, self.epoch, self.carried.value = 0, self.epoch + 1, None
        window = self.train_streams[self.position : self.position + k2 + 1]
        counted = np.zeros(window[1:].shape, dtype=bool)
        counted[k2 - k1 :] = True  # earlier targets were already trained by the last window
        loss, _ = self.model.loss_and_backward(
            window[:-1], window[1:], self.carried.value, mask=counted
        )
        self.carried.value = self.model.lstm.state_after(k1)
        self.position += k1
        return loss

    def evaluate(self) -> dict[str, float]:
        """Cross-entropy over the whole validation text, streamed with the state carried."""
        total, count, state = 0.0, 0, None
        for start in range(0, len(self.val_streams) - 1, self.bptt):
            chunk = self.val_streams[start : start + self.bptt + 1]
            loss, state = self.model.loss(chunk[:-1], chunk[1:], state)
            total, count = total + loss * chunk[1:].size, count + chunk[1:].size
        loss = total / count
        return {"loss": loss, "bpc": loss / math.log(2)}

    def baseline(self) -> dict[str, float]:
        """A unigram model (character frequencies of the training text) on the validation text."""
        counts = np.bincount(self.train_streams.reshape(-1), minlength=len(self.vocab)) + 1
        log_p = np.log(counts / counts.sum())
        loss = -float(log_p[self.val_streams[1:].reshape(-1)].mean())
        return {"loss": loss, "bpc": loss / math.log(2)}

    @classmethod
    def data_files(cls, config: dict[str, Any]) -> dict[str, str]:
        text = config.get("text")
        return {"text": text} if isinstance(text, str) else {}

    def data_digest(self) -> str:
        """SHA-256 of the whole text (training and validation parts)."""
        return self._digest

    def state(self) -> tuple[dict[str, Any], Arrays]:
        values, arrays = super().state()
        # The vocabulary travels with the checkpoint, so sampling never needs the text again.
        values |= {"position": self.position, "epoch": self.epoch, "vocabulary": self.vocab.chars}
        return values, arrays | self.carried.arrays()

    def load_state(self, values: dict[str, Any], arrays: Arrays) -> None:
        saved = values.get("vocabulary")
        if saved != self.vocab.chars:  # every character id would mean another character
            raise DataChangedError(
                f"text: the text's characters differ from the checkpoint's vocabulary "
                f"({len(self.vocab)} now, {len(saved) if isinstance(saved, str) else saved!r} "
                "then): the text has changed"
            )
        for key in ("position", "epoch"):
            value = values.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key}: expected a non-negative integer, got {value!r}")
        super().load_state(values, arrays)
        self.position, self.epoch = int(values["position"]), int(values["epoch"])
        self.carried.load(arrays)

    def sample(self, prime: str = "\n", length: int = 200, **kwargs: Any) -> str:
        return sample(self.model, self.vocab, prime, length, **kwargs)


def load_for_sampling(path: str | Path) -> tuple[CharLM, Vocabulary]:
    """The model and vocabulary of a char-LM checkpoint (the training text is not needed)."""
    from ..io.errors import FileFormatError
    from ..train.checkpoint import read_checkpoint
    from ..train.trainer import check_declared_sizes

    saved = read_checkpoint(path)
    task = saved.meta["task"]
    if task.get("name") != CharLMTask.name:
        raise ValueError(f"{path}: not a char-LM checkpoint (task {task.get('name')!r})")
    try:
        chars = task["state"].get("vocabulary")
        if not isinstance(chars, str):
            raise ValueError(f"vocabulary: expected a string, got {chars!r}")
        vocab = Vocabulary(chars)
        check_declared_sizes(task["config"], saved.model)  # before allocating the model
        options = CharLMOptions(**(CharLMOptions.stored_defaults | task["config"]))
        present = sum(int(array.size) for array in saved.model.values())
        if len(vocab) * options.embedding_dim > present:
            raise ValueError(
                f"vocabulary: {len(vocab)} characters × embedding_dim {options.embedding_dim} "
                f"is more than the {present:,} parameters present"
            )
        model = CharLM.for_options(options, len(vocab))
        model.load_state_dict(saved.model)
    except (ValueError, TypeError, KeyError) as err:
        raise FileFormatError(path, str(err)) from None
    return model, vocab


def sample(
    model: CharLM,
    vocab: Vocabulary,
    prime: str,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = 0,
) -> str:
    """Continue `prime` by `length` characters. temperature → 0 approaches greedy decoding;
    top_k keeps only the k most likely characters. Reproducible for a given seed."""
    if not prime:
        raise ValueError("prime: expected at least one character")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if top_k is not None and not 1 <= top_k <= len(vocab):
        raise ValueError(f"top_k: expected 1 ≤ top_k ≤ {len(vocab)}, got {top_k}")
    rng = np.random.default_rng(seed)
    out = []
    with evaluating(model):
        logits, state = model(vocab.encode(prime)[:, None])
        for _ in range(length):
            scores = logits[-1, 0].astype(np.float64) / temperature
            if top_k is not None:
                scores[scores < np.sort(scores)[-top_k]] = -np.inf
            probabilities = np.exp(log_softmax(scores))
            nxt = int(rng.choice(len(vocab), p=probabilities / probabilities.sum()))
            out.append(vocab.chars[nxt])
            logits, state = model(np.array([[nxt]]), state)
    return "".join(out)
