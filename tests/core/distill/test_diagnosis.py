"""The gradient diagnosis: per-term norms on the student, and the balance between levels."""

from __future__ import annotations

import torch

from core.distill.diagnosis import grad_name, gradient_norms, student_gradient_norms
from core.distill.distiller import HierarchicalDistiller
from core.models.detectors import build_student, build_teacher
from core.spec import DistillSpec, LevelWeights
from core.structures import Batch, Target

from ..conftest import IMAGE_SIZE


def _distiller(spec: DistillSpec) -> HierarchicalDistiller:
    torch.manual_seed(0)
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16
    )
    teacher = build_teacher(
        arch="retinanet_resnet18_fpn", num_classes=3, image_size=IMAGE_SIZE, fpn_channels=32
    )
    return HierarchicalDistiller(teacher, student, weights=spec)


def _batch(images: torch.Tensor, targets: list[Target]) -> Batch:
    return Batch(images=images, targets=targets, image_ids=[0, 1], scales=[1.0, 1.0])


def test_gradient_norms_are_per_term_and_add_up() -> None:
    weight = torch.ones(3, requires_grad=True)
    losses = {
        "det/classification": weight.sum(),
        "det/bbox_regression": 2 * weight.sum(),
        "kd/spatial/p2": (3 * weight).sum(),
        "kd/response": (weight * torch.tensor([4.0, 0.0, 0.0])).sum(),
    }
    norms = gradient_norms(losses, [weight])
    root3 = 3**0.5
    assert norms["det/grad"] == torch.tensor(3 * root3).item()
    assert abs(norms["kd/grad/spatial/p2"] - 3 * root3) < 1e-5
    assert abs(norms["kd/grad/response"] - 4.0) < 1e-5
    assert abs(norms["kd/grad/total"] - float(torch.tensor([7.0, 3.0, 3.0]).norm())) < 1e-5
    assert grad_name("kd/context/p4") == "kd/grad/context/p4"


def test_every_term_and_level_is_diagnosed_on_the_student(
    images: torch.Tensor, targets: list[Target]
) -> None:
    distiller = _distiller(DistillSpec(response=1.0))
    norms = student_gradient_norms(distiller, _batch(images, targets))
    expected = {f"kd/grad/{t}/{p}" for t in ("spatial", "semantic", "context") for p in LEVELS}
    assert expected | {"det/grad", "kd/grad/total", "kd/grad/response"} == set(norms)
    assert all(v > 0 for k, v in norms.items() if k != "kd/grad/response")


def test_p2_pulls_about_as_hard_as_p5_at_init(images: torch.Tensor, targets: list[Target]) -> None:
    levels = {p: LevelWeights(spatial=1.0, semantic=1.0, context=1.0) for p in LEVELS}
    norms = student_gradient_norms(_distiller(DistillSpec(levels=levels)), _batch(images, targets))
    for term in ("spatial", "semantic", "context"):
        ratio = norms[f"kd/grad/{term}/p5"] / norms[f"kd/grad/{term}/p2"]
        assert ratio < 3, (term, ratio)  # P5 does not outpull the small-object level
    # Without the balancing the small P5 maps of an untrained student pull hardest.
    raw = student_gradient_norms(
        _distiller(DistillSpec(levels=levels, balance_levels=False)), _batch(images, targets)
    )
    assert raw["kd/grad/spatial/p5"] > raw["kd/grad/spatial/p2"]
    balanced = norms["kd/grad/spatial/p5"] / norms["kd/grad/spatial/p2"]
    assert balanced < raw["kd/grad/spatial/p5"] / raw["kd/grad/spatial/p2"] / 2


LEVELS = ("p2", "p3", "p4", "p5")
