"""Response and box KD: normalised like the focal loss, on the student's own anchor matches."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection import FCOS
from torchvision.ops import sigmoid_focal_loss

from core.distill.distiller import HierarchicalDistiller
from core.distill.response import binary_kl, box_loss, response_loss, teacher_foreground
from core.models.detectors import build_student
from core.spec import DistillSpec, LevelWeights
from core.structures import Target

from ..conftest import IMAGE_SIZE
from .tiny_models import tiny_student, tiny_teacher

OFF = {p: LevelWeights(spatial=0.0, semantic=0.0, context=0.0) for p in ("p2", "p3", "p4", "p5")}


def _dense_case(
    positives: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Student logits at the focal prior, a confident teacher, one-hot targets on positives.

    Sizes of a RetinaNet on P2-P5 at 128 px: 12240 anchors x 6 classes, two images.
    """
    generator = torch.Generator().manual_seed(seed)
    images, anchors, classes = 2, 12240, 6
    prior = -math.log(99.0)
    student = prior + 0.1 * torch.randn(images, anchors, classes, generator=generator)
    foreground = torch.zeros(images, anchors, dtype=torch.bool)
    foreground[:, torch.randperm(anchors, generator=generator)[:positives]] = True
    labels = torch.randint(0, classes, (images, anchors), generator=generator)
    target = torch.zeros(images, anchors, classes)
    target[foreground, labels[foreground]] = 1.0
    teacher = -6.0 + torch.randn(images, anchors, classes, generator=generator)
    teacher[foreground, labels[foreground]] = 2.0
    return student.requires_grad_(True), teacher, target, foreground


@pytest.mark.parametrize("positives", [5, 20, 60])
def test_response_gradient_at_the_logits_is_of_the_focal_losses_order(positives: int) -> None:
    student, teacher, target, foreground = _dense_case(positives)
    count = foreground.sum()
    focal = sigmoid_focal_loss(student, target, reduction="sum") / count
    (focal_grad,) = torch.autograd.grad(focal, student)
    kd = response_loss(student, teacher, 2.0, positives=count)
    (kd_grad,) = torch.autograd.grad(kd, student, retain_graph=True)
    ratio = float(kd_grad.norm() / focal_grad.norm())
    assert 0.1 < ratio < 10.0, ratio
    # The former normalisation (mean over every anchor x class) was hundreds of times weaker.
    mean_form = binary_kl(student, teacher, 2.0).mean() * 4.0
    (mean_grad,) = torch.autograd.grad(mean_form, student)
    assert float(mean_grad.norm() / focal_grad.norm()) < 0.02


def test_quality_focal_factor_tames_the_easy_background() -> None:
    student, teacher, target, foreground = _dense_case(20)
    count = foreground.sum()
    focal = sigmoid_focal_loss(student, target, reduction="sum") / count
    (focal_grad,) = torch.autograd.grad(focal, student)
    plain = response_loss(student, teacher, 2.0, positives=count, beta=0.0)
    (plain_grad,) = torch.autograd.grad(plain, student)
    assert float(plain_grad.norm() / focal_grad.norm()) > 10.0


def test_box_loss_is_l1_over_the_foreground_count() -> None:
    student = torch.zeros(1, 4, 4, requires_grad=True)
    teacher = torch.ones(1, 4, 4)
    foreground = torch.tensor([[True, True, False, False]])
    value = box_loss(student, teacher, foreground)
    assert torch.isclose(value, torch.tensor(4.0))  # 2 anchors x 4 coordinates / 2
    value.backward()
    assert student.grad is not None and student.grad[0, 2:].abs().sum() == 0
    assert box_loss(teacher.clone(), teacher, foreground) == 0
    assert teacher_foreground(torch.tensor([[[3.0, -3.0], [-3.0, -3.0]]])).tolist() == [
        [True, False]
    ]


@pytest.mark.parametrize("arch", ["retinanet_mobilenet_v2_fpn", "fcos_mobilenet_v2_fpn"])
def test_anchor_matches_give_torchvisions_own_losses(
    arch: str, images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    student = build_student(arch=arch, num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16)
    dense = student.forward_dense(images, targets)
    model = student._torchvision[0]
    tv_targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    per_level = [f.shape[-2] * f.shape[-1] for f in dense.output.features.values()]
    per_level = [n * dense.head["cls_logits"].shape[1] // sum(per_level) for n in per_level]
    if isinstance(model, FCOS):
        reference = model.compute_loss(tv_targets, dense.head, dense.anchors, per_level)
    else:
        reference = model.compute_loss(tv_targets, dense.head, dense.anchors)
    ours = sorted(float(v.detach()) for v in dense.output.losses.values())
    assert sorted(float(v.detach()) for v in reference.values()) == ours
    positives = dense.positives()
    assert positives is not None and positives[0].sum() > 0 and positives[1].sum() == 0


def test_distiller_normalises_response_by_the_students_matches(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    student, teacher = tiny_student(), tiny_teacher()
    spec = DistillSpec(levels=OFF, response=2.0, box=0.5)
    distiller = HierarchicalDistiller(teacher, student, weights=spec)
    losses = distiller(images, targets)
    assert {k for k in losses if k.startswith("kd/")} == {"kd/response", "kd/box"}
    dense = student.forward_dense(images, targets)
    _, head = teacher.dense_outputs(images)
    positives = dense.positives()
    assert positives is not None
    expected = 2.0 * response_loss(
        dense.head["cls_logits"], head["cls_logits"], 2.0, positives=positives.sum()
    )
    assert torch.isclose(losses["kd/response"], expected)
    no_box = HierarchicalDistiller(teacher, student, weights=DistillSpec(levels=OFF, response=1.0))
    assert "kd/box" not in no_box(images, targets)
