"""The three kinds of job: train a teacher, distil a student (+ fine-tune), evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.distill.distiller import HierarchicalDistiller, teacher_dtype
from core.distill.feature_cache import TeacherFeatureCache, cache_namespace, cache_refusal
from core.engine.randomness import seed_everything
from core.evaluation.pictures import attention_pictures
from core.export.onnx import export_onnx
from core.export.weights import file_checksum, save_safetensors
from core.models.checkpoints import load_state_dict, load_weights
from core.models.detectors import Detector, build_student, build_teacher
from core.models.teachers import load_teacher
from core.pipeline.context import (
    STUDENT_FORMAT,
    TEACHER_FORMAT,
    ArtifactFile,
    JobResult,
    RunContext,
    log,
)
from core.pipeline.outputs import (
    efficiency_of,
    explanation_pictures,
    export_detections,
    finish,
    job_metrics,
    provenance,
)
from core.pipeline.stages import DetectionTraining, absorption, grad_summary, train_stage


def teacher_job(run: RunContext) -> JobResult:
    """Train a teacher on labels; its weights, metrics and cost."""
    spec = run.spec
    assert spec.teacher is not None
    teacher = build_teacher(
        arch=spec.teacher.arch,
        num_classes=run.info.num_classes,
        image_size=spec.data.image_size,
        fpn_channels=spec.teacher.fpn_channels,
        pretrained_backbone=spec.teacher.pretrained_backbone,
        score_threshold=spec.teacher.score_threshold,
        detections_per_image=spec.teacher.detections_per_image,
    )
    if spec.teacher.checkpoint:
        source = spec.teacher.checkpoint
        load_weights(teacher, load_state_dict(source), source=source)
    train_stage(
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
    efficiency = efficiency_of(run, teacher)
    metrics = job_metrics(run, student=None, teacher=metrics_teacher, eff_student=None,
                       eff_teacher=efficiency)  # fmt: skip
    weights = save_safetensors(
        run.out / "teacher.safetensors",
        teacher.state_dict(),
        metadata=provenance(run, teacher, metrics_teacher, role=TEACHER_FORMAT),
    )
    artifacts = [ArtifactFile("teacher_safetensors", weights)]
    return finish(run, metrics, artifacts)


def attach_feature_cache(run: RunContext, distiller: HierarchicalDistiller) -> str | None:
    """Give the distiller a teacher-feature cache when the job allows one; else say why not."""
    spec = run.spec
    refusal = cache_refusal(spec)
    if refusal is None and run.context.enabled:
        refusal = "distributed runs see each image on one rank only: no cache"
    if refusal is not None or spec.teacher is None or not spec.teacher.checkpoint:
        return refusal or "no teacher weights"
    data = spec.data
    namespace = cache_namespace(
        teacher_digest=file_checksum(Path(spec.teacher.checkpoint)),
        data={
            # A platform dataset by its id: each worker unpacks it to a folder of its own.
            "dataset": data.dataset_id if data.dataset_id is not None else data.path,
            "train_split": data.train_split,
            "format": data.format,
            "image_size": data.image_size,
            "max_train_images": data.max_train_images,
            "hflip": data.augment.hflip,
            "precision": str(teacher_dtype(spec.distill.teacher_precision, run.device)),
        },
        levels=[plan.teacher for plan in distiller.plans],
    )
    distiller.feature_cache = TeacherFeatureCache(
        namespace,
        max_bytes=spec.distill.teacher_cache_mb << 20,
        directory=run.feature_cache_dir,
    )
    return None


def distill_job(run: RunContext, teacher_cache: dict[str, Any] | None) -> JobResult:
    """Distil a student from the teacher (then fine-tune); weights, ONNX, metrics, pictures."""
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
        score_threshold=spec.student.score_threshold,
        detections_per_image=spec.student.detections_per_image,
    )
    distiller = HierarchicalDistiller(
        teacher if spec.distill.enabled else None, student, weights=spec.distill
    )
    diagnosis: dict[str, Any] = {}
    if distiller.kd_enabled:
        log.info("distillation pairs: %s", distiller.pairs)
        diagnosis["distill/pairs"] = distiller.pairs
        refusal = attach_feature_cache(run, distiller)
        sample = next(iter(run.val_loader), None)
        if sample is not None and teacher is not None:
            gap = distiller.precision_gap(sample.images[:4].to(run.device))
            if gap:
                log.info("teacher features vs float32 (relative L2): %s", gap)
                diagnosis["distill/teacher_precision"] = {
                    "dtype": spec.distill.teacher_precision,
                    "relative_l2_vs_fp32": gap,
                }
        if refusal is not None:
            diagnosis["distill/teacher_cache"] = {"enabled": False, "reason": refusal}
    # ... and the same batches, whatever the adapters drew.
    seed_everything(spec.seed + 1)
    if run.resume is not None and run.resume["stage"] == "finetune":
        # The distillation stage finished before the checkpoint was written.
        load_weights(student, run.resume["model"]["student"], source="resume checkpoint")
    else:
        fresh = run.resume is None and run.context.is_main
        if fresh and distiller.kd_enabled and spec.distill.diagnose_every > 0:
            diagnosis["kd/absorbed"] = absorption(run, distiller)
        state = train_stage(
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
    if distiller.feature_cache is not None:
        stats = distiller.feature_cache.stats
        log.info("teacher-feature cache: %.0f %% of views read back", 100 * stats.hit_rate)
        diagnosis["distill/teacher_cache"] = {"enabled": True, **stats.as_dict()}
        distiller.feature_cache = None  # the memory goes with the job
    if spec.schedule.finetune_epochs > 0:
        train_stage(
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
    metadata = provenance(run, student, metrics_student, role=STUDENT_FORMAT)
    onnx_path = run.out / "student.onnx"
    log.info("exporting the student to ONNX")
    onnx_diff = export_onnx(student, onnx_path, image_size=spec.data.image_size, metadata=metadata)
    artifacts.append(ArtifactFile("student_onnx", onnx_path))
    detections_figures, detections_files = export_detections(run, student, metadata)
    artifacts.extend(detections_files)
    eff_student = efficiency_of(run, student, onnx_path=onnx_path)
    metrics_teacher = eff_teacher = None
    if teacher is not None:
        cache = teacher_cache if teacher_cache is not None else {}
        if "metrics" not in cache:
            log.info("evaluating the teacher")
            cache["metrics"] = run.evaluate(teacher)
            cache["efficiency"] = efficiency_of(run, teacher)
        metrics_teacher, eff_teacher = cache["metrics"], cache["efficiency"]
    metrics = job_metrics(run, student=metrics_student, teacher=metrics_teacher,
                       eff_student=eff_student, eff_teacher=eff_teacher)  # fmt: skip
    metrics["export"] = {"onnx_max_abs_diff": onnx_diff, **detections_figures}
    metrics.update(diagnosis)
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
    artifacts.extend(explanation_pictures(run, teacher=teacher, student=student))
    return finish(run, metrics, artifacts)


def evaluate_job(run: RunContext) -> JobResult:
    """Score given student and/or teacher weights on the val split."""
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
            score_threshold=spec.student.score_threshold,
            detections_per_image=spec.student.detections_per_image,
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
    metrics = job_metrics(
        run,
        student=run.evaluate(student) if student is not None else None,
        teacher=run.evaluate(teacher) if teacher is not None else None,
        eff_student=efficiency_of(run, student) if student is not None else None,
        eff_teacher=efficiency_of(run, teacher) if teacher is not None else None,
    )
    return finish(run, metrics, [])
