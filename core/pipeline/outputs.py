"""What a job leaves behind: metrics.json, report.md, weights with provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from core.engine.report import write_report
from core.evaluation.efficiency import efficiency_ratios, efficiency_report
from core.export.weights import file_checksum
from core.models.detectors import Detector
from core.pipeline.context import STUDENT_FORMAT, ArtifactFile, JobResult, RunContext


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


def provenance(
    run: RunContext, model: Detector, result: dict[str, Any], *, role: str
) -> dict[str, Any]:
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
