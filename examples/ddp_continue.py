"""Train in numpy-lstm, continue on 2 processes with PyTorch DistributedDataParallel, come back.

    python examples/ddp_continue.py

1. numpy-lstm: a SequenceModel (LSTM + Linear head on every step) takes a few Adam steps
   towards the running mean of its first input feature.
2. `to_torch` → 2 CPU processes (`torch.multiprocessing.spawn`, gloo backend, MASTER_ADDR
   127.0.0.1 and a free port: loopback only). Each wraps the model in DistributedDataParallel
   and takes SGD steps on its half of every global batch; DDP averages the two gradients.
3. `from_torch` → back in numpy-lstm. The weights equal a single-process torch run with the same
   global batch (the mean loss over all of it), the same optimizer and the same number of steps,
   to float32 rounding: only the order of a few sums differs.

The same worker runs on GPUs with the "nccl" backend and `.to(rank)`, or under `torchrun`
(which sets MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE itself).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import numpy_lstm
from numpy_lstm.io.native import load_model, save_model
from numpy_lstm.io.torch import from_torch, to_torch
from numpy_lstm.nn.models import SequenceModel
from numpy_lstm.train.losses import mse_loss
from numpy_lstm.train.optim import Adam

WORLD_SIZE = 2
BATCH, STEPS_T, FEATURES, HIDDEN = 32, 20, 2, 16  # global batch B, sequence length T, I, H
PRETRAIN_STEPS, DDP_STEPS = 30, 20
LR, MOMENTUM = 0.1, 0.9  # torch.optim.SGD, the same in DDP and in the single-process reference


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One global batch: x (B, T, I) float32 and target (B, T, 1), the running mean of x[..., 0]
    up to each step."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, STEPS_T, FEATURES)).astype(np.float32)
    steps = np.arange(1, STEPS_T + 1, dtype=np.float32)[None, :]
    target = (np.cumsum(x[..., 0], axis=1) / steps)[..., None].astype(np.float32)
    return x, target


def pretrain(x: np.ndarray, target: np.ndarray, steps: int = PRETRAIN_STEPS) -> SequenceModel:
    """A SequenceModel trained here, in NumPy, for `steps` Adam steps on (x, target)."""
    lstm = numpy_lstm.LSTM(FEATURES, HIDDEN, batch_first=True, rng=0)
    model = SequenceModel(lstm, numpy_lstm.Linear(HIDDEN, 1, rng=1))
    adam = Adam(model, lr=1e-2)
    for _ in range(steps):
        adam.zero_grad()
        y, _ = model(x)
        _, dy = mse_loss(y, target)
        model.backward(dy)
        adam.step()
    return model


@dataclass
class DDPResult:
    """What the 2 processes hand back: each rank's final model, read back with `from_torch`,
    and the global loss (the mean over both halves) before each step."""

    models: list[SequenceModel]
    losses: list[float]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now. Another program could take it before the rendezvous
    binds it; a collision fails loudly at init_process_group, never silently."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _loopback_interface() -> str | None:
    """The loopback interface's name ("lo" on Linux, "lo0" on macOS), or None if not found."""
    names = [name for _, name in socket.if_nameindex()]
    return next((name for name in names if name in ("lo", "lo0")), None)


def _worker(
    rank: int,
    port: int,
    model: SequenceModel,
    x: np.ndarray,
    target: np.ndarray,
    steps: int,
    out_dir: str,
) -> None:
    """One DDP process: its half of the global batch, `steps` SGD steps, its model saved."""
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    loopback = _loopback_interface()
    if loopback is not None:  # gloo would otherwise pick the interface the hostname resolves to
        os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback)
    torch.set_num_threads(1)  # 2 processes on a small machine: one thread each
    # A bounded wait: a rank that never arrives fails the run in a minute instead of hanging it.
    timeout = datetime.timedelta(seconds=60)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timeout)
    try:
        ddp = DistributedDataParallel(to_torch(model))
        sgd = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=MOMENTUM)
        share = len(x) // WORLD_SIZE  # contiguous shards; a DistributedSampler does the same
        mine = slice(rank * share, (rank + 1) * share)
        x_t, target_t = torch.from_numpy(x[mine]), torch.from_numpy(target[mine])
        losses = []
        for _ in range(steps):
            sgd.zero_grad()
            y, _ = ddp(x_t)
            loss = nn.functional.mse_loss(y, target_t)  # the mean over this rank's half
            loss.backward()  # DDP all-reduces here: every rank gets the mean of both gradients
            sgd.step()
            total = loss.detach().clone()
            dist.all_reduce(total)  # halves of equal size: the global mean is their mean
            losses.append(total.item() / WORLD_SIZE)
        # Safetensors files, not pickles, carry the models back to the parent.
        save_model(from_torch(ddp.module), Path(out_dir) / f"rank{rank}.safetensors")
        if rank == 0:
            (Path(out_dir) / "losses.json").write_text(json.dumps(losses))
    finally:
        dist.destroy_process_group()


def continue_with_ddp(
    model: SequenceModel, x: np.ndarray, target: np.ndarray, steps: int = DDP_STEPS
) -> DDPResult:
    """Train `model` (unchanged) on the global batch (x, target) for `steps` SGD steps with
    DistributedDataParallel on WORLD_SIZE CPU processes; each rank's result comes back."""
    with tempfile.TemporaryDirectory() as out_dir:
        args = (free_port(), model, x, target, steps, out_dir)
        mp.spawn(_worker, args=args, nprocs=WORLD_SIZE, join=True)
        models = [load_model(Path(out_dir) / f"rank{r}.safetensors") for r in range(WORLD_SIZE)]
        losses = json.loads((Path(out_dir) / "losses.json").read_text())
    assert all(isinstance(m, SequenceModel) for m in models)
    return DDPResult([m for m in models if isinstance(m, SequenceModel)], losses)


def single_process(
    model: SequenceModel, x: np.ndarray, target: np.ndarray, steps: int = DDP_STEPS
) -> tuple[SequenceModel, list[float]]:
    """The reference: one torch process, the whole global batch, its mean loss, same SGD."""
    theirs = to_torch(model)
    sgd = torch.optim.SGD(theirs.parameters(), lr=LR, momentum=MOMENTUM)
    x_t, target_t = torch.from_numpy(x), torch.from_numpy(target)
    losses = []
    for _ in range(steps):
        sgd.zero_grad()
        loss = nn.functional.mse_loss(theirs(x_t)[0], target_t)
        loss.backward()
        sgd.step()
        losses.append(loss.item())
    back = from_torch(theirs)
    assert isinstance(back, SequenceModel)
    return back, losses


def max_difference(a: numpy_lstm.Module, b: numpy_lstm.Module) -> float:
    """max |a − b| over every parameter (the same names in both)."""
    theirs = b.state_dict()
    return max(float(np.max(np.abs(v - theirs[k]))) for k, v in a.state_dict().items())


def main() -> DDPResult:
    x, target = make_data()
    model = pretrain(x, target)
    print(f"numpy-lstm: {PRETRAIN_STEPS} Adam steps, loss {mse_loss(model(x)[0], target)[0]:.4f}")
    ddp = continue_with_ddp(model, x, target)
    reference, losses = single_process(model, x, target)
    print(
        f"torch DDP: {WORLD_SIZE} processes (gloo, 127.0.0.1), {BATCH // WORLD_SIZE} of the "
        f"{BATCH} sequences each, {DDP_STEPS} SGD steps: loss {ddp.losses[0]:.4f} → "
        f"{ddp.losses[-1]:.4f}"
    )
    print(f"single-process torch, whole batch: loss {losses[0]:.4f} → {losses[-1]:.4f}")
    gap = max(abs(a - b) for a, b in zip(ddp.losses, losses, strict=True))
    print(f"max |loss difference| over the {DDP_STEPS} steps: {gap:.1e}")
    print(f"max |weight difference| rank 0 vs rank 1: {max_difference(*ddp.models):.1e}")
    moved = max_difference(ddp.models[0], model)
    print(f"back in numpy-lstm (from_torch): weights moved by up to {moved:.3f} from the export,")
    gap = max_difference(ddp.models[0], reference)
    print(f"  max |difference| from the single-process run: {gap:.1e}")
    print(
        f"  loss after the last step, computed here: {mse_loss(ddp.models[0](x)[0], target)[0]:.4f}"
    )
    return ddp


if __name__ == "__main__":
    main()
