"""Training stages of a job: one stage of the trainer, label training, the KD diagnosis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from core.distill.diagnosis import adapter_absorption
from core.distill.distiller import HierarchicalDistiller
from core.engine.distributed import (
    wrap_model,
)
from core.engine.hooks import CheckpointHook, EvalHook, HookBase, ProgressBarHook
from core.engine.schedule import build_lr_scheduler, build_optimizer
from core.engine.trainer import Trainer, TrainerState, steps_per_epoch
from core.pipeline.context import RunContext, log
from core.spec import ScheduleSpec

ABSORPTION_STEPS = 100
"""Adam steps of the one-off adapter-absorption measurement at the start of distillation."""


class DetectionTraining(nn.Module):
    """Plain label training of one detector, as a loss model the Trainer can run."""

    def __init__(self, detector: nn.Module, *, name: str = "student") -> None:
        super().__init__()
        self.detector = detector
        self.name = name

    def forward(
        self, images: torch.Tensor, targets: list[Any], *, step: int = 0
    ) -> dict[str, torch.Tensor]:
        """The detector's named detection losses."""
        return dict(self.detector(images, targets).losses)

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The detector, under its role's name (what a checkpoint stores)."""
        return {self.name: self.detector}


def train_stage(
    run: RunContext,
    *,
    stage: str,
    model: nn.Module,
    evaluated: nn.Module,
    epochs: int,
    lr: float,
    diagnose_every: int = 0,
) -> TrainerState:
    """Train `model` for one stage (resuming if the checkpoint is of this stage)."""
    schedule: ScheduleSpec = run.spec.schedule
    trainable = list(model.trainable_modules().values())  # type: ignore[operator]
    model.to(run.device)
    wrapped = wrap_model(model, run.device, run.context)
    optimizer = build_optimizer(trainable, schedule, lr=lr)
    steps = steps_per_epoch(run.train_loader, schedule.max_steps_per_epoch)
    scheduler = build_lr_scheduler(optimizer, schedule, total_steps=epochs * steps)
    stage_hooks: list[HookBase] = []
    if run.progress and run.context.is_main:
        stage_hooks.append(ProgressBarHook(description=stage, every=schedule.log_every))
    eval_hook = None
    if run.context.is_main:
        eval_hook = EvalHook(lambda: run.evaluate(evaluated), every=schedule.eval_every)
        stage_hooks.append(eval_hook)
    stage_hooks.extend(run.hooks)
    stage_hooks.append(
        CheckpointHook(
            run.out / "checkpoints", on_checkpoint=run.on_checkpoint, enabled=run.context.is_main
        )
    )
    trainer = Trainer(
        model=wrapped,
        data_loader=run.train_loader,
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=epochs,
        device=run.device,
        hooks=stage_hooks,
        amp=schedule.amp,
        grad_clip=schedule.grad_clip,
        max_steps_per_epoch=schedule.max_steps_per_epoch,
        stage=stage,
        channels_last=schedule.channels_last,
        clip_mode=schedule.clip_mode,
        diagnose_every=diagnose_every,
        check_every=schedule.log_every,
    )
    if run.resume is not None and run.resume["stage"] == stage:
        trainer.load_checkpoint_state(run.resume)
        log.info("resumed %s at epoch %d, step %d", stage, trainer.start_epoch, trainer.state.step)
    log.info("training stage %s: %d epochs of %d steps on %s", stage, epochs, steps, run.device)
    trainer.train()
    final = eval_hook is not None and eval_hook.last_step == trainer.state.step
    run.last_eval = eval_hook.last_result if eval_hook is not None and final else None
    return trainer.state


def grad_summary(history: Sequence[tuple[int, dict[str, float]]]) -> dict[str, Any]:
    """The gradient diagnosis of a run: per series its value at the first and last diagnosed
    step and its mean over all of them (metrics.json `kd/grad`)."""
    names = list(dict.fromkeys(name for _, norms in history for name in norms))
    summary: dict[str, Any] = {"steps": [step for step, _ in history]}
    for name in names:
        values = [norms[name] for _, norms in history if name in norms]
        summary[name] = {"first": values[0], "last": values[-1], "mean": sum(values) / len(values)}
    return summary


def absorption(run: RunContext, distiller: HierarchicalDistiller) -> dict[str, float]:
    """What share of each KD term the adapters alone could remove at init (1: none)."""
    with torch.random.fork_rng(devices=[]):
        batch = next(iter(run.train_loader), None)
        held_out = next(iter(run.val_loader), None)
        if batch is None or held_out is None:
            return {}
        batch, held_out = batch.to(run.device), held_out.to(run.device)
        distiller.to(run.device)
        log.info("measuring what the adapters alone absorb (%d steps)", ABSORPTION_STEPS)
        return adapter_absorption(distiller, batch, held_out, ABSORPTION_STEPS)
