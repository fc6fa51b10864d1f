"""One process of a ``torchrun`` job (``WORLD_SIZE`` > 1) or a single process: rank, barrier, reductions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DistributedContext", "init_distributed", "all_gather_objects", "sum_across_ranks"]


@dataclass
class DistributedContext:
    """Rank / world size of this process; ``initialized`` when this module created the process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.initialized and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device_name: str) -> DistributedContext:
    """The context of this process; under ``torchrun`` the process group is created (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.distributed.is_initialized():
        return DistributedContext(rank, world_size, local_rank, initialized=False)
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistributedContext(rank, world_size, local_rank, initialized=True)


def all_gather_objects(obj: Any, context: DistributedContext) -> list:
    """``obj`` of every rank, in rank order (``[obj]`` in a single process)."""
    if not context.distributed:
        return [obj]
    gathered: list = [None] * context.world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def sum_across_ranks(values: list[float], device: torch.device, context: DistributedContext) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if context.distributed:
        torch.distributed.all_reduce(tensor)
    return tensor.cpu().tolist()
