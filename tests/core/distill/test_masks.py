"""Foreground / background masks: per-object weights at each level's own cells (FGD)."""

from __future__ import annotations

import torch

from core.distill.masks import build_level_masks, foreground_cells
from core.structures import Target


def _one_image(*boxes: list[float]) -> list[Target]:
    return [Target(boxes=torch.tensor(boxes), labels=torch.ones(len(boxes), dtype=torch.int64))]


def test_every_object_sums_to_one_at_every_level_whatever_its_size() -> None:
    # An 8 px and a 48 px box, apart: at every level each contributes exactly 1.
    targets = _one_image([0.0, 0.0, 8.0, 8.0], [64.0, 64.0, 112.0, 112.0])
    sizes = {"p2": (32, 32), "p3": (16, 16), "p4": (8, 8), "p5": (4, 4)}
    masks = build_level_masks(targets, (128, 128), sizes)
    for name, level in masks.items():
        fg = level.fg[0, 0]
        small, large = fg[: fg.shape[0] // 4, : fg.shape[1] // 4], fg[fg.shape[0] // 2 :, :]
        assert torch.isclose(small.sum(), torch.tensor(1.0)), name
        assert torch.isclose(large.sum(), torch.tensor(1.0)), name
    # At P4 (stride 16) the 8 px box is one cell of weight 1, the 48 px box 3 x 3 cells of 1/9:
    # the small object is no longer three times the large one in total.
    p4 = masks["p4"].fg[0, 0]
    assert p4[0, 0] == 1.0 and torch.isclose(p4[5, 5], torch.tensor(1 / 9))


def test_boxes_cover_the_cells_they_touch_and_background_is_the_rest() -> None:
    cells = foreground_cells(torch.tensor([[5.0, 2.0, 13.0, 6.0]]), 4.0, (8, 8))
    covered = cells > 0
    assert covered.sum() == 3 * 2  # columns 1..3, rows 0..1
    assert covered[0, 1] and covered[1, 3] and not covered[2, 1] and not covered[0, 4]
    assert torch.isclose(cells.sum(), torch.tensor(1.0))
    flat = foreground_cells(torch.tensor([[5.0, 2.0, 13.0, 6.0]]), 4.0, (8, 8), scale_aware=False)
    assert flat.max() == 1.0 and flat.sum() == 6.0


def test_level_masks_handle_images_without_objects_and_overlaps() -> None:
    empty = Target(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))
    overlapping = _one_image([0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 8.0, 8.0])
    masks = build_level_masks([*overlapping, empty], (64, 64), {"p2": (16, 16), "p5": (2, 2)})
    p2, p5 = masks["p2"], masks["p5"]
    assert p2.fg.shape == p2.bg.shape == (2, 1, 16, 16)
    # A 4 px box still marks its stride-32 cell; overlapping objects keep the larger weight.
    assert p5.fg[0, 0, 0, 0] == 1.0 and p5.bg[0, 0, 0, 0] == 0
    assert torch.isclose(p2.fg[0, 0, 0, 0], torch.tensor(1 / 4))
    assert p2.fg[1].sum() == 0 and p2.bg[1].sum() == 16 * 16
    assert bool(((p2.fg > 0) & (p2.bg > 0)).sum() == 0)
