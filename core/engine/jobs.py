"""One job end to end: train a teacher, distil a student (+ fine-tune), or evaluate a model."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from core.data.loader import DatasetInfo, build_loaders
from core.distill.diagnosis import adapter_absorption
from core.distill.distiller import HierarchicalDistiller
from core.engine.checkpoint import load_checkpoint
from core.engine.distributed import (
    DistributedContext,
    barrier,
    init_distributed,
    local_device,
    wrap_model,
)
from core.engine.hooks import CheckpointHook, EvalHook, HookBase, ProgressBarHook
from core.engine.randomness import seed_everything
from core.engine.report import write_report
from core.engine.schedule import build_lr_scheduler, build_optimizer
from core.engine.trainer import Trainer, TrainerState, steps_per_epoch
from core.evaluation.coco import CocoEvaluator
from core.evaluation.efficiency import efficiency_ratios, efficiency_report
from core.evaluation.inference import evaluate_detector
from core.evaluation.pictures import attention_pictures
from core.export.onnx import export_onnx
from core.export.weights import file_checksum, save_safetensors
from core.models.checkpoints import load_state_dict, load_teacher, load_weights
from core.models.detectors import Detector, build_student, build_teacher
from core.spec import JobSpec, ScheduleSpec

log = logging.getLogger("distillery.engine")

ABSORPTION_STEPS = 100
"""Adam steps of the one-off adapter-absorption measurement at the start of distillation."""

STUDENT_FORMAT = "distillery.student/1"
TEACHER_FORMAT = "distillery.teacher/1"


@dataclass(frozen=True)
class ArtifactFile:
    """A file a job produced; `kind` is one of store.models.ARTIFACT_KINDS."""

    kind: str
    path: Path


@dataclass
class JobResult:
    """What a finished job hands back: the metrics.json content and the files it wrote."""

    metrics: dict[str, Any]
    artifacts: list[ArtifactFile] = field(default_factory=list)


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


def resolve_device(choice: str) -> torch.device:
    """The device of ScheduleSpec.device: `auto` is CUDA when available, else CPU."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("schedule.device: 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


@dataclass
class _Run:
    """What the stages of one job share."""

    spec: JobSpec
    out: Path
    device: torch.device
    context: DistributedContext
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any]
    info: DatasetInfo
    hooks: Sequence[HookBase]
    progress: bool
    on_checkpoint: Callable[[Path], None] | None
    resume: dict[str, Any] | None
    last_eval: dict[str, Any] | None = None

    def evaluator(self) -> CocoEvaluator:
        return CocoEvaluator(self.info.val_gt, self.info.label_to_cat_id)

    def evaluate(self, detector: nn.Module) -> dict[str, Any]:
        return evaluate_detector(detector, self.val_loader, self.evaluator(), device=self.device)


def run_job(
    spec: JobSpec,
    out: Path,
    *,
    hooks: Sequence[HookBase] = (),
    resume: Path | None = None,
    progress: bool = False,
    on_checkpoint: Callable[[Path], None] | None = None,
    teacher_cache: dict[str, Any] | None = None,
) -> JobResult:
    """Run `spec`, writing metrics.json, report.md, weights, ONNX, pictures and checkpoints.

    `teacher_cache`, when given, keeps the teacher's evaluation and efficiency between jobs
    that share one teacher (an ablation): filled by the first job, reused by the next.
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
    run = _Run(
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
    )
    if spec.kind == "teacher":
        result = _teacher_job(run)
    elif spec.kind == "distill":
        result = _distill_job(run, teacher_cache)
    else:
        result = _evaluate_job(run)
    barrier(context)
    return result


# --------------------------------------------------------------------------- training stages
def _train_stage(
    run: _Run,
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
        stage_hooks.append(ProgressBarHook(description=stage))
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
    )
    if run.resume is not None and run.resume["stage"] == stage:
        trainer.load_checkpoint_state(run.resume)
        log.info("resumed %s at epoch %d, step %d", stage, trainer.start_epoch, trainer.state.step)
    log.info("training stage %s: %d epochs of %d steps on %s", stage, epochs, steps, run.device)
    trainer.train()
    final = eval_hook is not None and eval_hook.last_step == trainer.state.step
    run.last_eval = eval_hook.last_result if eval_hook is not None and final else None
    return trainer.state


# --------------------------------------------------------------------------- the three kinds
def _teacher_job(run: _Run) -> JobResult:
    spec = run.spec
    assert spec.teacher is not None
    teacher = build_teacher(
        arch=spec.teacher.arch,
        num_classes=run.info.num_classes,
        image_size=spec.data.image_size,
        fpn_channels=spec.teacher.fpn_channels,
        pretrained_backbone=spec.teacher.pretrained_backbone,
    )
    if spec.teacher.checkpoint:
        source = spec.teacher.checkpoint
        load_weights(teacher, load_state_dict(source), source=source)
    _train_stage(
        run,
        stage="teacher",
        model=DetectionTraining(teacher, name="teacher"),
        evaluated=teacher,
        epochs=spec.schedule.epochs,
        lr=spec.schedule.lr,
    )
    if not run.context.is_main:
        return JobResult(metrics={})
    metrics_teacher = run.last_eval or run.evaluate(teacher)
    efficiency = _efficiency(run, teacher)
    metrics = _metrics(run, student=None, teacher=metrics_teacher, eff_student=None,
                       eff_teacher=efficiency)  # fmt: skip
    weights = save_safetensors(
        run.out / "teacher.safetensors",
        teacher.state_dict(),
        metadata=_provenance(run, teacher, metrics_teacher, role=TEACHER_FORMAT),
    )
    artifacts = [ArtifactFile("teacher_safetensors", weights)]
    return _finish(run, metrics, artifacts)


def _distill_job(run: _Run, teacher_cache: dict[str, Any] | None) -> JobResult:
    spec = run.spec
    assert spec.teacher is not None and spec.student is not None
    teacher: Detector | None = None
    if spec.teacher.checkpoint:
        teacher = load_teacher(
            spec.teacher, num_classes=run.info.num_classes, image_size=spec.data.image_size
        )
        teacher.to(run.device).eval()
    # Reseeding here gives every variant of an ablation the same student initialisation.
    seed_everything(spec.seed)
    student = build_student(
        arch=spec.student.arch,
        num_classes=run.info.num_classes,
        image_size=spec.data.image_size,
        fpn_channels=spec.student.fpn_channels,
        pretrained_backbone=spec.student.pretrained_backbone,
    )
    distiller = HierarchicalDistiller(
        teacher if spec.distill.enabled else None, student, weights=spec.distill
    )
    diagnosis: dict[str, Any] = {}
    if distiller.kd_enabled:
        log.info("distillation pairs: %s", distiller.pairs)
        diagnosis["distill/pairs"] = distiller.pairs
    # ... and the same batches, whatever the adapters drew.
    seed_everything(spec.seed + 1)
    if run.resume is not None and run.resume["stage"] == "finetune":
        # The distillation stage finished before the checkpoint was written.
        load_weights(student, run.resume["model"]["student"], source="resume checkpoint")
    else:
        fresh = run.resume is None and run.context.is_main
        if fresh and distiller.kd_enabled and spec.distill.diagnose_every > 0:
            diagnosis["kd/absorbed"] = _absorption(run, distiller)
        state = _train_stage(
            run,
            stage="distill",
            model=distiller,
            evaluated=student,
            epochs=spec.schedule.epochs,
            lr=spec.schedule.lr,
            diagnose_every=spec.distill.diagnose_every if distiller.kd_enabled else 0,
        )
        if state.grad_history:
            diagnosis["kd/grad"] = grad_summary(state.grad_history)
    if spec.schedule.finetune_epochs > 0:
        _train_stage(
            run,
            stage="finetune",
            model=DetectionTraining(student, name="student"),
            evaluated=student,
            epochs=spec.schedule.finetune_epochs,
            lr=spec.schedule.finetune_lr or spec.schedule.lr * 0.1,
        )
    if not run.context.is_main:
        return JobResult(metrics={})
    metrics_student = run.last_eval or run.evaluate(student)
    artifacts: list[ArtifactFile] = []
    onnx_path = run.out / "student.onnx"
    log.info("exporting the student to ONNX")
    onnx_diff = export_onnx(student, onnx_path, image_size=spec.data.image_size)
    artifacts.append(ArtifactFile("student_onnx", onnx_path))
    eff_student = _efficiency(run, student, onnx_path=onnx_path)
    metrics_teacher = eff_teacher = None
    if teacher is not None:
        cache = teacher_cache if teacher_cache is not None else {}
        if "metrics" not in cache:
            log.info("evaluating the teacher")
            cache["metrics"] = run.evaluate(teacher)
            cache["efficiency"] = _efficiency(run, teacher)
        metrics_teacher, eff_teacher = cache["metrics"], cache["efficiency"]
    metrics = _metrics(run, student=metrics_student, teacher=metrics_teacher,
                       eff_student=eff_student, eff_teacher=eff_teacher)  # fmt: skip
    metrics["export"] = {"onnx_max_abs_diff": onnx_diff}
    metrics.update(diagnosis)
    metadata = _provenance(run, student, metrics_student, role=STUDENT_FORMAT)
    weights = save_safetensors(
        run.out / "student.safetensors", student.state_dict(), metadata=metadata
    )
    artifacts.insert(0, ArtifactFile("student_safetensors", weights))
    log.info("drawing attention pictures")
    pictures = attention_pictures(
        teacher=teacher,
        student=student,
        batches=run.val_loader,
        out_dir=run.out / "pictures",
        device=run.device,
        p=spec.distill.semantic.p,
    )
    artifacts.extend(ArtifactFile("picture", path) for path in pictures)
    return _finish(run, metrics, artifacts)


def grad_summary(history: Sequence[tuple[int, dict[str, float]]]) -> dict[str, Any]:
    """The gradient diagnosis of a run: per series its value at the first and last diagnosed
    step and its mean over all of them (metrics.json `kd/grad`)."""
    names = list(dict.fromkeys(name for _, norms in history for name in norms))
    summary: dict[str, Any] = {"steps": [step for step, _ in history]}
    for name in names:
        values = [norms[name] for _, norms in history if name in norms]
        summary[name] = {"first": values[0], "last": values[-1], "mean": sum(values) / len(values)}
    return summary


def _absorption(run: _Run, distiller: HierarchicalDistiller) -> dict[str, float]:
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


def _evaluate_job(run: _Run) -> JobResult:
    spec = run.spec
    student: Detector | None = None
    teacher: Detector | None = None
    if spec.student is not None:
        if not spec.student.checkpoint:
            raise ValueError("student.checkpoint: an 'evaluate' job needs the student's weights")
        student = build_student(
            arch=spec.student.arch,
            num_classes=run.info.num_classes,
            image_size=spec.data.image_size,
            fpn_channels=spec.student.fpn_channels,
        )
        source = spec.student.checkpoint
        load_weights(student, load_state_dict(source), source=source)
        student.to(run.device)
    if spec.teacher is not None and spec.teacher.checkpoint:
        teacher = load_teacher(
            spec.teacher, num_classes=run.info.num_classes, image_size=spec.data.image_size
        )
        teacher.to(run.device)
    if student is None and teacher is None:
        raise ValueError("teacher.checkpoint: an 'evaluate' job needs weights to evaluate")
    if not run.context.is_main:
        return JobResult(metrics={})
    metrics = _metrics(
        run,
        student=run.evaluate(student) if student is not None else None,
        teacher=run.evaluate(teacher) if teacher is not None else None,
        eff_student=_efficiency(run, student) if student is not None else None,
        eff_teacher=_efficiency(run, teacher) if teacher is not None else None,
    )
    return _finish(run, metrics, [])


# --------------------------------------------------------------------------- outputs
def _efficiency(run: _Run, model: nn.Module, *, onnx_path: Path | None = None) -> dict[str, Any]:
    repeats = 20 if run.device.type == "cuda" else 10
    return efficiency_report(
        model,
        image_size=run.spec.data.image_size,
        device=run.device,
        repeats=repeats,
        onnx_path=onnx_path,
    )


def _metrics(
    run: _Run,
    *,
    student: dict[str, Any] | None,
    teacher: dict[str, Any] | None,
    eff_student: dict[str, Any] | None,
    eff_teacher: dict[str, Any] | None,
) -> dict[str, Any]:
    """The metrics.json document of the contracts."""

    def flat(result: dict[str, Any] | None) -> dict[str, Any] | None:
        if result is None:
            return None
        return {**result["bbox"], "per_class": result.get("per_class", {})}

    return {
        "kind": run.spec.kind,
        "spec_hash": run.spec.spec_hash(),
        "student": flat(student),
        "teacher": flat(teacher),
        "efficiency": {
            "student": eff_student,
            "teacher": eff_teacher,
            "ratios": efficiency_ratios(eff_student, eff_teacher) if eff_student else None,
        },
        "dataset": {
            "train_images": run.info.train_images,
            "val_images": run.info.val_images,
            "categories": [c.get("name", c["id"]) for c in run.info.categories],
        },
    }


def _provenance(run: _Run, model: Detector, result: dict[str, Any], *, role: str) -> dict[str, Any]:
    """The metadata an exported weights file carries: what it is and where it came from."""
    spec = run.spec
    metadata: dict[str, Any] = {
        "format": role,
        "arch": model.arch,
        "family": model.family,
        "num_classes": model.num_classes,
        "image_size": model.image_size,
        "fpn_channels": (spec.student if role == STUDENT_FORMAT else spec.teacher).fpn_channels,  # type: ignore[union-attr]
        "spec_hash": spec.spec_hash(),
        "spec": spec.model_dump(mode="json"),
        "metrics": result["bbox"],
        "categories": run.info.categories,
    }
    if role == STUDENT_FORMAT and spec.teacher is not None:
        metadata["teacher_arch"] = spec.teacher.arch
        checkpoint = spec.teacher.checkpoint
        if checkpoint and Path(checkpoint).is_file():
            metadata["teacher_checksum"] = "sha256:" + file_checksum(Path(checkpoint))
    return metadata


def _finish(run: _Run, metrics: dict[str, Any], artifacts: list[ArtifactFile]) -> JobResult:
    """Write metrics.json and report.md and list every artifact."""
    metrics_path = run.out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    report_path = write_report(
        run.out / "report.md",
        spec=run.spec,
        metrics=metrics,
        pictures=[a.path for a in artifacts if a.kind == "picture"],
    )
    files = [
        *artifacts,
        ArtifactFile("metrics", metrics_path),
        ArtifactFile("report", report_path),
    ]
    checkpoint = run.out / "checkpoints" / "last.pt"
    if checkpoint.is_file():
        files.append(ArtifactFile("checkpoint", checkpoint))
    return JobResult(metrics=metrics, artifacts=files)
