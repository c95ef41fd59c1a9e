"""The tiny student and teacher the distillation tests build (64 px, 2 classes + background)."""

from __future__ import annotations

from core.models.detectors import Detector, build_student, build_teacher

from ..conftest import IMAGE_SIZE


def tiny_student(arch: str = "retinanet_mobilenet_v2_fpn") -> Detector:
    """A student with 16-channel pyramid levels."""
    return build_student(arch=arch, num_classes=3, image_size=IMAGE_SIZE, fpn_channels=16)


def tiny_teacher(arch: str = "retinanet_resnet18_fpn") -> Detector:
    """A teacher with 32-channel pyramid levels."""
    return build_teacher(arch=arch, num_classes=3, image_size=IMAGE_SIZE, fpn_channels=32)
