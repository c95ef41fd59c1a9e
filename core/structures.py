"""Typed contracts for the data that crosses core's packages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypedDict

import torch
from torch import Tensor


@dataclass(frozen=True)
class LevelSpec:
    """One pyramid level of a detector: its name (p2..p7), channels and stride in pixels."""

    name: str
    channels: int
    stride: int


class Target(TypedDict):
    """Ground truth of one image, in the pixel coordinates of the tensor fed to the model."""

    boxes: Tensor  # (M, 4) float32, x1 y1 x2 y2
    labels: Tensor  # (M,) int64, contiguous 1..K (0 is background for two-stage heads)


class Detections(TypedDict):
    """Predictions for one image, in the coordinates of the tensor fed to the model."""

    boxes: Tensor  # (D, 4) x1 y1 x2 y2
    scores: Tensor  # (D,)
    labels: Tensor  # (D,) contiguous 1..K


@dataclass
class Batch:
    """A collated training or evaluation batch of equal-size images."""

    images: Tensor  # (N, 3, S, S) float32 in [0, 1], letterboxed to the spec's image_size
    targets: list[Target]
    image_ids: list[int]  # COCO image ids, for evaluation
    scales: list[float]  # original pixels = model pixels / scale (before letterbox pad)
    pads: list[tuple[int, int]] = field(default_factory=list)  # (left, top) letterbox padding
    flipped: list[bool] = field(default_factory=list)  # mirrored by the augmentation

    def views(self) -> list[tuple[int, bool]] | None:
        """(image id, flipped) of every image: what the teacher saw, for its feature cache."""
        if len(self.flipped) != len(self.image_ids):
            return None
        return list(zip(self.image_ids, self.flipped, strict=True))

    def to(self, device: torch.device) -> Batch:
        """The same batch with tensors on `device`."""
        return Batch(
            images=self.images.to(device, non_blocking=True),
            targets=[
                Target(boxes=t["boxes"].to(device), labels=t["labels"].to(device))
                for t in self.targets
            ],
            image_ids=self.image_ids,
            scales=self.scales,
            pads=self.pads,
            flipped=self.flipped,
        )


@dataclass
class DetectorOutput:
    """What a detector's forward returns: losses (with targets), features, head logits."""

    features: dict[str, Tensor]  # level name -> (N, C, H, W)
    losses: dict[str, Tensor] = field(default_factory=dict)  # e.g. det/classification
    cls_logits: Tensor | None = None  # (N, sum_l H_l*W_l*A, K), dense heads only
    detections: list[Detections] | None = None  # eval mode only


class PyramidModel(Protocol):
    """Anything distillation can pair: it names its levels with channels and stride."""

    def output_shape(self) -> dict[str, LevelSpec]:
        """Level name -> LevelSpec, P2 (stride 4) first."""
        ...
