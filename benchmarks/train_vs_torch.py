"""Train numpy-lstm and PyTorch side by side for equal wall-clock time, as their users would.

It compares how fast each trains and what each learns. Not a test: timings on shared machines
are noisy — run it on a quiet machine, and more than once.

    python benchmarks/train_vs_torch.py charlm                          # 180 s each side
    python benchmarks/train_vs_torch.py charlm --text topics.txt --json charlm-topics.json
    python benchmarks/train_vs_torch.py charlm --eval-every 30   # also validate every 30 s
    python benchmarks/train_vs_torch.py adding --T 200 --seconds 180

charlm (issue 12): the same model on both sides — Embedding(V, 64) → LSTM(64, 256) → Linear(256,
V) — trained with truncated BPTT over 32 parallel streams of 100 characters, the state carried
from window to window, Adam (lr 2e-3) and the gradients' global norm clipped to 5, each for
`--seconds`. Ours is what `numpy-lstm train charlm` runs: a CharLMTask (its default
initialisation, `--seed`) stepped by `Trainer.train_step`, BLAS held to one thread as
`Trainer.fit` holds it. torch's model starts from torch's own default initialisation
(`torch.manual_seed(seed)`), as a torch user's would, and trains on the same windows of the
same text. Both are then evaluated on the same held-out text, the same way: the end of the text
(`CharLMTask.val_streams`, 16 streams), read in chunks of 100 characters with the state carried;
`--val-chars N` takes the same first N characters of it on both sides (the whole held-out part
of the default corpus, ≈ 3.2 M characters, takes a while to read). `--eval-every S` also
validates both sides every S seconds of training, on a clock that stops while it runs, as a user
watching for the best checkpoint would: a faster side reads a small text more often and may
overfit sooner, and the last validation alone would count that against it. The JSON gives
chars/s, steps, validation bits per character (at the end; with `--eval-every` also each
validation and the best), the unigram baseline, the CPU, its ISA and the threads, and the ratio
of the throughputs (ours / torch) and the differences of the bpc (ours − torch).

`--text PATH` trains on any UTF-8 file instead of the default corpus (Python's standard library
source). A second, English text that needs no download is Python's own documentation topics:

    python -c "from pydoc_data.topics import topics; \
open('topics.txt', 'w').write('\\n\\n'.join(topics[k] for k in sorted(topics)))"

Order: torch trains first, then ours (`--order ours-first` swaps them). The first slot is the
one a machine is freshest for (nothing has run for minutes, caches and clocks as at rest), so
by default any advantage of going first goes to the peer, not to us; run both orders to see
whether the order matters on your machine. Before either clock starts, each side runs warm-up
steps at the same shapes on a throwaway copy (numba's kernels load or compile, oneDNN builds its
primitives); their seconds are reported, not raced.

adding: the adding problem (Hochreiter & Schmidhuber 1997), ours (AddingTask) and torch from
the same initial weights, Adam lr 1e-3, clip 1, for `--seconds` each; validation MSE.

`--threads N` (default 2) sets numpy-lstm's kernel threads, torch's threads and BLAS's.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from numpy_lstm import __version__
from numpy_lstm.cli.bench import machine, threads
from numpy_lstm.cli.bench_cases import Case, random_text_charlm
from numpy_lstm.tasks import AddingTask, CharLMTask
from numpy_lstm.tasks.synthetic import adding_batch
from numpy_lstm.train import Trainer, TrainerConfig, one_blas_thread_if_fast
from numpy_lstm.train.optim import Adam

CHARLM = {"embedding": 64, "hidden": 256, "batch": 32, "bptt": 100, "lr": 2e-3, "clip": 5.0}
ADDING = {"hidden": 64, "batch": 64, "lr": 1e-3, "clip": 1.0}
VAL_STREAMS = 16  # CharLMTask.val_streams: the held-out text as 16 streams side by side
WARMUP_STEPS = 2
LAST_STEPS = 100  # the training loss reported: the mean over this many last steps


class TorchCharLM(torch.nn.Module):
    """The torch user's char-LM, with our CharLM's parameter names."""

    def __init__(self, vocab: int, embedding: int, hidden: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embedding)
        self.lstm = torch.nn.LSTM(embedding, hidden)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """ids: (T, B) → logits (T, B, V) and the final state."""
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


def run_for(
    seconds: float,
    step: Callable[[], float],
    evaluate: Callable[[], float] | None = None,
    eval_every: float | None = None,
) -> dict[str, Any]:
    """Call `step` until `seconds` of training have passed: steps, seconds, mean loss of the
    last steps. With `evaluate`: also every `eval_every` seconds of training, on a clock that
    stops while it runs; `curve` lists (seconds, steps, value) of those evaluations."""
    losses: list[float] = []
    curve: list[dict[str, float]] = []
    trained, next_eval = 0.0, eval_every or math.inf
    while trained < seconds:
        start = time.perf_counter()
        losses.append(step())
        trained += time.perf_counter() - start
        if evaluate is not None and next_eval <= trained < seconds:
            curve.append({"seconds": trained, "steps": len(losses), "value": evaluate()})
            next_eval += cast(float, eval_every)
    return {
        "steps": len(losses),
        "seconds": trained,
        "last_loss": float(np.mean(losses[-LAST_STEPS:])),
        "curve": curve,
    }


Side = tuple[Callable[[], float], Callable[[], float] | None]  # a training step, an evaluation


def race(
    order: str, seconds: float, ours: Side, theirs: Side, eval_every: float | None = None
) -> dict[str, dict[str, Any]]:
    """Each side alone for `seconds`, in `order`, evaluated every `eval_every` seconds if given;
    ours inside the one-BLAS-thread context that `Trainer.fit` trains (and evaluates) in."""

    def ours_run() -> dict[str, Any]:
        with one_blas_thread_if_fast():
            return run_for(seconds, *ours, eval_every)

    sides = {"numpy-lstm": ours_run, "torch": lambda: run_for(seconds, *theirs, eval_every)}
    names = ["torch", "numpy-lstm"] if order == "torch-first" else ["numpy-lstm", "torch"]
    runs = {}
    for name in names:
        say(f"{name}: training for {seconds:g} s")
        runs[name] = sides[name]()
    return runs


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seconds_of(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- char-LM -------------------------------------------------------------------------------------
def charlm_task(args: argparse.Namespace) -> CharLMTask:
    """Ours as `numpy-lstm train charlm` builds it, with the race's sizes."""
    say(f"reading {args.text or 'the default corpus (Python standard library source)'}")
    task = CharLMTask(
        text=args.text,
        embedding_dim=CHARLM["embedding"],
        hidden_size=args.hidden,
        batch_size=CHARLM["batch"],
        bptt=CHARLM["bptt"],
        seed=args.seed,
    )
    if args.val_chars is not None:  # the same first N characters of every stream, both sides
        rows = args.val_chars // VAL_STREAMS + 1  # + 1: the first row is only read
        task.val_streams = task.val_streams[:rows].copy()
    return task


def torch_charlm_step(model: TorchCharLM, streams: torch.Tensor, lr: float) -> Callable[[], float]:
    """A torch user's training step over `streams` (L, B): the next window of bptt + 1 rows,
    the state carried (detached), cross_entropy, backward, clip_grad_norm_, Adam."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    bptt, position = CHARLM["bptt"], 0
    carried: tuple[torch.Tensor, torch.Tensor] | None = None

    def step() -> float:
        nonlocal position, carried
        if position + bptt + 1 > len(streams):  # the streams are used up: start again
            position, carried = 0, None
        window = streams[position : position + bptt + 1]
        optimizer.zero_grad()
        logits, state = model(window[:-1], carried)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), window[1:].reshape(-1)
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CHARLM["clip"])
        optimizer.step()
        carried = (state[0].detach(), state[1].detach())
        position += bptt
        return loss.item()

    return step


def torch_charlm_bpc(model: TorchCharLM, val_streams: np.ndarray) -> float:
    """Bits per character on `val_streams` (L, 16) read as CharLMTask.evaluate reads it: chunks
    of bptt characters, the state carried, the mean loss of each chunk weighted by its size."""
    val = torch.from_numpy(val_streams)
    total, count, state = 0.0, 0, None
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(val) - 1, CHARLM["bptt"]):
            chunk = val[start : start + CHARLM["bptt"] + 1]
            logits, state = model(chunk[:-1], state)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), chunk[1:].reshape(-1)
            )
            total, count = total + loss.item() * chunk[1:].numel(), count + chunk[1:].numel()
    model.train()
    return total / count / math.log(2)


def warm_up_charlm(
    task: CharLMTask, model: TorchCharLM, hidden: int, lr: float
) -> dict[str, float]:
    """Seconds of a few steps and an evaluation at the race's shapes, on throwaway copies: a
    small CharLMTask over a random text of the same vocabulary size, and a copy of torch's."""
    T, B, E, H = CHARLM["bptt"], CHARLM["batch"], CHARLM["embedding"], hidden
    spare = random_text_charlm(
        Case("warm-up", T, B, E, H, vocab=len(task.vocab)), np.random.default_rng(0)
    )
    trainer = Trainer(spare, Adam(spare.model, lr=lr), config=_config(), out=io.StringIO())

    def ours() -> None:
        with one_blas_thread_if_fast():
            for _ in range(WARMUP_STEPS):
                trainer.train_step()
            trainer.evaluate()

    copied = copy.deepcopy(model)
    step = torch_charlm_step(copied, torch.from_numpy(spare.train_streams), lr)

    def theirs() -> None:
        for _ in range(WARMUP_STEPS):
            step()
        torch_charlm_bpc(copied, spare.val_streams)

    return {"numpy-lstm": seconds_of(ours), "torch": seconds_of(theirs)}


def _config() -> TrainerConfig:
    return TrainerConfig(clip_norm=CHARLM["clip"], progress=False)


def charlm(args: argparse.Namespace) -> dict[str, Any]:
    lr = args.lr or CHARLM["lr"]
    task = charlm_task(args)
    trainer = Trainer(task, Adam(task.model, lr=lr), config=_config(), out=io.StringIO())
    torch.manual_seed(args.seed)  # torch's own default initialisation, as a torch user's
    model = TorchCharLM(len(task.vocab), CHARLM["embedding"], args.hidden)
    warmup = warm_up_charlm(task, model, args.hidden, lr)
    torch_step = torch_charlm_step(model, torch.from_numpy(task.train_streams), lr)

    def ours_bpc() -> float:
        return float(trainer.evaluate()["bpc"])

    def torch_bpc() -> float:
        return torch_charlm_bpc(model, task.val_streams)

    ours_side, torch_side = (trainer.train_step, ours_bpc), (torch_step, torch_bpc)
    runs = race(args.order, args.seconds, ours_side, torch_side, args.eval_every)

    say(f"evaluating on {VAL_STREAMS * (len(task.val_streams) - 1):,} held-out characters")
    with one_blas_thread_if_fast():  # as Trainer.fit evaluates
        final = ours_bpc()
    bpc = {"numpy-lstm": final, "torch": torch_bpc()}
    chars_per_step = CHARLM["batch"] * CHARLM["bptt"]
    sides = {}
    for name, run in runs.items():
        curve = [*run["curve"], {"seconds": run["seconds"], "steps": run["steps"]}]
        curve[-1]["value"] = bpc[name]
        sides[name] = {
            "chars_per_s": run["steps"] * chars_per_step / run["seconds"],
            "steps": run["steps"],
            "seconds": run["seconds"],
            "val_bpc": bpc[name],
            "best_val_bpc": min(point["value"] for point in curve),
            "val_curve": [
                {"seconds": p["seconds"], "steps": p["steps"], "val_bpc": p["value"]} for p in curve
            ],
            f"train_bpc_last_{LAST_STEPS}_steps": run["last_loss"] / math.log(2),
            "warmup_s": warmup[name],
        }
    ours, theirs = sides["numpy-lstm"], sides["torch"]
    return {
        "text": args.text or "default corpus: this Python's standard-library source",
        "train_chars": int(task.train_streams.size),
        "val_chars": VAL_STREAMS * (len(task.val_streams) - 1),
        "model": {
            "vocab": len(task.vocab),
            "embedding": CHARLM["embedding"],
            "hidden": args.hidden,
            "batch": CHARLM["batch"],
            "bptt": CHARLM["bptt"],
            "optimizer": f"Adam lr {lr:g}",
            "clip_norm": CHARLM["clip"],
            "init": {"numpy-lstm": f"CharLMTask seed {args.seed}", "torch": "torch default"},
        },
        "numpy-lstm": ours,
        "torch": theirs,
        "unigram_baseline_bpc": task.baseline()["bpc"],
        "chars_per_s_ratio": ours["chars_per_s"] / theirs["chars_per_s"],
        "bpc_difference": ours["val_bpc"] - theirs["val_bpc"],
        "best_bpc_difference": ours["best_val_bpc"] - theirs["best_val_bpc"],
    }


# -- adding --------------------------------------------------------------------------------------
def adding(args: argparse.Namespace) -> dict[str, Any]:
    lr, batch = args.lr or ADDING["lr"], ADDING["batch"]
    task = AddingTask(T=args.T, hidden_size=args.hidden, batch_size=batch, seed=args.seed)
    config = TrainerConfig(clip_norm=ADDING["clip"], progress=False)
    trainer = Trainer(task, Adam(task.model, lr=lr), config=config, out=io.StringIO())
    model = TorchAdding(args.hidden)
    model.load_state_dict({k: torch.tensor(v) for k, v in task.model.state_dict().items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    data = np.random.default_rng(args.seed + 1)

    def torch_step() -> float:
        x, y = adding_batch(data, batch, args.T)
        loss = torch.nn.functional.mse_loss(model(torch.tensor(x)), torch.tensor(y))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), ADDING["clip"])
        optimizer.step()
        return loss.item()

    warmup = warm_up_adding(trainer, model, args.T, lr)
    runs = race(args.order, args.seconds, (trainer.train_step, None), (torch_step, None))
    with one_blas_thread_if_fast():
        ours_mse = trainer.evaluate()["mse"]
    with torch.no_grad():
        theirs_mse = torch.nn.functional.mse_loss(
            model(torch.tensor(task.eval_x)), torch.tensor(task.eval_y)
        ).item()
    mse = {"numpy-lstm": ours_mse, "torch": theirs_mse}
    sides = {
        name: {
            "seq_per_s": run["steps"] * batch / run["seconds"],
            "steps": run["steps"],
            "val_mse": mse[name],
            "warmup_s": warmup[name],
        }
        for name, run in runs.items()
    }
    return {
        "T": args.T,
        **sides,
        "predict_1_baseline_mse": task.baseline()["mse"],
        "seq_per_s_ratio": sides["numpy-lstm"]["seq_per_s"] / sides["torch"]["seq_per_s"],
    }


def warm_up_adding(trainer: Trainer, model: TorchAdding, T: int, lr: float) -> dict[str, float]:
    """Seconds of a few steps on throwaway copies of both sides (the task is small)."""
    spare = copy.deepcopy(trainer.task)
    spare_trainer = Trainer(spare, Adam(spare.model, lr=lr), config=trainer.config)
    copied = copy.deepcopy(model)
    optimizer = torch.optim.Adam(copied.parameters(), lr=lr)
    x, y = adding_batch(np.random.default_rng(0), ADDING["batch"], T)

    def ours() -> None:
        with one_blas_thread_if_fast():
            for _ in range(WARMUP_STEPS):
                spare_trainer.train_step()

    def theirs() -> None:
        for _ in range(WARMUP_STEPS):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(copied(torch.tensor(x)), torch.tensor(y)).backward()
            optimizer.step()

    return {"numpy-lstm": seconds_of(ours), "torch": seconds_of(theirs)}


# -- the command line ----------------------------------------------------------------------------
def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("task", choices=["charlm", "adding"])
    parser.add_argument("--seconds", type=float, default=180.0, help="each side (default 180)")
    parser.add_argument("--threads", type=int, default=2, help="(default 2)")
    parser.add_argument("--order", choices=["torch-first", "ours-first"], default="torch-first")
    parser.add_argument("--text", help="charlm: a UTF-8 text file (default: the default corpus)")
    parser.add_argument(
        "--val-chars", type=int, help="charlm: validate on the first N held-out chars (all)"
    )
    parser.add_argument(
        "--eval-every",
        type=float,
        metavar="SECONDS",
        help="charlm: also validate every SECONDS of training, off the clock (default: at the end)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    parser.add_argument("--hidden", type=int, help="LSTM units (charlm 256, adding 64)")
    parser.add_argument("--T", type=int, default=200, help="adding: sequence length")
    parser.add_argument("--lr", type=float, help="Adam's learning rate (charlm 2e-3, adding 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f"--seconds: expected a positive number, got {args.seconds}")
    if args.threads < 1:
        parser.error(f"--threads: expected a positive integer, got {args.threads}")
    if args.val_chars is not None and args.val_chars < VAL_STREAMS:
        parser.error(f"--val-chars: expected at least {VAL_STREAMS}, got {args.val_chars}")
    if args.eval_every is not None and not args.eval_every > 0:
        parser.error(f"--eval-every: expected a positive number, got {args.eval_every}")
    if args.text is not None and not Path(args.text).is_file():
        parser.error(f"--text: no such file {args.text!r}")
    args.hidden = args.hidden or (CHARLM["hidden"] if args.task == "charlm" else ADDING["hidden"])
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    with threads(args.threads):  # our kernels', torch's and BLAS's
        result = charlm(args) if args.task == "charlm" else adding(args)
        about = machine()
    report = {
        "task": args.task,
        "seconds": args.seconds,
        "threads": args.threads,
        "order": args.order,
        "seed": args.seed,
        "numpy_lstm_version": __version__,
        "cpu": about["cpu"],
        "isa": about["isa"],
        **result,
        "machine": about,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
