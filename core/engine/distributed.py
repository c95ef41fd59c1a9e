"""torchrun / DDP: process-group set-up from the environment, and rank-0-only I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a torchrun job (world_size 1 when not distributed)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0


def context_from_env() -> DistributedContext:
    """Read RANK, LOCAL_RANK and WORLD_SIZE as torchrun sets them (defaults: one process)."""
    return DistributedContext(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
    )


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    context = context_from_env()
    if not context.enabled or dist.is_initialized():
        return context
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(context.local_rank)
    dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)
    return context


def local_device(device: torch.device, context: DistributedContext) -> torch.device:
    """The device of this rank: `cuda:LOCAL_RANK` under DDP on GPUs, else `device`."""
    if device.type == "cuda" and context.enabled:
        return torch.device("cuda", context.local_rank)
    return device


def wrap_model(model: nn.Module, device: torch.device, context: DistributedContext) -> nn.Module:
    """`model` in DistributedDataParallel when distributed, else unchanged."""
    if not context.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    # The frozen teacher stays outside DDP: its weights are never reduced and its buffers
    # never broadcast (each rank loaded the same file). Every trainable parameter of our loss
    # models gets a gradient each step, so DDP needs no search for unused ones unless the
    # model says otherwise (`may_leave_parameters_unused`).
    nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        model, ddp_ignored_names(model)
    )
    find_unused = bool(getattr(model, "may_leave_parameters_unused", False))
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused
    )


def ddp_ignored_names(model: nn.Module) -> list[str]:
    """Parameters and buffers DDP leaves alone: frozen parameters and the buffers of a frozen
    `teacher` submodule (batch-norm statistics a rank must not overwrite with another's)."""
    names = [name for name, param in model.named_parameters() if not param.requires_grad]
    teacher = getattr(model, "teacher", None)
    if isinstance(teacher, nn.Module):
        names += [f"teacher.{name}" for name, _ in teacher.named_buffers()]
    return names


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if context.enabled and dist.is_initialized():
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    """Leave the process group if this process joined one."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
