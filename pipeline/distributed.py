"""Data-parallel training under torchrun (WORLD_SIZE > 1), with nothing to change in params.

Every rank builds the same models from the same seed, takes every world_size-th batch of the
shared per-epoch order, and averages gradients with all-reduce after each backward -- the
arithmetic of DistributedDataParallel, written out because the loss plug-ins call their
discriminators several times per step with parameters frozen in between, which DDP's reducer
does not allow. Rank 0 alone logs and writes checkpoints and outputs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def steps_per_epoch(self, batches: int) -> int:
        """Every rank takes the same number of steps (all-reduce needs all of them): the last
        batches % world_size batches of an epoch are dropped."""
        return batches // self.world_size

    def owns(self, batch_index: int, batches: int) -> bool:
        """Whether this rank trains on the batch at this position of the epoch's order."""
        return (batch_index < self.steps_per_epoch(batches) * self.world_size
                and batch_index % self.world_size == self.rank)

    def average_gradients(self, parameters) -> None:
        if not self.enabled:
            return
        for p in parameters:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world_size)

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's weights everywhere (the same seed already gives the same init)."""
        if not self.enabled:
            return
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def context_from_env(device_type: str) -> Context:
    """Initialise the process group when launched by torchrun; a 1-rank Context otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Context(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))
