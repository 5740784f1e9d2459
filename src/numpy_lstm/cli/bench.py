"""Side-by-side speed benchmark: numpy-lstm (its default path and its pure-NumPy reference)
against torch.nn.LSTM (oneDNN) and onnxruntime, in one process, on the same float32 inputs.

For each case and thread count every implementation is warmed up, then timed in interleaved
rounds (so that a noisy neighbour hurts all columns alike); a sample is the mean of enough calls
to last `min_sample_s`, and we report the median and the minimum of `repeats` samples. Threads
are set for everyone: BLAS via threadpoolctl, `torch.set_num_threads` (its OpenMP threads too),
onnxruntime's `intra_op_num_threads` and numpy-lstm's own kernel threads.

The GEMM bound of a case is what its matrix products alone take with NumPy's BLAS at the same
thread count: T × one per-step (B×H)·(H×4H) product plus the one input product per
layer-direction (and for training the backward's per-step and weight-gradient products).
`numpy-lstm bench` and `benchmarks/bench_lstm.py` run :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from ..kernels import select as kernels
from ..kernels.threads import blas_threads, set_num_threads
from ..nn.lstm import LSTM
from .errors import UsageError, check_writable, non_negative_number, positive_count


@dataclass(frozen=True)
class Case:
    """An LSTM of `layers` layers over (T, B, I) inputs with H units; `vocab` > 0 makes it a
    char-LM training step: embedding (vocab → I) + LSTM + linear (H → vocab) + softmax CE."""

    name: str
    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    bidirectional: bool = False
    vocab: int = 0

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
)
QUICK_CASES = (
    Case("20,4,8,16", 20, 4, 8, 16),
    Case("char-LM 20,4,V12,E8,16", 20, 4, 8, 16, vocab=12),
)
IMPLS = ("ours", "reference", "torch", "onnxruntime")
SETTLE_S = 0.15  # with several threads, the pause before each sample (see measure)


# -- measuring ---------------------------------------------------------------------------------
def measure(
    fns: dict[str, Callable[[], Any]], repeats: int, min_sample_s: float, settle_s: float = 0
) -> dict[str, dict[str, float]]:
    """{name: {"median_ms", "min_ms"}}: warm-up, then `repeats` interleaved rounds.

    `settle_s`: a pause (and an untimed call) before each sample. Thread pools spin idle after
    their work — OpenBLAS for ~0.1 s, OpenMP and onnxruntime for shorter — taking cores from
    whatever runs next; the pause keeps one implementation's spinning out of the next one's
    timing.
    """
    loops = {}
    for name, fn in fns.items():
        fn()  # warm-up: compile, allocate, fill caches
        start = time.perf_counter()
        fn()
        loops[name] = max(1, int(min_sample_s / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if settle_s:
                time.sleep(settle_s)
                fn()  # untimed: wakes the threads and the caches up again after the pause
            start = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / loops[name] * 1e3)
    return {n: {"median_ms": float(np.median(s)), "min_ms": min(s)} for n, s in samples.items()}


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Use n threads everywhere: BLAS (threadpoolctl), torch (its OpenMP), our kernels."""
    previous = set_num_threads(n)
    try:
        import torch
    except ImportError:
        torch_previous = None
    else:
        torch_previous = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        with blas_threads(n):
            yield
    finally:
        set_num_threads(previous)
        if torch_previous is not None:
            torch.set_num_threads(torch_previous)


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
    if case.vocab:
        forward.append((1, TB, H, case.vocab))
        train += [(1, TB, case.vocab, H), (1, case.vocab, TB, H)]
    return forward, forward + train


def gemm_seconds(shapes: Gemms, repeats: int) -> float:
    """The fastest time NumPy's BLAS takes for these products (with the current threads)."""
    rng = np.random.default_rng(0)
    total = 0.0
    for count, M, K, N in shapes:
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((K, N), dtype=np.float32)
        out = np.empty((M, N), np.float32)
        timing = measure({"gemm": partial(np.matmul, a, b, out=out)}, repeats, 2e-3)
        total += count * timing["gemm"]["min_ms"] / 1e3
    return total


def flops(shapes: Gemms) -> float:
    return float(sum(2 * count * M * K * N for count, M, K, N in shapes))


# -- the implementations -----------------------------------------------------------------------
def _models(case: Case, rng: np.random.Generator) -> tuple[LSTM, Any]:
    """Our LSTM and torch's, with torch's initial weights in both."""
    import torch

    theirs = torch.nn.LSTM(case.I, case.H, case.layers, bidirectional=case.bidirectional)
    ours = LSTM(case.I, case.H, case.layers, bidirectional=case.bidirectional, dtype=np.float32)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _onnx_session(ours: LSTM, n_threads: int) -> Any:
    """An onnxruntime session of our exported model, or None if export/runtime is missing."""
    try:
        import onnxruntime as ort

        from ..io.onnx.export import export_onnx
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = n_threads, 1
    model = export_onnx(ours).SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def lstm_calls(case: Case, n_threads: int, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
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

    inference = {"ours": lambda: ours(x), "reference": _reference(lambda: ours(x))}
    inference["torch"] = torch_infer
    session = _onnx_session(ours, n_threads)
    if session is not None:
        feed = {session.get_inputs()[0].name: x}
        inference["onnxruntime"] = lambda: session.run(None, feed)
    training = {"ours": ours_train, "reference": _reference(ours_train), "torch": torch_train}
    return {"inference": inference, "training": training}


def _reference(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        with kernels.use_fast(False):
            return fn()

    return call


def charlm_calls(case: Case, n_threads: int, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
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


# -- running and reporting ---------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """CPU, BLAS library and kernel architecture, library versions."""
    from threadpoolctl import threadpool_info

    info: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(
                ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")
            )
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or platform.machine()
    info["cores"] = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    )
    info["blas"] = [  # `owner`: the package that ships it — numpy.libs is the one we call
        {k: lib.get(k) for k in ("internal_api", "version", "architecture", "threading_layer")}
        | {"owner": os.path.basename(os.path.dirname(lib["filepath"]))}
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    ]
    for name in ("torch", "onnxruntime", "numba"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    info["fast_path"] = kernels.fast_enabled()
    return info


def startup_times() -> dict[str, float]:
    """Seconds for `import numpy_lstm`, and for a first forward+backward with the kernels
    compiled from scratch (an empty numba cache) and loaded from the cache, each in a fresh
    interpreter."""
    import tempfile

    snippet = (
        "import time; t = time.perf_counter(); import numpy as np, numpy_lstm; "
        "t1 = time.perf_counter(); m = numpy_lstm.LSTM(4, 8, dtype=np.float32); "
        "o, _ = m(np.ones((5, 4, 4), np.float32)); m.backward(o); "
        "print(t1 - t, time.perf_counter() - t1)"
    )
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("compile", "cached"):
            out = subprocess.run(
                [sys.executable, "-c", snippet], env=env, capture_output=True, text=True, check=True
            ).stdout.split()
            result["import_s"], result[f"first_call_{label}_s"] = float(out[0]), float(out[1])
    return result


def run(
    cases: Sequence[Case], thread_counts: Sequence[int], repeats: int, min_sample_s: float
) -> dict:
    """Every case at every thread count; the results as a JSON-able dict."""
    rows = []
    for n in thread_counts:
        with threads(n):
            for case in cases:
                rows += run_case(case, n, repeats, min_sample_s)
    return {"machine": machine(), "repeats": repeats, "results": rows}


def run_case(case: Case, n: int, repeats: int, min_sample_s: float) -> list[dict]:
    """One case at n threads (already set): a row per mode (inference, training)."""
    calls = (charlm_calls if case.vocab else lstm_calls)(case, n, np.random.default_rng(0))
    forward_shapes, train_shapes = gemm_shapes(case)
    bound = {"inference": gemm_seconds(forward_shapes, repeats)}
    bound["training"] = gemm_seconds(train_shapes, repeats)
    work = {"inference": flops(forward_shapes), "training": flops(train_shapes)}
    rows = []
    for mode, fns in calls.items():
        row = {"case": asdict(case), "threads": n, "mode": mode}
        row |= {"gemm_bound_ms": bound[mode] * 1e3, "gflop": work[mode] / 1e9}
        settle = SETTLE_S if n > 1 else 0.0
        rows.append(row | {"timings": measure(fns, repeats, min_sample_s, settle)})
        print(_row_text(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _verdict(row: dict) -> str:
    t = {k: v["median_ms"] for k, v in row["timings"].items()}
    peers = [t[k] for k in ("torch", "onnxruntime") if k in t]
    ratio = t["ours"] / min(peers)
    notes = ["met" if ratio <= 1 else f"missed ×{ratio:.{3 if ratio < 1.005 else 2}f}"]
    if row["case"]["B"] >= 32 and row["case"]["vocab"] == 0:
        fraction = row["gemm_bound_ms"] / t["ours"]
        notes.append(f"bound {'met' if fraction >= 0.6 else 'missed'}")
    return ", ".join(notes)


def _row_text(row: dict) -> str:
    t = row["timings"]
    return f"{row['threads']}T {row['case']['name']} {row['mode']}: " + " ".join(
        f"{k} {v['median_ms']:.2f}/{v['min_ms']:.2f}" for k, v in t.items()
    )


def markdown(report: dict) -> str:
    """The results as Markdown: one table per thread count, ms as median (min)."""
    m = report["machine"]
    blas = "; ".join(
        f"{b['internal_api']} {b['version']} ({b['architecture']} kernels, {b.get('owner')})"
        for b in m["blas"]
    )
    lines = [
        f"CPU: {m['cpu']}, {m['cores']} cores · BLAS: {blas} · torch {m['torch']} · "
        f"onnxruntime {m['onnxruntime']} · numba {m['numba']} · NumPy {m['numpy']} · "
        f"float32, median (min) of {report['repeats']} interleaved samples",
    ]
    for n in dict.fromkeys(r["threads"] for r in report["results"]):  # in the order run
        lines += [
            "",
            f"**{n} thread{'s' if n > 1 else ''}** (ms; ratio = ours / peer, < 1 is faster)",
            "",
        ]
        lines.append(
            "| case (T,B,I,H) | mode | ours | reference | torch | onnxruntime | "
            "ours/torch | ours/ORT | GFLOP/s | GEMM bound | target |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for row in (r for r in report["results"] if r["threads"] == n):
            t = row["timings"]
            cell = {k: f"{v['median_ms']:.2f} ({v['min_ms']:.2f})" for k, v in t.items()}
            ours = t["ours"]["median_ms"]
            ratio = {k: f"{ours / t[k]['median_ms']:.2f}" if k in t else "–" for k in IMPLS}
            lines.append(
                f"| {row['case']['name']} | {row['mode']} | "
                + " | ".join(cell.get(k, "–") for k in IMPLS)
                + f" | {ratio['torch']} | {ratio['onnxruntime']} | "
                f"{row['gflop'] / ours * 1e3:.1f} | {row['gemm_bound_ms'] / ours:.0%} | "
                f"{_verdict(row)} |"
            )
    if "startup" in report:
        s = report["startup"]
        lines += [
            "",
            f"`import numpy_lstm`: {s['import_s']:.3f} s; first forward+backward: "
            f"{s['first_call_compile_s']:.1f} s compiling the kernels, "
            f"{s['first_call_cached_s']:.2f} s with numba's disk cache",
        ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive_count("threads"),
        nargs="+",
        default=[2, 1],
        help="(default: 2 1)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_count("repeats"),
        default=7,
        help="samples per timing (default: 7)",
    )
    parser.add_argument(
        "--min-sample",
        type=non_negative_number("min_sample"),
        default=0.05,
        metavar="SECONDS",
        help="each sample repeats a call until it lasts this long (default: 0.05)",
    )
    parser.add_argument("--cases", nargs="+", metavar="NAME", help="only cases whose name has NAME")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke test")
    parser.add_argument("--startup", action="store_true", help="also time import and compilation")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown")


def run_from_args(args: argparse.Namespace) -> int:
    cases: tuple[Case, ...] = QUICK_CASES if args.quick else CASES
    if args.cases:
        unknown = [s for s in args.cases if not any(s in c.name for c in cases)]
        if unknown:
            names = "; ".join(c.name for c in cases)
            raise UsageError(f"--cases: no case name contains {unknown[0]!r} (the cases: {names})")
        cases = tuple(c for c in cases if any(s in c.name for s in args.cases))
    for path, flag in ((args.json, "--json"), (args.markdown, "--markdown")):
        if path:  # now, not after minutes of timing
            check_writable(path, flag, replaced=False)  # written in place
    try:
        import torch  # noqa: F401  (the peer every case is timed against)
    except ImportError as err:
        raise ImportError("bench needs torch: pip install 'numpy-lstm[bench]'") from err
    report = run(cases, args.threads, args.repeats, args.min_sample)
    if args.startup:
        report["startup"] = startup_times()
    text = markdown(report)
    print(text)
    if args.json:
        _write(args.json, json.dumps(report, indent=1))
    if args.markdown:
        _write(args.markdown, text + "\n")
    return 0


def _write(path: str, text: str) -> None:
    """Write a report file; an error while writing (a full disk) names it, as opening does."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        err.filename = err.filename or path
        raise
