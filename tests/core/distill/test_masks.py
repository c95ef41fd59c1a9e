"""Foreground / background masks: scale-aware weights, per-level pooling and normalisation."""

from __future__ import annotations

import torch

from core.distill.masks import build_level_masks, foreground_map
from core.structures import Target


def _one_image(*boxes: list[float]) -> list[Target]:
    return [Target(boxes=torch.tensor(boxes), labels=torch.ones(len(boxes), dtype=torch.int64))]


def test_small_boxes_weigh_more_per_pixel_than_large_ones() -> None:
    targets = _one_image([2.0, 2.0, 10.0, 10.0], [30.0, 30.0, 62.0, 62.0])
    full = foreground_map(targets, (64, 64), scale_aware=True)
    assert full.shape == (1, 1, 64, 64)
    small, large, outside = full[0, 0, 5, 5], full[0, 0, 40, 40], full[0, 0, 20, 5]
    assert small > large > 0 and outside == 0
    assert torch.isclose(small / large, torch.tensor(32.0**2 / 8.0**2))
    flat = foreground_map(targets, (64, 64), scale_aware=False)
    assert flat[0, 0, 5, 5] == flat[0, 0, 40, 40] == 1.0


def test_level_masks_are_pooled_and_normalised_per_image() -> None:
    empty = Target(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))
    targets = [*_one_image([2.0, 2.0, 6.0, 6.0]), empty]
    masks = build_level_masks(targets, (64, 64), {"p2": (16, 16), "p5": (2, 2)})
    p2, p5 = masks["p2"], masks["p5"]
    assert p2.fg.shape == p2.bg.shape == (2, 1, 16, 16)
    # A 4 px box still marks its stride-32 cell: max pooling keeps small objects.
    assert p5.fg[0, 0, 0, 0] == 1.0 and p5.bg[0, 0, 0, 0] == 0
    assert torch.allclose(p2.fg.sum(dim=(1, 2, 3)), torch.tensor([1.0, 0.0]))
    assert torch.allclose(p2.bg.sum(dim=(1, 2, 3)), torch.ones(2))
    assert bool(((p2.fg > 0) & (p2.bg > 0)).sum() == 0)
