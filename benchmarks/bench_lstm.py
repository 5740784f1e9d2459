"""Side-by-side LSTM speed benchmark: numpy-lstm (fast and reference paths) vs torch.nn.LSTM
and onnxruntime, one process, same float32 inputs, same thread counts.

    python benchmarks/bench_lstm.py --threads 1 2 --json out.json [--markdown out.md]

The same as `numpy-lstm bench` (the harness lives in :mod:`numpy_lstm.cli.bench`), with the
command line's error reporting.
"""

from __future__ import annotations

import sys

from numpy_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
