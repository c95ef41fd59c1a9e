"""No KD term may be satisfiable by the adapters alone: train them with the student frozen."""

from __future__ import annotations

import torch

from core.distill.diagnosis import adapter_absorption
from core.distill.distiller import HierarchicalDistiller
from core.models.detectors import build_student, build_teacher
from core.spec import DistillSpec, LevelWeights
from core.structures import Batch, Target

SIZE = 64
STEPS = 200


def _batch(seed: int, count: int = 2) -> Batch:
    """Images with a few objects, each of 6-30 px."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, SIZE, SIZE, generator=generator)
    targets = []
    for _ in range(count):
        corner = torch.rand(3, 2, generator=generator) * (SIZE - 32)
        side = 6 + torch.rand(3, 2, generator=generator) * 24
        boxes = torch.cat([corner, corner + side], dim=1)
        targets.append(Target(boxes=boxes, labels=torch.randint(1, 3, (3,), generator=generator)))
    return Batch(images=images, targets=targets, image_ids=list(range(count)), scales=[1.0] * count)


def _distiller(spec: DistillSpec) -> HierarchicalDistiller:
    torch.manual_seed(0)
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=SIZE, fpn_channels=16
    )
    teacher = build_teacher(
        arch="retinanet_resnet18_fpn", num_classes=3, image_size=SIZE, fpn_channels=32
    )
    return HierarchicalDistiller(teacher, student, weights=spec)


def test_no_default_term_is_absorbed_by_the_adapters() -> None:
    spec = DistillSpec(semantic={"channel": True}, response=1.0, box=1.0, head=1.0)
    distiller = _distiller(spec)
    student_before = {k: v.clone() for k, v in distiller.student.state_dict().items()}
    left = adapter_absorption(distiller, _batch(1), _batch(2), STEPS)
    expected = {f"kd/{t}/{p}" for t in ("spatial", "semantic", "context") for p in LEVELS}
    assert expected | {"kd/response", "kd/box", "kd/head"} == set(left)
    assert all(share >= 0.5 for share in left.values()), left
    # The measurement leaves the student and the adapters as they were.
    after = distiller.student.state_dict()
    assert all(torch.equal(student_before[k], after[k]) for k in student_before)


def test_a_learned_adapter_alone_absorbs_most_of_the_coarse_spatial_terms() -> None:
    # The control: the same test does catch a term an adapter can satisfy by itself.
    levels = {p: LevelWeights(spatial=1.0, semantic=0.0, context=0.0) for p in LEVELS}
    learned = _distiller(DistillSpec(levels=levels, spatial={"adapter": "learned"}))
    left = adapter_absorption(learned, _batch(1), _batch(2), STEPS)
    assert min(left.values()) < 0.5, left
    # The fitted term already sits at (or below) what the trained adapter reaches.
    fitted = _distiller(DistillSpec(levels=levels))
    held_out = _batch(2)
    fitted.eval()
    learned.eval()  # as the measurement runs the student
    with torch.no_grad():
        terms = fitted.kd_terms(
            held_out.images,
            held_out.targets,
            fitted.student_pass(held_out.images, held_out.targets),
            fitted.teacher_pass(held_out.images),
        )
        initial = learned.kd_terms(
            held_out.images,
            held_out.targets,
            learned.student_pass(held_out.images, held_out.targets),
            learned.teacher_pass(held_out.images),
        )
    for name, value in terms.items():
        assert value <= 1.1 * left[name] * initial[name], name


LEVELS = ("p2", "p3", "p4", "p5")
