"""Foreground / background weight maps from ground-truth boxes, scale-aware, per pyramid level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from core.structures import Target

EPS = 1e-12


@dataclass(frozen=True)
class LevelMasks:
    """Per-image normalised weights at one level: each map sums to 1 per image (or is all 0)."""

    fg: Tensor  # (N, 1, H, W)
    bg: Tensor  # (N, 1, H, W)


def foreground_map(
    targets: Sequence[Target],
    image_size: tuple[int, int],
    *,
    scale_aware: bool = True,
    device: torch.device | None = None,
) -> Tensor:
    """(N, 1, H, W) at image resolution: inside a box 1 / box area (or 1), 0 outside.

    With `scale_aware`, a pixel in a small box weighs more than one in a large box so that each
    object contributes about equally (FGD); overlapping boxes keep the larger weight.
    """
    height, width = image_size
    masks = torch.zeros(len(targets), 1, height, width, device=device)
    for index, target in enumerate(targets):
        boxes = target["boxes"].detach().to(device=masks.device, dtype=torch.float32)
        for x1, y1, x2, y2 in boxes.tolist():
            left, top = max(int(x1), 0), max(int(y1), 0)
            right = min(max(round(x2), left + 1), width)
            bottom = min(max(round(y2), top + 1), height)
            if right <= left or bottom <= top:
                continue
            value = 1.0 / max((x2 - x1) * (y2 - y1), 1.0) if scale_aware else 1.0
            region = masks[index, 0, top:bottom, left:right]
            region.clamp_(min=value)
    return masks


def level_masks(full: Tensor, size: tuple[int, int]) -> LevelMasks:
    """Max-pool an image-resolution foreground map to a level's (H, W) and normalise per image."""
    fg = F.adaptive_max_pool2d(full, size)  # (N, 1, H, W)
    bg = (fg <= 0).to(fg.dtype)
    fg_sum = fg.sum(dim=(1, 2, 3), keepdim=True)
    bg_sum = bg.sum(dim=(1, 2, 3), keepdim=True)
    return LevelMasks(fg=fg / fg_sum.clamp_min(EPS), bg=bg / bg_sum.clamp_min(EPS))


def build_level_masks(
    targets: Sequence[Target],
    image_size: tuple[int, int],
    sizes: dict[str, tuple[int, int]],
    *,
    scale_aware: bool = True,
) -> dict[str, LevelMasks]:
    """Level name -> LevelMasks for feature maps of the given (H, W) sizes."""
    device = targets[0]["boxes"].device if targets else None
    full = foreground_map(targets, image_size, scale_aware=scale_aware, device=device)
    return {name: level_masks(full, size) for name, size in sizes.items()}
