"""The hierarchical distiller: named weighted terms, frozen teacher, zero-KD equivalence."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from core.distill.distiller import HierarchicalDistiller
from core.models.adapters import FeatureAdapter
from core.models.detectors import build_teacher
from core.spec import DistillSpec, LevelWeights, ablation_distill
from core.structures import Target

from ..conftest import IMAGE_SIZE
from .tiny_models import tiny_student, tiny_teacher

OFF = LevelWeights(spatial=0.0, semantic=0.0, context=0.0)
LEARNED = {"adapter": "learned"}


def _step(model: nn.Module, images: torch.Tensor, targets: list[Target]) -> dict[str, float]:
    """One SGD step on the model's summed losses; the losses before the step."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1)
    output = model(images, targets)
    losses = output if isinstance(output, dict) else output.losses
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    return {k: v.item() for k, v in losses.items()}


@pytest.mark.parametrize("with_teacher", [True, False])
def test_zero_kd_equals_plain_student_training(
    images: torch.Tensor, targets: list[Target], with_teacher: bool
) -> None:
    torch.manual_seed(7)
    plain = tiny_student()
    plain_losses = _step(plain, images, targets)

    torch.manual_seed(7)
    student = tiny_student()
    teacher = tiny_teacher() if with_teacher else None
    weights = ablation_distill(DistillSpec(), "no_kd")
    distiller = HierarchicalDistiller(teacher, student, weights=weights)
    assert len(distiller.adapters) == 0
    kd_losses = _step(distiller, images, targets)

    assert kd_losses == plain_losses
    for (name, a), b in zip(plain.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_feature_kd_does_not_shift_the_students_random_stream(images: torch.Tensor) -> None:
    torch.manual_seed(3)
    student = tiny_student()
    teacher = tiny_teacher()
    torch.manual_seed(11)
    HierarchicalDistiller(teacher, student)  # builds adapters for every level
    after = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(after, torch.rand(3))


def test_every_term_per_level_under_its_own_key(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    distiller = HierarchicalDistiller(tiny_teacher(), tiny_student())
    losses = distiller(images, targets)
    expected = {f"kd/{t}/{p}" for t in ("spatial", "semantic", "context") for p in LEVELS}
    assert expected <= set(losses)
    assert {"det/classification", "det/bbox_regression"} <= set(losses)
    assert all(torch.isfinite(v) and v.item() > 0 for k, v in losses.items() if k.startswith("kd/"))


LEVELS = ("p2", "p3", "p4", "p5")


def test_zero_weight_terms_are_absent_and_weights_scale_values(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    teacher, student = tiny_teacher(), tiny_student()
    only_p3 = {p: OFF for p in LEVELS} | {
        "p3": LevelWeights(spatial=1.0, semantic=0.0, context=0.0)
    }
    fitted = HierarchicalDistiller(teacher, student, weights=DistillSpec(levels=only_p3))
    assert len(fitted.adapters) == 0  # the default spatial term fits its map on the batch
    assert [k for k in fitted(images, targets) if k.startswith("kd/")] == ["kd/spatial/p3"]
    only_p3_learned = DistillSpec(levels=only_p3, spatial=LEARNED)
    one = HierarchicalDistiller(teacher, student, weights=only_p3_learned)
    assert set(one.adapters) == {"p3"}
    losses = one(images, targets)
    assert [k for k in losses if k.startswith("kd/")] == ["kd/spatial/p3"]

    doubled = DistillSpec(levels=only_p3, spatial=LEARNED, lambda_kd=2 * DistillSpec().lambda_kd)
    twice = HierarchicalDistiller(teacher, student, adapters=one.adapters, weights=doubled)
    assert torch.isclose(twice(images, targets)["kd/spatial/p3"], 2 * losses["kd/spatial/p3"])

    ramped = DistillSpec(levels=only_p3, spatial=LEARNED, warmup_steps=4)
    ramp = HierarchicalDistiller(teacher, student, adapters=one.adapters, weights=ramped)
    early = ramp(images, targets, step=0)["kd/spatial/p3"]
    late = ramp(images, targets, step=100)["kd/spatial/p3"]
    assert torch.isclose(early * 4, late) and torch.isclose(late, losses["kd/spatial/p3"])


def test_identical_teacher_through_identity_adapters_gives_zero_kd(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    student = tiny_student().eval()
    teacher = copy.deepcopy(student)
    adapters = nn.ModuleDict()
    for level in LEVELS:
        adapter = FeatureAdapter(16, 16)
        with torch.no_grad():
            adapter.proj.weight.copy_(torch.eye(16).view(16, 16, 1, 1))
            adapter.proj.bias.zero_()
        adapters[level] = adapter
    spec = DistillSpec(
        response=1.0, spatial=LEARNED, semantic={"channel": True}, teacher_precision="fp32"
    )
    distiller = HierarchicalDistiller(teacher, student, adapters=adapters, weights=spec).eval()
    losses = distiller(images, targets)
    kd = {k: v.item() for k, v in losses.items() if k.startswith("kd/")}
    assert len(kd) == 3 * len(LEVELS) + 1
    assert all(abs(v) < 1e-4 for v in kd.values()), kd


def test_teacher_is_frozen_in_eval_mode_and_gets_no_gradients(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    teacher = tiny_teacher().train()
    spec = DistillSpec(response=1.0, spatial=LEARNED)
    distiller = HierarchicalDistiller(teacher, tiny_student(), weights=spec)
    distiller.train()
    assert distiller.student.training and not teacher.training
    assert not any(m.training for m in teacher.modules())
    running = teacher.backbone.body.bn1.running_mean.clone()
    sum(distiller(images, targets).values()).backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert torch.equal(running, teacher.backbone.body.bn1.running_mean)
    trainable = distiller.trainable_modules()
    assert set(trainable) == {"student", "adapters"}
    assert any(p.grad is not None for p in trainable["adapters"].parameters())


def test_response_kd_rules(images: torch.Tensor, targets: list[Target]) -> None:
    torch.manual_seed(0)
    student = tiny_student()
    distiller = HierarchicalDistiller(
        tiny_teacher(), student, weights=DistillSpec(levels={p: OFF for p in LEVELS}, response=1.0)
    )
    assert [k for k in distiller(images, targets) if k.startswith("kd/")] == ["kd/response"]
    with pytest.raises(ValueError, match="anchor layouts"):
        HierarchicalDistiller(
            tiny_teacher("fcos_resnet18_fpn"), student, weights=DistillSpec(response=1.0)
        )
    faster = build_teacher(
        arch="torchvision_fasterrcnn_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    )
    with pytest.raises(ValueError, match="two-stage"):
        HierarchicalDistiller(faster, student, weights=DistillSpec(response=1.0))


def test_two_stage_teacher_teaches_a_one_stage_student_by_stride(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    faster = build_teacher(
        arch="torchvision_fasterrcnn_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    )
    spec = DistillSpec(spatial=LEARNED)
    distiller = HierarchicalDistiller(faster, tiny_student(), weights=spec)
    assert [(p.student, p.teacher) for p in distiller.plans] == [(p, p) for p in LEVELS]
    assert distiller.adapters["p2"].proj.out_channels == 256
    losses = distiller(images, targets)
    assert {f"kd/spatial/{p}" for p in LEVELS} <= set(losses)
