"""Process groups from ``torchrun``'s environment, and feature gathering for negatives.

One process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) needs no process group. Under ``torchrun``
every process joins a group: NCCL when it trains on CUDA, gloo on CPU.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank (0 in a single process).
        local_rank: Rank on this machine (picks the GPU).
        world_size: Number of processes.
        device: The device this process trains on.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` if CUDA is available, else CPU; other names as given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} but CUDA is not available; use train.device=cpu")
    return device


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Join the ``torchrun`` process group if there is one.

    Reads ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (set by ``torchrun``); the rendezvous
    address comes from ``MASTER_ADDR``/``MASTER_PORT`` (``env://``).

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun, ``cuda`` means the
            process's ``LOCAL_RANK`` GPU).
        timeout_minutes: Collective timeout.

    Returns:
        This process's `DistInfo`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world,
            timeout=timedelta(minutes=timeout_minutes),
        )
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def cleanup() -> None:
    """Leave the process group (if any).

    Collects garbage first: a DDP wrapper left in a reference cycle keeps the group alive, and a
    gloo group torn down by the interpreter's exit instead of here can abort the process.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def world_size() -> int:
    """Processes in the group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_mean(value: float, device: torch.device) -> float:
    """Mean of a float over all processes."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's picklable `obj`, in rank order (``[obj]`` in a single process)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by a constant."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `x` along dim 0; gradients flow into this rank's slice.

    Every rank must pass the same shape. The other ranks' slices are constants here. Each rank
    then computes the same global loss, so the true gradient of this rank's features is the sum
    of the identical per-rank gradients, ``world_size x`` the local one: the local slice's
    gradient is scaled by the world size, and DDP's gradient averaging then yields exactly the
    gradient of the loss over the global batch (as one process with the whole batch would).

    Args:
        x: (B, ...) local tensor.

    Returns:
        (world_size * B, ...) tensor, rank r's rows at ``[r*B : (r+1)*B]``.
    """
    world = world_size()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = _ScaleGrad.apply(x, float(world))
    return torch.cat(parts, dim=0)


def gather_features(video: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`all_gather_with_grad` of both embeddings: (B, D) each -> (world * B, D) each."""
    return all_gather_with_grad(video), all_gather_with_grad(text)
