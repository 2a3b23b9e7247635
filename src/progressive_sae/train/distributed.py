"""Data parallelism under torchrun: one process per rank, gradients summed by all-reduce.

The losses are normalised by global-batch sums (see objectives.py), so summing the ranks'
gradients reproduces one process's gradient on the whole global batch.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_environment(cls, device: str = "cpu") -> Distributed:
        """Join the torchrun job if WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
            # Torn down before the interpreter's own exit: left to C++ static destruction,
            # gloo's threads now and then abort a finished rank ("terminate called without
            # an active exception", seen once in CI).
            atexit.register(_close)
        return cls(rank=dist.get_rank(), world=dist.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, into a new tensor (used on statistics of the data: no gradient)."""
        if self.world == 1:
            return tensor
        out = tensor.detach().clone()
        dist.all_reduce(out)
        return out

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)

    def average_(self, tensor: torch.Tensor) -> None:
        if self.world > 1:
            dist.all_reduce(tensor)
            tensor.div_(self.world)

    def broadcast_(self, tensor: torch.Tensor) -> None:
        if self.world > 1:
            dist.broadcast(tensor, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
