"""Optimiser and learning-rate schedule (warm-up, then cosine, step or constant) of a stage."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from core.spec import ScheduleSpec

WARMUP_START_FACTOR = 0.001
"""The learning rate at step 0 of the warm-up, as a fraction of the base rate."""


class LRFactor:
    """Multiplier of the base learning rate at a step: linear warm-up, then the decay rule."""

    def __init__(self, *, kind: str, warmup_steps: int, total_steps: int) -> None:
        self.kind = kind
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)

    def __call__(self, step: int) -> float:
        """The factor for optimiser step `step` (0-based)."""
        decay = self._decay(step)
        if step < self.warmup_steps:
            alpha = step / self.warmup_steps
            return decay * (WARMUP_START_FACTOR * (1.0 - alpha) + alpha)
        return decay

    def _decay(self, step: int) -> float:
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            # detectron2's default milestones: x0.1 at 2/3 and again at 8/9 of the schedule.
            return 0.1 ** sum(step >= m * self.total_steps for m in (2 / 3, 8 / 9))
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        raise ValueError(f"unknown lr_schedule {self.kind!r}")


def build_optimizer(
    modules: Iterable[nn.Module], schedule: ScheduleSpec, *, lr: float | None = None
) -> torch.optim.Optimizer:
    """The spec's optimiser over the trainable parameters (no weight decay on norms/biases)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in modules:
        for param in module.parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        group
        for group in (
            {"params": decay, "weight_decay": schedule.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        )
        if group["params"]
    ]
    if not groups:
        raise ValueError("nothing to train: the modules have no trainable parameters")
    base_lr = lr if lr is not None else schedule.lr
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=base_lr, momentum=schedule.momentum)
    return torch.optim.AdamW(groups, lr=base_lr)


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: ScheduleSpec, *, total_steps: int
) -> LambdaLR:
    """A per-step scheduler: warm-up over `schedule.warmup_steps`, then the spec's decay."""
    factor = LRFactor(
        kind=schedule.lr_schedule,
        warmup_steps=min(schedule.warmup_steps, max(total_steps - 1, 0)),
        total_steps=total_steps,
    )
    return LambdaLR(optimizer, lr_lambda=factor)
