"""FPN backbones: P2 (stride 4) .. P5 (stride 32) on every trunk, and local ImageNet weights."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
import torch
import torchvision

from core.models.backbones import BackboneName, build_backbone
from core.models.checkpoints import CheckpointMismatchError
from core.models.detectors import build_student

from ..conftest import IMAGE_SIZE


@pytest.mark.parametrize("name", get_args(BackboneName))
def test_output_shape_names_p2_to_p5_and_matches_features(name: BackboneName) -> None:
    backbone = build_backbone(name, fpn_channels=16).eval()
    shape = backbone.output_shape()
    assert list(shape) == ["p2", "p3", "p4", "p5"]
    assert [spec.stride for spec in shape.values()] == [4, 8, 16, 32]
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE))
    for level, spec in shape.items():
        assert features[level].shape == (
            1,
            16,
            IMAGE_SIZE // spec.stride,
            IMAGE_SIZE // spec.stride,
        )
        assert spec.channels == 16 and spec.name == level


def test_pretrained_backbone_loads_a_local_imagenet_state_dict(tmp_path: Path) -> None:
    classifier = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mobilenet_v2-imagenet.pth"
    torch.save(classifier.state_dict(), path)
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn",
        num_classes=3,
        image_size=IMAGE_SIZE,
        fpn_channels=16,
        pretrained_backbone=str(path),
    )
    loaded = student.state_dict()["backbone.body.0.0.weight"]
    assert torch.equal(loaded, classifier.state_dict()["features.0.0.weight"])


def test_pretrained_backbone_of_another_trunk_is_refused_with_key_names(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(
        CheckpointMismatchError, match=r"resnet18\.pth.*missing keys: .*features\.0\.0\.weight"
    ):
        build_student(
            arch="fcos_mobilenet_v2_fpn",
            num_classes=3,
            image_size=IMAGE_SIZE,
            fpn_channels=16,
            pretrained_backbone=str(path),
        )
