"""One job end to end: its data, device and context, then the recipe of its kind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.data.loader import build_loaders
from core.engine.checkpoint import load_checkpoint
from core.engine.distributed import (
    barrier,
    init_distributed,
    local_device,
)
from core.engine.hooks import HookBase
from core.engine.randomness import seed_everything
from core.pipeline.context import JobResult, RunContext, log, resolve_device
from core.pipeline.recipes import distill_job, evaluate_job, teacher_job
from core.spec import JobSpec


def run_job(
    spec: JobSpec,
    out: Path,
    *,
    hooks: Sequence[HookBase] = (),
    resume: Path | None = None,
    progress: bool = False,
    on_checkpoint: Callable[[Path], None] | None = None,
    teacher_cache: dict[str, Any] | None = None,
    feature_cache_dir: Path | None = None,
) -> JobResult:
    """Run `spec`, writing metrics.json, report.md, weights, ONNX, pictures and checkpoints.

    `teacher_cache`, when given, keeps the teacher's evaluation and efficiency between jobs
    that share one teacher (an ablation): filled by the first job, reused by the next.
    `feature_cache_dir`, when given, keeps the teacher's features on disk for the jobs that
    share teacher, data and transform (core.distill.feature_cache); memory only otherwise.
    Raises TrainingCanceled when a hook cancels.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(spec.schedule.device)
    context = init_distributed(device)
    device = local_device(device, context)
    seed_everything(spec.seed)
    train_loader, val_loader, info = build_loaders(
        spec.data, seed=spec.seed, distributed=context.enabled
    )
    for warning in info.warnings:  # at this job's image and tile size; also in metrics.json
        log.warning("dataset: %s", warning.message)
    run = RunContext(
        spec=spec,
        out=out,
        device=device,
        context=context,
        train_loader=train_loader,
        val_loader=val_loader,
        info=info,
        hooks=hooks,
        progress=progress,
        on_checkpoint=on_checkpoint,
        resume=load_checkpoint(resume) if resume is not None else None,
        feature_cache_dir=feature_cache_dir,
    )
    if spec.kind == "teacher":
        result = teacher_job(run)
    elif spec.kind == "distill":
        result = distill_job(run, teacher_cache)
    else:
        result = evaluate_job(run)
    barrier(context)
    return result
