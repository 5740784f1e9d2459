"""The char-LM's default corpus is the running Python's standard-library source: present on every
CPython, built without a network, the same on every call, ASCII without changing what the code
means, large enough that the 4-minute demo reads less than once over it, and ordered so that the
held-out end is a sample of modules like the rest."""

from __future__ import annotations

import ast
import hashlib
import re
import socket
import sysconfig
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from numpy_lstm.cli.demo import DemoSettings
from numpy_lstm.tasks.charlm import CharLMTask, Vocabulary, default_corpus

HEADER = re.compile(r"^# file: (.+)$", re.MULTILINE)
STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def corpus() -> str:
    return default_corpus()


def files_of(corpus: str) -> dict[str, str]:
    """{path: the text after its header line, up to the next header}."""
    heads = list(HEADER.finditer(corpus))
    ends = [m.start() for m in heads[1:]] + [len(corpus)]
    return {m.group(1): corpus[m.end() + 1 : end] for m, end in zip(heads, ends, strict=True)}


def test_it_is_every_utf8_module_of_the_standard_library_and_needs_no_network(
    monkeypatch: pytest.MonkeyPatch, corpus: str
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("this test has no network")

    monkeypatch.setattr(socket, "socket", no_network)
    assert default_corpus() == corpus  # built offline, and the same on every call
    assert len(corpus) >= 3_000_000
    expected = set()
    for path in STDLIB.rglob("*.py"):  # an independent listing: pathlib, not os.walk
        relative = path.relative_to(STDLIB)
        if {"site-packages", "dist-packages"} & set(relative.parts):
            continue  # third-party packages
        if path.name.startswith("_sysconfigdata") or relative.parts[0].startswith("config-"):
            continue  # written by the build, with its paths: not the same on every install
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:  # deliberately mis-encoded test data
            continue
        expected.add(relative.as_posix())
    paths = HEADER.findall(corpus)
    assert len(paths) == len(set(paths)) and set(paths) == expected
    source = (STDLIB / "textwrap.py").read_text(encoding="utf-8")
    assert files_of(corpus)["textwrap.py"] == source  # an ASCII module, word for word


def test_files_are_ordered_by_the_hash_of_their_path(corpus: str) -> None:
    paths = HEADER.findall(corpus)
    digests = [hashlib.sha256(path.encode()).hexdigest() for path in paths]
    assert digests == sorted(digests)


def test_the_held_out_end_is_a_sample_of_modules_like_the_rest(corpus: str) -> None:
    """The last 10% (CharLMTask's validation text) holds modules from all over the library —
    not the alphabetically last packages — and tests in the same share as the whole."""
    split = int(len(corpus) * 0.9)
    paths = HEADER.findall(corpus)
    tail = HEADER.findall(corpus[split:])
    assert len(tail) >= 100
    alphabetical = sorted(paths)
    ranks = [alphabetical.index(path) / len(paths) for path in tail]
    assert 0.35 < float(np.median(ranks)) < 0.65
    assert len({path.split("/")[0] for path in tail}) >= 20  # top-level modules and packages

    def tests(some: list[str]) -> float:
        return sum("test" in path.split("/")[:-1] for path in some) / len(some)

    assert abs(tests(tail) - tests(paths)) < 0.15


def test_non_ascii_characters_become_escapes_that_keep_the_code_the_same(corpus: str) -> None:
    assert corpus.isascii()
    assert set(corpus) <= {chr(c) for c in range(32, 127)} | {"\n"}
    for module in ("zipfile.py", "test/test_unicode.py"):
        original = (STDLIB / module).read_text(encoding="utf-8")
        assert not original.isascii()
        escaped = files_of(corpus)[module]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # invalid escapes in old tests
            assert ast.dump(ast.parse(escaped)) == ast.dump(ast.parse(original)), module


def test_the_four_minute_demo_reads_the_training_text_less_than_once() -> None:
    task = CharLMTask(hidden_size=8, embedding_dim=4)
    assert len(task.vocab) == task.model.head.out_features <= 96
    read = DemoSettings(minutes=4).steps * task.items_per_step
    assert read < 0.5 * task.train_streams.size


def test_encode_and_decode_are_a_character_by_character_lookup(rng: np.random.Generator) -> None:
    vocab = Vocabulary("\n ab€😀")  # any order, characters beyond the first 65,536
    text = "".join(rng.choice(list(vocab.chars), size=500))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [vocab.chars.index(ch) for ch in text])
    assert vocab.decode(ids) == text and vocab.decode([]) == "" and vocab.encode("").size == 0
    with pytest.raises(ValueError, match=r"text: characters not in the vocabulary: \['c', 'é'\]"):
        vocab.encode("aébc")
