"""Data-parallel training under torchrun (WORLD_SIZE > 1), with nothing to change in params.

Every rank builds the same models from the same seed and takes every world_size-th batch of the
shared per-epoch order. Gradients are averaged by torch's DistributedDataParallel: the trainer
wraps the generator, and each loss plug-in's discriminator step (one DDP forward per backward,
`Context.wrap`). A joint step (generator and discriminator terms from one discriminator pass)
goes through that wrapper; its two backward passes reach their own parameters only, so each
wrapper's gradients are reduced once. Generator terms alone call the plug-ins unwrapped, with
their discriminators frozen, so DDP never waits for gradients that a frozen discriminator does
not produce. DDP's construction broadcasts rank 0's weights. NCCL on GPU, gloo on CPU. Rank 0 alone logs and
writes checkpoints and outputs.
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

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """`module` under DistributedDataParallel (gradients averaged over the ranks during
        backward, rank 0's weights broadcast now); `module` itself with one rank. A module
        without trainable parameters is returned as it is."""
        if not self.enabled or not any(p.requires_grad for p in module.parameters()):
            return module
        from torch.nn.parallel import DistributedDataParallel
        return DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False)  # instance norm keeps no running statistics

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
