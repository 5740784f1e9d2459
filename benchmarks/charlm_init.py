"""Which initialisation should the char-LM task start from? Train the same model from three starts
for the same number of steps and compare validation bits per character.

    python benchmarks/charlm_init.py --text topics.txt --steps 250 500 1000 --json out.json
    python benchmarks/charlm_init.py --steps 500 1000 1500          # the default corpus

The starts, all for Embedding 64 → LSTM 256 → Linear, B 32 × T 100, Adam 2e-3, clip 5:

    forget-bias-1   CharLMTask(forget_bias=1.0): torch's uniform draws, the forget block of the
                    bias set to exactly 1 (Jozefowicz et al. 2015's advice)
    uniform         CharLMTask's default: every weight and bias ~ U(±1/√H) (torch's scheme)
    torch           torch's own modules, made after torch.manual_seed(seed), loaded into ours

Training is step for step the same computation as torch's, so any difference comes from the
start alone. Steps, not seconds: the result does not depend on the machine's speed or load
(one thread for everything, so the run is deterministic). Validation uses the first
`--val-chars` characters of the held-out text (the same prefix for every start).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from numpy_lstm.kernels import set_num_threads
from numpy_lstm.kernels.threads import blas_threads
from numpy_lstm.tasks import CharLMTask
from numpy_lstm.train import Trainer, TrainerConfig
from numpy_lstm.train.optim import Adam

STARTS = ("forget-bias-1", "uniform", "torch")
EMBEDDING, HIDDEN, BATCH, BPTT, LR, CLIP = 64, 256, 32, 100, 2e-3, 5.0
VAL_STREAMS = 16  # CharLMTask's held-out text is laid out as 16 streams


def build(text: str | None, seed: int, start: str, val_chars: int) -> CharLMTask:
    """A char-LM task whose model starts from `start` (see the module docstring)."""
    forget_bias = 1.0 if start == "forget-bias-1" else None
    task = CharLMTask(
        text=text,
        embedding_dim=EMBEDDING,
        hidden_size=HIDDEN,
        batch_size=BATCH,
        bptt=BPTT,
        seed=seed,
        forget_bias=forget_bias,
    )
    if start == "torch":
        torch.manual_seed(seed)
        modules = {
            "embedding": torch.nn.Embedding(len(task.vocab), EMBEDDING),
            "lstm": torch.nn.LSTM(EMBEDDING, HIDDEN),
            "head": torch.nn.Linear(HIDDEN, len(task.vocab)),
        }
        task.model.load_state_dict(
            {
                f"{name}.{key}": value.numpy()
                for name, module in modules.items()
                for key, value in module.state_dict().items()
            }
        )
    task.val_streams = task.val_streams[: val_chars // VAL_STREAMS + 1]
    return task


def run(text: str | None, seed: int, start: str, steps: list[int], val_chars: int) -> dict:
    task = build(text, seed, start, val_chars)
    trainer = Trainer(
        task, Adam(task.model, lr=LR), None, TrainerConfig(clip_norm=CLIP, progress=False)
    )
    row: dict[str, Any] = {"text": text or "default corpus", "seed": seed, "start": start}
    began = time.perf_counter()
    with blas_threads(1):
        for step in range(1, max(steps) + 1):
            trainer.train_step()
            if step in steps:
                row[f"val_bpc@{step}"] = round(task.evaluate()["bpc"], 4)
    row["seconds"] = round(time.perf_counter() - began)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", help="a UTF-8 text (default: CharLMTask's default corpus)")
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 1500])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--starts", nargs="+", choices=STARTS, default=list(STARTS))
    parser.add_argument("--val-chars", type=int, default=400_000)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    set_num_threads(1)
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for start in args.starts:
            rows.append(run(args.text, seed, start, sorted(args.steps), args.val_chars))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
