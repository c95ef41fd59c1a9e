"""Head KD (the CrossKD idea): student features through the frozen teacher head."""

from __future__ import annotations

import torch

from core.distill.distiller import HierarchicalDistiller
from core.models.detectors import Detector, build_student, build_teacher
from core.spec import DistillSpec, LevelWeights
from core.structures import Target

from ..conftest import IMAGE_SIZE

OFF = {p: LevelWeights(spatial=0.0, semantic=0.0, context=0.0) for p in ("p2", "p3", "p4", "p5")}


def _pair(teacher_arch: str = "retinanet_resnet18_fpn") -> tuple[Detector, Detector]:
    torch.manual_seed(0)
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16
    )
    teacher = build_teacher(
        arch=teacher_arch, num_classes=3, image_size=IMAGE_SIZE, fpn_channels=32
    )
    return teacher, student


def test_head_kd_is_finite_and_trains_only_the_student_and_adapters(
    images: torch.Tensor, targets: list[Target]
) -> None:
    teacher, student = _pair()
    distiller = HierarchicalDistiller(teacher, student, weights=DistillSpec(levels=OFF, head=1.0))
    assert set(distiller.adapters) == {"p2", "p3", "p4", "p5"}
    losses = distiller(images, targets)
    assert [k for k in losses if k.startswith("kd/")] == ["kd/head"]
    head = losses["kd/head"]
    assert torch.isfinite(head) and head.item() > 0
    head.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.backbone.parameters())
    assert all(p.grad is not None for p in distiller.adapters.parameters())
    # The student's own head is not on the path of head KD.
    assert all(p.grad is None for p in student.head.parameters())


def test_head_kd_across_families_uses_the_teachers_confident_anchors(
    images: torch.Tensor, targets: list[Target]
) -> None:
    teacher, student = _pair("fcos_resnet18_fpn")
    distiller = HierarchicalDistiller(teacher, student, weights=DistillSpec(levels=OFF, head=1.0))
    value = distiller(images, targets)["kd/head"]
    assert torch.isfinite(value) and value.item() > 0


def test_head_kd_is_absent_at_weight_zero(images: torch.Tensor, targets: list[Target]) -> None:
    teacher, student = _pair()
    distiller = HierarchicalDistiller(teacher, student, weights=DistillSpec(head=0.0))
    assert distiller.head_pairs == []
    assert "kd/head" not in distiller(images, targets)
