"""Tiled training (`data.tile`): which chip of an image a sample is, and its ground truth there.

The chip grid is core.predict.slicing's, the one `distillery predict --slice` and sliced
evaluation use: tiles of `tile.size` px overlapping by `tile.overlap`, the last one flush
with the border. A box is clipped to a chip and kept there when at least
`tile.min_visibility` of its area lies inside it (`window_boxes`), so a box cut by a chip
border is clipped in the chip that holds most of it and dropped from the one that shows a
sliver.

Training draws one random chip per sample from the dataset's (seed, epoch, worker) stream:
a chip that keeps at least one box, or, with probability `tile.empty_rate` (and always when
no chip keeps a box), a chip that keeps none. An epoch therefore has one sample per image,
as untiled training does, and over the epochs every chip with objects is seen. Validation
batches (pictures, held-out batches) are every chip of every grid in order (`chip_index`);
the metrics come from sliced inference on the full images
(core.evaluation.inference.evaluate_sliced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.predict.slicing import Window, tile_windows, window_boxes
from core.spec import TileSpec


@dataclass(frozen=True)
class Chip:
    """One chip of an image: its window in image pixels and its ground truth in chip pixels."""

    window: Window
    boxes: np.ndarray  # (M, 4) float32 x1 y1 x2 y2, chip pixels
    labels: np.ndarray  # (M,) int64

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the chip in pixels."""
        x1, y1, x2, y2 = self.window
        return x2 - x1, y2 - y1


def chip_of(boxes: np.ndarray, labels: np.ndarray, window: Window, tile: TileSpec) -> Chip:
    """The chip `window` of an image with (M, 4) `boxes` and (M,) `labels` in image pixels."""
    moved, keep = window_boxes(boxes, window, min_visibility=tile.min_visibility)
    return Chip(window=window, boxes=moved, labels=np.asarray(labels, dtype=np.int64)[keep])


def image_chips(
    width: int, height: int, boxes: np.ndarray, labels: np.ndarray, tile: TileSpec
) -> list[Chip]:
    """Every chip of a width x height image's grid, row by row."""
    windows = tile_windows(width, height, tile.size, tile.overlap)
    return [chip_of(boxes, labels, window, tile) for window in windows]


def choose_chip(
    width: int,
    height: int,
    boxes: np.ndarray,
    labels: np.ndarray,
    tile: TileSpec,
    rng: np.random.Generator,
) -> Chip:
    """A random chip for one training sample: one with a box, or with `tile.empty_rate` one
    without (a chip without a box whenever the image has no chip with one)."""
    chips = image_chips(width, height, boxes, labels, tile)
    with_boxes = [i for i, chip in enumerate(chips) if len(chip.boxes)]
    without = [i for i, chip in enumerate(chips) if not len(chip.boxes)]
    pool = with_boxes or without
    if with_boxes and without and tile.empty_rate > 0 and rng.random() < tile.empty_rate:
        pool = without
    return chips[pool[int(rng.integers(len(pool)))]]


def chip_index(sizes: Sequence[tuple[int, int]], tile: TileSpec) -> list[tuple[int, Window]]:
    """(image index, window) of every chip of every image, image by image, row by row."""
    return [
        (index, window)
        for index, (width, height) in enumerate(sizes)
        for window in tile_windows(width, height, tile.size, tile.overlap)
    ]
