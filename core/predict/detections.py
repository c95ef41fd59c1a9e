"""One image's detections as numpy arrays (boxes x1 y1 x2 y2 in that image's pixels)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes (D, 4) float32, scores (D,) float32, labels (D,) int64 (contiguous 1..K)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise ValueError("boxes, scores and labels must have the same length")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(
            boxes=np.zeros((0, 4), dtype=np.float32),
            scores=np.zeros(0, dtype=np.float32),
            labels=np.zeros(0, dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """All detections of `parts`, in order."""
        if not parts:
            return cls.empty()
        return cls(
            boxes=np.concatenate([p.boxes.reshape(-1, 4) for p in parts]).astype(np.float32),
            scores=np.concatenate([p.scores for p in parts]).astype(np.float32),
            labels=np.concatenate([p.labels for p in parts]).astype(np.int64),
        )

    def take(self, index: np.ndarray) -> Detections:
        """The detections at `index` (indices or a boolean mask), in that order."""
        return Detections(
            boxes=self.boxes.reshape(-1, 4)[index],
            scores=self.scores[index],
            labels=self.labels[index],
        )

    def shifted(self, dx: float, dy: float) -> Detections:
        """The same detections moved by (dx, dy) pixels (a tile's boxes into the image)."""
        offset = np.asarray([dx, dy, dx, dy], dtype=np.float32)
        return Detections(boxes=self.boxes + offset, scores=self.scores, labels=self.labels)

    def scaled(self, scale: float, pad: tuple[float, float]) -> Detections:
        """Model pixels back to the image's: minus the letterbox padding, divided by the scale."""
        boxes = self.boxes.reshape(-1, 4).astype(np.float32).copy()
        boxes[:, [0, 2]] -= pad[0]
        boxes[:, [1, 3]] -= pad[1]
        return Detections(boxes=boxes / np.float32(scale), scores=self.scores, labels=self.labels)

    def clipped(self, width: float, height: float) -> Detections:
        """Boxes clipped to a width x height image."""
        boxes = self.boxes.reshape(-1, 4).copy()
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        return Detections(boxes=boxes, scores=self.scores, labels=self.labels)

    def best(self, count: int) -> Detections:
        """The `count` highest-scoring detections, highest first."""
        order = np.argsort(-self.scores, kind="stable")[:count]
        return self.take(order)
