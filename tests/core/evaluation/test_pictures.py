"""Attention pictures of teacher vs student on images with small objects."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from core.evaluation.pictures import attention_map, attention_pictures, select_small_object_images
from core.models.detectors import build_student, build_teacher
from core.structures import Batch, Target


def test_attention_map_is_normalised_per_image() -> None:
    features = torch.randn(2, 8, 5, 6)
    attention = attention_map(features)
    assert attention.shape == (2, 5, 6)
    assert torch.allclose(attention.flatten(1).max(dim=1).values, torch.ones(2))
    assert torch.allclose(attention.flatten(1).min(dim=1).values, torch.zeros(2))


def _batch() -> Batch:
    small = torch.tensor([[4.0, 4.0, 12.0, 12.0], [20.0, 20.0, 30.0, 28.0]])
    large = torch.tensor([[0.0, 0.0, 60.0, 60.0]])
    labels = torch.ones(2, dtype=torch.int64)
    return Batch(
        images=torch.rand(2, 3, 64, 64),
        targets=[Target(boxes=large, labels=labels[:1]), Target(boxes=small, labels=labels)],
        image_ids=[1, 2],
        scales=[1.0, 1.0],
        pads=[(0, 0), (0, 0)],
    )


def test_pictures_pick_small_objects_and_show_both_models(tmp_path: Path) -> None:
    batch = _batch()
    chosen = select_small_object_images([batch], count=1)
    assert torch.equal(chosen[0][0], batch.images[1])  # the image with two small boxes

    student = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=2, image_size=64, fpn_channels=16
    )
    teacher = build_teacher(
        arch="retinanet_resnet18_fpn", num_classes=2, image_size=64, fpn_channels=16
    )
    paths = attention_pictures(
        teacher=teacher,
        student=student,
        batches=[batch],
        out_dir=tmp_path,
        device=torch.device("cpu"),
        count=2,
    )
    assert [p.name for p in paths] == ["attention_01.png", "attention_02.png"]
    with Image.open(paths[0]) as picture:
        width, height = picture.size
    levels = len(student.output_shape())
    assert height == 2 * 192 and width == (1 + min(levels, 4)) * 192  # image + one tile per level
