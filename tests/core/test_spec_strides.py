"""Spec checks: `data.image_size` must fit the architectures' largest stride; the detection cap
and the score threshold are spec fields that reach the models' post-processing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pydantic
import pytest
import torch

from core.export.weights import save_safetensors
from core.models.backbones import LEVEL_STRIDES
from core.models.detectors import (
    TEACHER_ARCHS,
    TORCHVISION_ARCHS,
    TORCHVISION_LEVELS,
    build_student,
    build_teacher,
)
from core.models.teachers import load_teacher
from core.spec import LARGEST_STRIDES, JobSpec, StudentArch, TeacherArch, TeacherSpec
from tests.core.predict.students import tiny_student


def _spec(size: int, teacher: str = "retinanet_resnet18_fpn", kind: str = "distill") -> JobSpec:
    data: dict[str, Any] = {
        "kind": kind,
        "data": {"path": "data", "image_size": size},
        "teacher": {"arch": teacher, "checkpoint": "t.safetensors"},
        "student": {"arch": "fcos_mobilenet_v2_fpn"},
    }
    return JobSpec.model_validate(data)


def test_the_stride_table_is_the_models() -> None:
    assert set(get_args(TeacherArch)) | set(get_args(StudentArch)) <= set(LARGEST_STRIDES)
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=2, image_size=64, fpn_channels=8
    )
    own = max(level.stride for level in student.output_shape().values())
    for arch in get_args(StudentArch):
        assert LARGEST_STRIDES[arch] == own == 32, arch
    for arch in TEACHER_ARCHS:
        assert LARGEST_STRIDES[arch] == 32, arch
    for arch, family in TORCHVISION_ARCHS.items():
        coarsest = max(LEVEL_STRIDES[name] for name in TORCHVISION_LEVELS[family])
        assert LARGEST_STRIDES[arch] == coarsest, arch


def test_an_image_size_off_the_stride_is_refused_with_the_nearest_sizes() -> None:
    with pytest.raises(pydantic.ValidationError) as err:
        _spec(400)
    message = str(err.value)
    assert "data.image_size: 400 px is not a multiple of 32" in message
    assert "stride of 30 px" in message and "use 384 or 416" in message
    assert _spec(416).data.image_size == 416
    # A torchvision RetinaNet teacher reaches P7 (stride 128): the student's 32 is not enough.
    with pytest.raises(pydantic.ValidationError, match=r"multiple of 128.*teacher\.arch"):
        _spec(160, "torchvision_retinanet_resnet50_fpn")
    with pytest.raises(pydantic.ValidationError, match=r"use 128\b"):
        _spec(64, "torchvision_fcos_resnet50_fpn")
    assert _spec(256, "torchvision_retinanet_resnet50_fpn").data.image_size == 256
    with pytest.raises(pydantic.ValidationError, match=r"multiple of 64.*use 128 or 192"):
        _spec(160, "torchvision_fasterrcnn_resnet50_fpn", kind="teacher")


def test_post_processing_fields_have_bounds() -> None:
    section = {"arch": "fcos_mobilenet_v2_fpn"}
    base = {"kind": "evaluate", "data": {"path": "d", "image_size": 64}}
    spec = JobSpec.model_validate({**base, "student": section})
    assert spec.student is not None
    assert (spec.student.score_threshold, spec.student.detections_per_image) == (0.05, 100)
    for bad in ({"score_threshold": 1.0}, {"score_threshold": -0.1}, {"detections_per_image": 0}):
        with pytest.raises(pydantic.ValidationError):
            JobSpec.model_validate({**base, "student": {**section, **bad}})


def test_the_fields_reach_the_post_processing(tmp_path: Path) -> None:
    torch.manual_seed(0)
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn",
        num_classes=3,
        image_size=64,
        fpn_channels=8,
        score_threshold=0.011,
        detections_per_image=5,
    )
    assert student.postprocess_settings() == {
        "score_threshold": 0.011,
        "detections_per_image": 5,
        "nms_threshold": 0.5,
        "topk_candidates": 1000,
    }
    # On a student whose scores spread (a random head sits at the 0.01 prior everywhere).
    spread = tiny_student()
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = spread(image).detections[0]["scores"]  # type: ignore[index]
        spread.set_postprocess(score_threshold=0.125, detections_per_image=20)
        after = spread(image).detections[0]["scores"]  # type: ignore[index]
    assert len(before) > 20 and float(before.min()) < 0.125
    assert 0 < len(after) <= 20 and float(after.min()) > 0.125
    # A teacher loaded from a spec takes the spec's values (two-stage ones too).
    teacher = build_teacher(
        arch="retinanet_resnet18_fpn", num_classes=3, image_size=64, fpn_channels=8
    )
    path = save_safetensors(tmp_path / "teacher.safetensors", teacher.state_dict())
    spec = TeacherSpec(
        arch="retinanet_resnet18_fpn",
        checkpoint=str(path),
        fpn_channels=8,
        score_threshold=0.2,
        detections_per_image=300,
    )
    loaded = load_teacher(spec, num_classes=3, image_size=64)
    assert loaded.postprocess_settings()["score_threshold"] == 0.2
    assert loaded.postprocess_settings()["detections_per_image"] == 300
    two_stage = build_teacher(
        arch="torchvision_fasterrcnn_resnet50_fpn",
        num_classes=3,
        image_size=64,
        score_threshold=0.3,
        detections_per_image=50,
    )
    settings = two_stage.postprocess_settings()
    assert (settings["score_threshold"], settings["detections_per_image"]) == (0.3, 50)
    assert "topk_candidates" not in settings
    with pytest.raises(ValueError, match="score_threshold must be in"):
        student.set_postprocess(score_threshold=1.5)
