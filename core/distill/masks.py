"""Foreground / background weights from ground-truth boxes at each level's own resolution.

Scale-aware masks follow FGD (Yang et al., CVPR 2022): each object marks the cells its box
covers at the level's stride (at least one cell) with 1 / (h_cells * w_cells), so that every
object weighs the same at every level whatever its size; overlapping objects keep the larger
weight; background is apart. Small objects are not weighted up by their pixel area: they
matter where they are resolved, at the fine levels the student is distilled at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from core.structures import Target


@dataclass(frozen=True)
class LevelMasks:
    """Weights at one level; the spatial term takes weighted means over the whole batch."""

    fg: Tensor  # (N, 1, H, W): each object sums to 1 (scale-aware) or 1 inside any box
    bg: Tensor  # (N, 1, H, W): 1 outside every box, 0 inside


def box_cells(boxes: Tensor, stride: float, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """(M, H) and (M, W) masks of the rows / columns each box covers, at least one each."""
    height, width = size
    # (M,) first and one-past-last cell of each box, clamped to the map.
    x0 = (boxes[:, 0] / stride).floor().clamp(0, width - 1)
    y0 = (boxes[:, 1] / stride).floor().clamp(0, height - 1)
    x1 = torch.maximum((boxes[:, 2] / stride).ceil().clamp(max=width), x0 + 1)
    y1 = torch.maximum((boxes[:, 3] / stride).ceil().clamp(max=height), y0 + 1)
    cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype)  # (W,)
    rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype)  # (H,)
    in_cols = (cols[None] >= x0[:, None]) & (cols[None] < x1[:, None])  # (M, W)
    in_rows = (rows[None] >= y0[:, None]) & (rows[None] < y1[:, None])  # (M, H)
    return in_rows, in_cols


def foreground_cells(
    boxes: Tensor, stride: float, size: tuple[int, int], *, scale_aware: bool = True
) -> Tensor:
    """(H, W) weights of one image's boxes (M, 4): 1 / cells per object, max over objects."""
    height, width = size
    if boxes.numel() == 0:
        return boxes.new_zeros(height, width)
    in_rows, in_cols = box_cells(boxes, stride, size)
    inside = (in_rows[:, :, None] & in_cols[:, None, :]).to(boxes.dtype)  # (M, H, W)
    if scale_aware:
        cells = in_rows.sum(dim=1) * in_cols.sum(dim=1)  # (M,)
        inside = inside / cells.to(boxes.dtype).view(-1, 1, 1)
    return inside.amax(dim=0)  # (H, W)


def level_masks(
    targets: Sequence[Target], stride: float, size: tuple[int, int], *, scale_aware: bool = True
) -> LevelMasks:
    """The LevelMasks of a batch at one level of the given (H, W) and stride in pixels.

    All images' boxes are handled in one pass (no per-image loop, no host synchronisation):
    each box's cells are marked, then reduced per image with the max.
    """
    height, width = size
    boxes = torch.cat([t["boxes"].detach().float().reshape(-1, 4) for t in targets])  # (M, 4)
    owner = torch.cat(
        [
            torch.full((t["boxes"].shape[0],), i, dtype=torch.long, device=boxes.device)
            for i, t in enumerate(targets)
        ]
    )  # (M,)
    fg = boxes.new_zeros(len(targets), height, width)
    if boxes.numel():
        in_rows, in_cols = box_cells(boxes, stride, size)
        inside = (in_rows[:, :, None] & in_cols[:, None, :]).to(boxes.dtype)  # (M, H, W)
        if scale_aware:
            cells = in_rows.sum(dim=1) * in_cols.sum(dim=1)  # (M,)
            inside = inside / cells.to(boxes.dtype).view(-1, 1, 1)
        flat = inside.reshape(inside.shape[0], -1)  # (M, H*W)
        index = owner[:, None].expand_as(flat)
        fg = fg.reshape(len(targets), -1).scatter_reduce_(0, index, flat, "amax")
        fg = fg.reshape(len(targets), height, width)
    fg = fg.unsqueeze(1)  # (N, 1, H, W)
    return LevelMasks(fg=fg, bg=(fg <= 0).to(fg.dtype))


def build_level_masks(
    targets: Sequence[Target],
    image_size: tuple[int, int],
    sizes: dict[str, tuple[int, int]],
    *,
    scale_aware: bool = True,
) -> dict[str, LevelMasks]:
    """Level name -> LevelMasks for feature maps of the given (H, W) sizes.

    A level's stride is the power of two nearest to image height / map height (backbones
    round map sizes up, so the ratio is not always exact).
    """
    masks = {}
    for name, (height, width) in sizes.items():
        stride = float(2 ** round(math.log2(image_size[0] / height)))
        masks[name] = level_masks(targets, stride, (height, width), scale_aware=scale_aware)
    return masks
