"""Small stand-in loss models and loaders for the engine's tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.structures import Batch, Target


class TinyLossModel(nn.Module):
    """A conv net whose forward returns two named losses, like a distiller does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 4)

    def forward(self, images: torch.Tensor, targets: list[Target], *, step: int = 0) -> dict:
        features = self.norm(self.conv(images)).relu().mean(dim=(2, 3))  # (N, 4)
        boxes = self.head(features)
        wanted = torch.stack([t["boxes"][0] / images.shape[-1] for t in targets])
        return {
            "det/bbox_regression": (boxes - wanted).abs().mean(),
            "det/classification": features.pow(2).mean() * 0.1,
        }


class TinyImages(Dataset):
    """Random 16 px images, each with one box."""

    def __init__(self, count: int = 12, size: int = 16) -> None:
        generator = torch.Generator().manual_seed(123)
        self.images = torch.rand(count, 3, size, size, generator=generator)
        self.boxes = torch.rand(count, 4, generator=generator).sort(dim=1).values * size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.images[index], self.boxes[index], index


def collate(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    """Stack into a Batch."""
    return Batch(
        images=torch.stack([image for image, _, _ in items]),
        targets=[
            Target(boxes=box[None, [0, 2, 1, 3]], labels=torch.ones(1, dtype=torch.int64))
            for _, box, _ in items
        ],
        image_ids=[index for _, _, index in items],
        scales=[1.0] * len(items),
        pads=[(0, 0)] * len(items),
    )


def tiny_loader(seed: int = 0, batch_size: int = 4) -> DataLoader:
    """A shuffled loader with its own seeded generator (as core.data builds them)."""
    return DataLoader(
        TinyImages(),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
    )
