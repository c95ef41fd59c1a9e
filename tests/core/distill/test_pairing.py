"""Level pairing: P2 from any teacher, reported, and head KD's level requirements."""

from __future__ import annotations

import warnings

import pytest
import torch

from core.distill.distiller import HierarchicalDistiller
from core.models.adapters import FeatureAdapter, pair_levels
from core.models.detectors import Detector, build_student, build_teacher
from core.spec import DistillSpec
from core.structures import Target

from ..conftest import IMAGE_SIZE

LEVELS = ("p2", "p3", "p4", "p5")


def _student() -> Detector:
    return build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16
    )


def test_p3_to_p7_teacher_teaches_p2_from_its_p3_resized_and_says_so(
    images: torch.Tensor, targets: list[Target]
) -> None:
    torch.manual_seed(0)
    retina = build_teacher(
        arch="torchvision_retinanet_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    )
    student = _student()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no level is skipped with a mere warning any more
        distiller = HierarchicalDistiller(retina, student)
    assert distiller.skipped_levels == []
    assert distiller.pairs == {"p2": "p3 (resized x2)", "p3": "p3", "p4": "p4", "p5": "p5"}
    p2 = distiller.plans[0]
    assert (p2.student, p2.teacher, p2.resized, p2.ratio) == ("p2", "p3", True, 2.0)
    losses = distiller(images, targets)
    assert {f"kd/{t}/p2" for t in ("spatial", "semantic", "context")} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    # A learned adapter is built for P2 too, to the P3 teacher's channels.
    learned = HierarchicalDistiller(
        retina, student, weights=DistillSpec(spatial={"adapter": "learned"})
    )
    adapter = learned.adapters["p2"]
    assert isinstance(adapter, FeatureAdapter) and adapter.proj.out_channels == 256
    assert learned(images, targets)["kd/spatial/p2"].item() > 0


def test_faster_rcnn_teacher_distils_p2_directly() -> None:
    faster = build_teacher(
        arch="torchvision_fasterrcnn_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    )
    distiller = HierarchicalDistiller(faster, _student())
    assert distiller.pairs == {level: level for level in LEVELS}
    assert not any(plan.resized for plan in distiller.plans)


def test_nearest_pairing_prefers_equal_strides() -> None:
    student = _student().output_shape()
    retina = build_teacher(
        arch="torchvision_fcos_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    ).output_shape()
    assert pair_levels(student, retina) == [("p3", "p3"), ("p4", "p4"), ("p5", "p5")]
    assert pair_levels(student, retina, nearest=True)[0] == ("p2", "p3")


def test_head_kd_needs_every_level_the_teacher_head_reads() -> None:
    retina = build_teacher(
        arch="torchvision_retinanet_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    )
    with pytest.raises(ValueError, match="p6"):
        HierarchicalDistiller(retina, _student(), weights=DistillSpec(head=1.0))
