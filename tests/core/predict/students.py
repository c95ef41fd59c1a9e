"""A tiny student with random weights, exported like a job exports it (safetensors + ONNX,
and the ONNX with the post-processing inside).

The metadata is written by the pipeline's own `provenance` (core/pipeline/outputs.py), so
these tests read exactly what a job leaves. The head's weights are redrawn wider than
torchvision's initialisation (whose scores all sit at the 0.01 prior, every one equal) so
that scores spread like a trained model's and rankings have no ties.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from core.export.onnx import export_onnx, export_onnx_detections
from core.export.weights import save_safetensors
from core.models.detectors import Detector, build_student
from core.pipeline.context import STUDENT_FORMAT
from core.pipeline.outputs import provenance
from core.spec import JobSpec

CATEGORIES = [{"id": 7, "name": "car", "supercategory": "vehicle"}, {"id": 9, "name": "person"}]
IMAGE_SIZE = 64
FPN_CHANNELS = 16


@dataclass
class ExportedStudent:
    """The detector and the files a job would have written for it."""

    detector: Detector
    safetensors: Path
    onnx: Path
    metadata: dict[str, Any]


def tiny_student(
    arch: str = "retinanet_mobilenet_v2_fpn", *, image_size: int = IMAGE_SIZE, seed: int = 0
) -> Detector:
    """A random-weight student in eval mode, its head redrawn so scores spread."""
    torch.manual_seed(seed)
    detector = build_student(
        arch=arch,
        num_classes=len(CATEGORIES) + 1,
        image_size=image_size,
        fpn_channels=FPN_CHANNELS,
    )
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in detector.head.named_parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.15)
            elif name.endswith("cls_logits.bias"):
                param.fill_(-2.0)
    return detector.eval()


def job_metadata(detector: Detector) -> dict[str, Any]:
    """What a distill job writes into student.safetensors, from the pipeline's provenance."""
    spec = JobSpec.model_validate(
        {
            "kind": "distill",
            "data": {"path": "data", "image_size": detector.image_size},
            "teacher": {"arch": "retinanet_resnet18_fpn", "checkpoint": "teacher.safetensors"},
            "student": {"arch": detector.arch, "fpn_channels": FPN_CHANNELS},
        }
    )
    run = SimpleNamespace(spec=spec, info=SimpleNamespace(categories=CATEGORIES))
    return provenance(run, detector, {"bbox": {"AP": 0.0}}, role=STUDENT_FORMAT)  # type: ignore[arg-type]


def export_student(out: Path, arch: str = "retinanet_mobilenet_v2_fpn") -> ExportedStudent:
    """student.safetensors (with the job's metadata) and student.onnx under `out`."""
    detector = tiny_student(arch)
    onnx_path = out / "student.onnx"
    export_onnx(detector, onnx_path, image_size=detector.image_size)
    metadata = job_metadata(detector)
    weights = save_safetensors(
        out / "student.safetensors", detector.state_dict(), metadata=metadata
    )
    return ExportedStudent(detector, weights, onnx_path, metadata)


def export_detections(student: ExportedStudent) -> Path:
    """student_detections.onnx beside the student's files, with the job's metadata embedded."""
    path = student.safetensors.with_name("student_detections.onnx")
    detector = student.detector
    export_onnx_detections(
        detector, path, image_size=detector.image_size, metadata=student.metadata
    )
    return path
