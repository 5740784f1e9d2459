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
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np

from ..kernels import isa_path
from ..kernels import select as kernels
from ..kernels.threads import blas_threads, set_num_threads
from .bench_cases import CASES, IMPLS, QUICK_CASES, Case, Gemms, calls, flops, gemm_shapes
from .errors import UsageError, check_writable, non_negative_number, positive_count

# -- measuring ---------------------------------------------------------------------------------
LEAD_IN_S = 0.12  # back to back: the implementation's own calls, untimed, before each sample
SETTLE_S = 0.15  # settled: the pause before each sample


def measure(
    fns: dict[str, Callable[[], Any]], repeats: int, min_sample_s: float
) -> dict[str, dict[str, float]]:
    """{name: {"median_ms", "min_ms", "settled_ms"}}: warm-up, then `repeats` interleaved
    rounds of two samples per implementation.

    Back to back (median_ms, min_ms), as users make their calls: the implementation's calls one
    after the other, led in by LEAD_IN_S of the same calls untimed, so that what the previous
    implementation left running (OpenBLAS spins its threads ~0.1 s after each call, OpenMP and
    onnxruntime for less) has died down — but whatever the implementation's *own* calls leave
    running counts. Settled (settled_ms, the median): a SETTLE_S pause and one untimed call
    before the sample, as a benchmark that hides spinning threads would measure.
    """
    loops = {}
    for name, fn in fns.items():
        fn()  # warm-up: compile, allocate, fill caches
        start = time.perf_counter()
        fn()
        loops[name] = max(1, int(min_sample_s / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    settled: dict[str, list[float]] = {name: [] for name in fns}

    def timed(name: str) -> float:
        fn = fns[name]
        start = time.perf_counter()
        for _ in range(loops[name]):
            fn()
        return (time.perf_counter() - start) / loops[name] * 1e3

    for _ in range(repeats):
        for name, fn in fns.items():
            lead_in = time.perf_counter() + LEAD_IN_S
            fn()
            while time.perf_counter() < lead_in:
                fn()
            samples[name].append(timed(name))
        for name, fn in fns.items():
            time.sleep(SETTLE_S)
            fn()  # untimed: wakes the threads and the caches up again after the pause
            settled[name].append(timed(name))
    return {
        n: {
            "median_ms": float(np.median(s)),
            "min_ms": min(s),
            "settled_ms": float(np.median(settled[n])),
        }
        for n, s in samples.items()
    }


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


# -- running and reporting ---------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """CPU, BLAS library and kernel architecture, library versions."""
    from threadpoolctl import threadpool_info

    info: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__}
    cpu = _cpuinfo()
    info["cpu"] = cpu.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in cpu and "model" in cpu:  # a bare "AMD EPYC" names no generation
        info["cpu"] += f" (family {cpu['cpu family']}, model {cpu['model']})"
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
    info["isa"] = isa()
    return info


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block ends here
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def isa() -> str:
    """The vector instructions the CPU offers (AVX-512, AVX2 or neither) and the path the fast
    kernels dispatch to (avx512, avx2, generic; none without numba)."""
    flags = set(_cpuinfo().get("flags", "").split())
    offered = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{offered} CPU, kernels: {isa_path()}"  # the SIMD path the fast kernels dispatch to


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
    timed_calls = calls(case, n, np.random.default_rng(0))
    forward_shapes, train_shapes = gemm_shapes(case)
    bound = {"inference": gemm_seconds(forward_shapes, repeats)}
    bound["training"] = gemm_seconds(train_shapes, repeats)
    work = {"inference": flops(forward_shapes), "training": flops(train_shapes)}
    rows = []
    for mode, fns in timed_calls.items():
        row = {"case": asdict(case), "threads": n, "mode": mode}
        row |= {"gemm_bound_ms": bound[mode] * 1e3, "gflop": work[mode] / 1e9}
        rows.append(row | {"timings": measure(fns, repeats, min_sample_s)})
        print(_row_text(rows[-1]), file=sys.stderr, flush=True)
    return rows


# the targets (issue 12): inference at most min(torch, onnxruntime); a training step ≤ 0.9× torch;
# streaming (sampling) at least torch's steps a second — onnxruntime's ratio is shown, not a target
TARGETS = {"inference": (1.0, ("torch", "onnxruntime")), "training": (0.9, ("torch",))}
STREAMING_TARGET = (1.0, ("torch",))


def _verdict(row: dict) -> str:
    t = {k: v["median_ms"] for k, v in row["timings"].items()}
    limit, peers = STREAMING_TARGET if row["case"]["stream"] else TARGETS[row["mode"]]
    ratio = t["ours"] / min(t[k] for k in peers if k in t)
    notes = [f"≤ {limit}×: " + ("met" if ratio <= limit else f"missed, ×{ratio:.2f}")]
    if row["case"]["B"] >= 32 and not (row["case"]["vocab"] or row["case"]["head"]):
        fraction = row["gemm_bound_ms"] / t["ours"]
        notes.append(f"bound {'met' if fraction >= 0.6 else 'missed'}")
    return ", ".join(notes)


def _throughput(row: dict) -> str:
    """Characters (or streamed steps) a second, ours · torch's, where that is the measure."""
    case = row["case"]
    if not (case["vocab"] or case["stream"]):
        return "–"
    items = case["T"] * case["B"]
    rate = {k: items / row["timings"][k]["median_ms"] * 1e3 for k in ("ours", "torch")}
    return f"{rate['ours']:,.0f} · {rate['torch']:,.0f}"


def _row_text(row: dict) -> str:
    t = row["timings"]
    return f"{row['threads']}T {row['case']['name']} {row['mode']}: " + " ".join(
        f"{k} {v['median_ms']:.2f}/{v['min_ms']:.2f}" for k, v in t.items()
    )


def markdown(report: dict) -> str:
    """The results as Markdown: one table per thread count, ms as median (min) back to back."""
    m = report["machine"]
    blas = "; ".join(
        f"{b['internal_api']} {b['version']} ({b['architecture']} kernels, {b.get('owner')})"
        for b in m["blas"]
    )
    lines = [
        f"CPU: {m['cpu']}, {m['cores']} cores, {m.get('isa', '?')} · BLAS: {blas} · "
        f"torch {m['torch']} · onnxruntime {m['onnxruntime']} · numba {m['numba']} · "
        f"NumPy {m['numpy']} · float32, median (min) of {report['repeats']} interleaved "
        "samples, each implementation's calls back to back; settled: after a pause",
    ]
    for n in dict.fromkeys(r["threads"] for r in report["results"]):  # in the order run
        lines += [
            "",
            f"**{n} thread{'s' if n > 1 else ''}** (ms; ratio = ours / peer, < 1 is faster)",
            "",
        ]
        lines.append(
            "| case (T,B,I,H) | mode | ours | reference | torch | onnxruntime | "
            "ours/torch | ours/ORT | settled: ours/torch, ours/ORT | chars or steps/s: ours · "
            "torch | GFLOP/s | GEMM bound | target |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in (r for r in report["results"] if r["threads"] == n):
            t = row["timings"]
            cell = {k: f"{v['median_ms']:.2f} ({v['min_ms']:.2f})" for k, v in t.items()}
            ours, ours_settled = t["ours"]["median_ms"], t["ours"]["settled_ms"]
            ratio = {k: f"{ours / t[k]['median_ms']:.2f}" if k in t else "–" for k in IMPLS}
            settled = ", ".join(
                f"{ours_settled / t[k]['settled_ms']:.2f}" if k in t else "–"
                for k in ("torch", "onnxruntime")
            )
            lines.append(
                f"| {row['case']['name']} | {row['mode']} | "
                + " | ".join(cell.get(k, "–") for k in IMPLS)
                + f" | {ratio['torch']} | {ratio['onnxruntime']} | {settled} | "
                f"{_throughput(row)} | {row['gflop'] / ours * 1e3:.1f} | "
                f"{row['gemm_bound_ms'] / ours:.0%} | {_verdict(row)} |"
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
