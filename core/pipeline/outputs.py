"""What a job leaves behind: metrics.json, report.md, weights with provenance, pictures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from torch import nn

from core.engine.report import write_report
from core.evaluation.box_pictures import box_pictures
from core.evaluation.efficiency import efficiency_ratios, efficiency_report
from core.evaluation.pictures import small_object_samples
from core.explain.pictures import gradcam_pictures
from core.export.metadata import categories_metadata, detector_metadata
from core.export.onnx import export_onnx_detections
from core.export.weights import file_checksum
from core.models.detectors import Detector
from core.pipeline.context import STUDENT_FORMAT, ArtifactFile, JobResult, RunContext, log

EXPLAINED_IMAGES = 4
"""Val images (those with the most small objects) the Grad-CAM and box pictures show."""

DETECTIONS_ONNX = "student_detections.onnx"
"""The student exported with its post-processing inside (outputs boxes, scores, labels)."""

EXPORT_ERROR_CHARS = 500
"""Longest export failure message kept in metrics.json."""


def efficiency_of(
    run: RunContext, model: nn.Module, *, onnx_path: Path | None = None
) -> dict[str, Any]:
    """Parameters, GFLOPs and latency of `model` (ONNX latency too with `onnx_path`)."""
    repeats = 20 if run.device.type == "cuda" else 10
    return efficiency_report(
        model,
        image_size=run.spec.data.image_size,
        device=run.device,
        repeats=repeats,
        onnx_path=onnx_path,
    )


def job_metrics(
    run: RunContext,
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
        figures = {**result["bbox"], "per_class": result.get("per_class", {})}
        if "pr_curve" in result:  # precision-recall at IoU 0.5 (core/evaluation/coco.py)
            figures["pr_curve"] = result["pr_curve"]
        return figures

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
        "evaluation": run.evaluation_mode(),
        "dataset": {
            "train_images": run.info.train_images,
            "val_images": run.info.val_images,
            "categories": [c.get("name", c["id"]) for c in run.info.categories],
            "warnings": [warning.to_dict() for warning in run.info.warnings],
        },
    }


def provenance(
    run: RunContext, model: Detector, result: dict[str, Any], *, role: str
) -> dict[str, Any]:
    """The metadata an exported model (safetensors, ONNX) carries: what it is (input, classes,
    anchors, post-processing: core/export/metadata.py) and where it came from."""
    spec = run.spec
    metadata: dict[str, Any] = {
        "format": role,
        **detector_metadata(model),
        "fpn_channels": (spec.student if role == STUDENT_FORMAT else spec.teacher).fpn_channels,  # type: ignore[union-attr]
        "spec_hash": spec.spec_hash(),
        "spec": spec.model_dump(mode="json"),
        "metrics": result["bbox"],
        "categories": categories_metadata(run.info.categories),
    }
    if role == STUDENT_FORMAT and spec.teacher is not None:
        metadata["teacher_arch"] = spec.teacher.arch
        checkpoint = spec.teacher.checkpoint
        if checkpoint and Path(checkpoint).is_file():
            metadata["teacher_checksum"] = "sha256:" + file_checksum(Path(checkpoint))
    return metadata


def export_detections(
    run: RunContext, student: Detector, metadata: dict[str, Any]
) -> tuple[dict[str, Any], list[ArtifactFile]]:
    """`student_detections.onnx` (batch 1, post-processing inside, `metadata` embedded) and its
    onnxruntime-vs-PyTorch parity on the first val image, as metrics.json `export` figures;
    when the export fails (a tracing limit, a parity miss) the reason instead, no file, and
    the job goes on."""
    path = run.out / DETECTIONS_ONNX
    sample = next(iter(run.val_loader), None)
    images = sample.images[:1] if sample is not None and len(sample.images) else None
    log.info("exporting the student with its post-processing to ONNX")
    started = time.perf_counter()
    try:
        parity = export_onnx_detections(
            student, path, image_size=run.spec.data.image_size, metadata=metadata, images=images
        )
    except Exception as err:  # whatever the exporter raises: the dense student.onnx stands
        path.unlink(missing_ok=True)
        reason = f"{type(err).__name__}: {err}"[:EXPORT_ERROR_CHARS]
        log.warning("no %s: %s", path.name, reason)
        return {"detections_error": reason}, []
    figures = {
        "detections_max_abs_diff": parity.max_abs_diff,
        "detections_checked": parity.detections,
        "detections_seconds": round(time.perf_counter() - started, 2),
    }
    return figures, [ArtifactFile("student_onnx_detections", path)]


def explanation_pictures(
    run: RunContext, *, teacher: nn.Module | None, student: nn.Module
) -> list[ArtifactFile]:
    """Grad-CAM (`gradcam_NN.png`: teacher above, student below) and predicted boxes coloured
    TP / FP / missed (`boxes_NN.png`: teacher left) on the val images with most small objects."""
    models: list[tuple[str, nn.Module]] = [("student", student)]
    if teacher is not None:
        models.insert(0, ("teacher", teacher))
    samples = small_object_samples(run.val_loader, count=EXPLAINED_IMAGES)
    if not samples:
        return []
    out = run.out / "pictures"
    log.info("drawing Grad-CAM and box pictures")
    paths = gradcam_pictures(models=models, samples=samples, out_dir=out, device=run.device)
    paths += box_pictures(models=models, samples=samples, out_dir=out, device=run.device)
    return [ArtifactFile("picture", path) for path in paths]


def finish(run: RunContext, metrics: dict[str, Any], artifacts: list[ArtifactFile]) -> JobResult:
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
