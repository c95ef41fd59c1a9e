"""Detectors: losses, features, logits and detections on tiny images; torchvision teachers."""

from __future__ import annotations

import io
from typing import get_args

import pytest
import torch
from torch import nn

from core.models.detectors import build_student, build_teacher
from core.spec import StudentArch
from core.structures import Target

from ..conftest import IMAGE_SIZE


@pytest.mark.parametrize("arch", get_args(StudentArch))
def test_student_trains_and_detects(arch: str, images: torch.Tensor, targets: list[Target]) -> None:
    torch.manual_seed(0)
    model = build_student(arch=arch, num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16)
    output = model(images, targets)
    expected = {"det/classification", "det/bbox_regression"}
    if arch.startswith("fcos"):
        expected.add("det/bbox_ctrness")
    assert set(output.losses) == expected
    total = sum(output.losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.head.classification_head.cls_logits.weight.grad is not None
    anchors = 9 if arch.startswith("retinanet") else 1
    cells = sum((IMAGE_SIZE // s) ** 2 for s in (4, 8, 16, 32))
    assert output.cls_logits is not None
    assert output.cls_logits.shape == (2, cells * anchors, 3)  # (N, sum H*W*A, K)
    assert set(output.features) == {"p2", "p3", "p4", "p5"}
    assert output.detections is None

    model.eval()
    with torch.no_grad():
        evaluated = model(images)
    assert evaluated.detections is not None and len(evaluated.detections) == 2
    for found in evaluated.detections:
        assert found["boxes"].shape[1] == 4
        assert bool((found["labels"] >= 1).all())


def test_raw_outputs_export_to_onnx(images: torch.Tensor) -> None:
    model = build_student(
        arch="fcos_mobilenet_v2_fpn", num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16
    ).eval()

    class Dense(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(self.model.raw_outputs(x).values())

    assert set(model.raw_outputs(images[:1])) == {"cls_logits", "bbox_regression", "bbox_ctrness"}
    buffer = io.BytesIO()
    torch.onnx.export(Dense(), (images[:1],), buffer, dynamo=False)
    assert buffer.tell() > 10_000


def test_torchvision_teachers_name_levels_by_stride(images: torch.Tensor) -> None:
    retina = build_teacher(
        arch="torchvision_retinanet_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    )
    assert list(retina.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]
    faster = build_teacher(
        arch="torchvision_fasterrcnn_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE
    ).eval()
    shape = faster.output_shape()
    assert [s.stride for s in shape.values()] == [4, 8, 16, 32, 64]
    with torch.no_grad():
        features = faster.extract_features(images)
    for level in ("p2", "p3", "p4", "p5"):
        assert features[level].shape[-1] == IMAGE_SIZE // shape[level].stride
    assert faster.has_dense_head is False


def test_unknown_archs_and_bad_sizes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"student\.arch"):
        build_student(arch="retinanet_resnet50_fpn", num_classes=3, image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match=r"teacher\.arch"):
        build_teacher(arch="yolo", num_classes=3, image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match="256 channels"):
        build_teacher(
            arch="torchvision_fcos_resnet50_fpn", num_classes=3, image_size=64, fpn_channels=64
        )
