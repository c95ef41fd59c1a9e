"""Deterministic synthetic batches (images and small boxes) for speed benchmarks."""

from __future__ import annotations

import torch

from core.structures import Batch, Target


def synthetic_batch(
    *, batch_size: int, image_size: int, num_classes: int, objects: int = 6, seed: int = 0
) -> Batch:
    """A batch of random images with `objects` small boxes each (labels 1..num_classes-1)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, image_size, image_size, generator=gen)  # (N, 3, S, S)
    targets: list[Target] = []
    for _ in range(batch_size):
        # Mostly COCO-"small" boxes (side 6..24 px at the model's resolution).
        sides = torch.randint(6, 25, (objects, 2), generator=gen).float()
        corners = torch.rand(objects, 2, generator=gen) * (image_size - sides)
        boxes = torch.cat([corners, corners + sides], dim=1)  # (M, 4) x1 y1 x2 y2
        labels = torch.randint(1, max(2, num_classes), (objects,), generator=gen)
        targets.append(Target(boxes=boxes, labels=labels))
    return Batch(
        images=images,
        targets=targets,
        image_ids=list(range(batch_size)),
        scales=[1.0] * batch_size,
        pads=[(0, 0)] * batch_size,
    )
