"""Teachers from checkpoints: loading a spec's teacher, and checking an uploaded checkpoint.

The one place that knows how a detector's state dict reveals its classes and which
architecture it must load into; the worker only stores the check's report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from core.data.issues import ValidationIssue
from core.models.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    load_state_dict,
    load_weights,
    read_provenance,
)
from core.models.detectors import Detector, build_teacher
from core.spec import TeacherSpec

PROBE_IMAGE_SIZE = 64
"""Building the declared architecture needs some legal image size; weights do not depend on it."""

DEFAULT_NUM_CLASSES = 2
"""Classes assumed when neither the upload nor the state dict says (one class + background)."""


@dataclass
class TeacherCheck:
    """The outcome: errors (ValidationIssue-shaped dicts) or the teacher's facts."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None


def load_teacher(spec: TeacherSpec, *, num_classes: int, image_size: int) -> Detector:
    """The teacher of a spec with its checkpoint loaded strictly."""
    if not spec.checkpoint:
        raise CheckpointError("teacher.checkpoint: a distillation teacher needs trained weights")
    teacher = build_teacher(
        arch=spec.arch,
        num_classes=num_classes,
        image_size=image_size,
        fpn_channels=spec.fpn_channels,
        score_threshold=spec.score_threshold,
        detections_per_image=spec.detections_per_image,
    )
    load_weights(teacher, load_state_dict(spec.checkpoint), source=spec.checkpoint)
    return teacher


def checkpoint_issue(message: str, *, file: str, **extra: Any) -> dict[str, Any]:
    """One error about the checkpoint: a ValidationIssue's mapping plus `extra` key lists."""
    return {**ValidationIssue(file=file, message=message).to_dict(), **extra}


def infer_num_classes(state: dict[str, Tensor]) -> int | None:
    """`num_classes` (K + 1) of a detector state dict, read off its classification layer."""
    cls_score = state.get("roi_heads.box_predictor.cls_score.weight")
    if cls_score is not None:
        return int(cls_score.shape[0]) if cls_score.ndim >= 1 else None
    cls = state.get("head.classification_head.cls_logits.weight")
    reg = state.get("head.regression_head.bbox_reg.weight")
    if cls is None or reg is None or cls.ndim < 1 or reg.ndim < 1 or reg.shape[0] % 4:
        return None
    anchors = reg.shape[0] // 4
    if anchors == 0 or cls.shape[0] % anchors:
        return None
    return int(cls.shape[0] // anchors)


def check_teacher_checkpoint(
    path: Path, *, name: str, arch: str, fpn_channels: int, num_classes: int | None
) -> TeacherCheck:
    """Check the checkpoint at `path` (known to its uploader as `name`) against `arch`."""

    def named(message: str) -> str:
        # Messages name the local copy; the user knows the file by its uploaded name.
        return message.replace(str(path), name)

    try:
        state = load_state_dict(path)
    except CheckpointError as exc:
        return TeacherCheck(errors=[checkpoint_issue(named(str(exc)), file=name)])
    classes = num_classes or infer_num_classes(state) or DEFAULT_NUM_CLASSES
    try:
        model = build_teacher(
            arch=arch, num_classes=classes, image_size=PROBE_IMAGE_SIZE, fpn_channels=fpn_channels
        )
        load_weights(model, state, source=name)
    except CheckpointMismatchError as exc:
        error = checkpoint_issue(
            named(str(exc)),
            file=name,
            missing=exc.missing,
            unexpected=exc.unexpected,
            mismatched=exc.mismatched,
        )
        return TeacherCheck(errors=[error])
    except ValueError as exc:
        return TeacherCheck(errors=[checkpoint_issue(named(str(exc)), file=name)])
    try:
        provenance = read_provenance(path)
    except CheckpointError:
        provenance = {}
    info = {
        "params": sum(p.numel() for p in model.parameters()),
        "num_classes": classes,
        "tensors": len(state),
        "provenance": provenance,
    }
    return TeacherCheck(info=info, num_classes=classes)
