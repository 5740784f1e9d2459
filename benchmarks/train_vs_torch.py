"""Train numpy-lstm and a PyTorch `nn.LSTM` model of the same size side by side: same data, same
initial weights, same optimizer (Adam, torch semantics), same gradient clipping, same wall-clock
budget; print validation loss and throughput. Not a test: timings on shared machines are noisy.

    python benchmarks/train_vs_torch.py charlm --minutes 2 --threads 2
    python benchmarks/train_vs_torch.py adding --T 200 --minutes 3
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from numpy_lstm.kernels.threads import blas_threads
from numpy_lstm.tasks import AddingTask, CharLMTask
from numpy_lstm.tasks.synthetic import adding_batch
from numpy_lstm.train import Trainer, TrainerConfig, one_blas_thread_if_fast
from numpy_lstm.train.optim import Adam


class TorchCharLM(torch.nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embedding)
        self.lstm = torch.nn.LSTM(embedding, hidden, layers)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor, state: tuple | None) -> tuple[torch.Tensor, tuple]:
        out, state = self.lstm(self.embedding(ids), state)
        return self.head(out), state


class TorchAdding(torch.nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(2, hidden)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(x)
        return self.head(h_n[-1])


def run_for(budget_s: float, step: Callable[[], float]) -> tuple[int, float]:
    """Call `step` until the budget is spent; return (steps, seconds)."""
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s:
        step()
        steps += 1
    return steps, time.perf_counter() - start


def torch_update(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor
) -> None:
    """One torch step with the same clipping as our trainer's (global norm 1)."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def race(
    args: argparse.Namespace, task: Any, trainer: Trainer, torch_step: Callable[[], float]
) -> tuple[dict[str, float], tuple[int, float], tuple[int, float]]:
    """Train ours, then torch, each alone for the same minutes; ours is evaluated right away.
    Returns (our metrics, (our steps, seconds), (torch steps, seconds))."""
    with one_blas_thread_if_fast():  # as Trainer.fit does
        ours_run = run_for(args.minutes * 60, trainer.train_step)
    ours = task.evaluate()
    return ours, ours_run, run_for(args.minutes * 60, torch_step)


def charlm(args: argparse.Namespace) -> dict:
    task = CharLMTask(hidden_size=args.hidden, batch_size=32, bptt=64, seed=args.seed)
    trainer = Trainer(
        task, Adam(task.model, lr=args.lr), None, TrainerConfig(clip_norm=1.0, progress=False)
    )
    model = TorchCharLM(len(task.vocab), 32, args.hidden, 1)
    model.load_state_dict({k: torch.tensor(v) for k, v in task.model.state_dict().items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    streams = torch.tensor(task.train_streams)
    position, carried = 0, None

    def torch_step() -> float:
        nonlocal position, carried
        if position + 65 > len(streams):
            position, carried = 0, None
        window = streams[position : position + 65]
        logits, state = model(window[:-1], carried)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), window[1:].reshape(-1)
        )
        torch_update(model, optimizer, loss)
        carried = tuple(s.detach() for s in state)
        position += 64
        return loss.item()

    ours, (ours_steps, ours_s), (theirs_steps, theirs_s) = race(args, task, trainer, torch_step)
    with torch.no_grad():
        total, count, state = 0.0, 0, None
        val = torch.tensor(task.val_streams)
        for start in range(0, len(val) - 1, 64):
            chunk = val[start : start + 65]
            logits, state = model(chunk[:-1], state)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), chunk[1:].reshape(-1), reduction="sum"
            )
            total, count = total + loss.item(), count + chunk[1:].numel()
    chars = 32 * 64
    return {
        "numpy-lstm": {
            "val_bpc": ours["bpc"],
            "steps": ours_steps,
            "chars_per_s": ours_steps * chars / ours_s,
        },
        "torch": {
            "val_bpc": total / count / math.log(2),
            "steps": theirs_steps,
            "chars_per_s": theirs_steps * chars / theirs_s,
        },
        "unigram_baseline_bpc": task.baseline()["bpc"],
    }


def adding(args: argparse.Namespace) -> dict:
    task = AddingTask(T=args.T, hidden_size=args.hidden, batch_size=64, seed=args.seed)
    trainer = Trainer(
        task, Adam(task.model, lr=args.lr), None, TrainerConfig(clip_norm=1.0, progress=False)
    )
    model = TorchAdding(args.hidden)
    model.load_state_dict({k: torch.tensor(v) for k, v in task.model.state_dict().items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    data = np.random.default_rng(args.seed + 1)

    def torch_step() -> float:
        x, y = adding_batch(data, 64, args.T)
        loss = torch.nn.functional.mse_loss(model(torch.tensor(x)), torch.tensor(y))
        torch_update(model, optimizer, loss)
        return loss.item()

    ours, (ours_steps, ours_s), (theirs_steps, theirs_s) = race(args, task, trainer, torch_step)
    with torch.no_grad():
        theirs = torch.nn.functional.mse_loss(
            model(torch.tensor(task.eval_x)), torch.tensor(task.eval_y)
        ).item()
    return {
        "numpy-lstm": {
            "val_mse": ours["mse"],
            "steps": ours_steps,
            "seq_per_s": ours_steps * 64 / ours_s,
        },
        "torch": {
            "val_mse": theirs,
            "steps": theirs_steps,
            "seq_per_s": theirs_steps * 64 / theirs_s,
        },
        "predict_1_baseline_mse": task.baseline()["mse"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["charlm", "adding"])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.hidden = args.hidden or (256 if args.task == "charlm" else 64)
    args.lr = args.lr or (3e-3 if args.task == "charlm" else 1e-3)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with blas_threads(args.threads):  # torch's own threads: set_num_threads above
        result = charlm(args) if args.task == "charlm" else adding(args)
    print(
        json.dumps(
            {
                "task": args.task,
                "minutes": args.minutes,
                "threads": args.threads,
                "hidden": args.hidden,
                **result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
