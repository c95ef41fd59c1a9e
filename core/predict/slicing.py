"""Sliced inference (SAHI, Akyon et al., ICIP 2022): tiles, boxes back in the image, merging.

Tiles of `size` pixels overlap by `overlap` x size; the last tile of a row or column is
flush with the image border. Optionally the whole image, resized to the model's input, is
predicted too (SAHI's "standard prediction", for objects larger than a tile). Every tile's
boxes are shifted back to image pixels and merged across tiles per class: by greedy
non-maximum merging (default) or NMS, matching by IoS (default) or IoU. A box cut by a tile
border lies inside the whole box a neighbouring tile sees (IoS 1), so it comes back once.

The one home of the tile geometry: `distillery predict --slice`, the API, tiled training
(core.data.tiles: `window_boxes` clips ground truth to a chip) and sliced evaluation
(core.evaluation.inference: `sliced_predict_many`) all cut and merge with these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from core.predict.boxes import MatchMetric, batched_nms, box_areas, greedy_nmm
from core.predict.detections import Detections
from core.predict.errors import PredictError

MergeMode = Literal["nmm", "nms"]
Window = tuple[int, int, int, int]
"""A tile as (x1, y1, x2, y2) in image pixels, x2 and y2 exclusive."""

MIN_TILE = 16


@dataclass(frozen=True)
class SliceOptions:
    """How an image is cut into tiles and how the tiles' boxes are merged."""

    size: int
    overlap: float = 0.2
    full_image: bool = True
    merge: MergeMode = "nmm"
    metric: MatchMetric = "ios"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.size < MIN_TILE:
            raise PredictError(f"slice size {self.size} is below {MIN_TILE} pixels")
        if not 0.0 <= self.overlap < 1.0:
            raise PredictError(f"overlap {self.overlap} is not in [0, 1)")
        if not 0.0 < self.threshold <= 1.0:
            raise PredictError(f"merge threshold {self.threshold} is not in (0, 1]")


def tile_starts(length: int, size: int, overlap: float) -> list[int]:
    """Tile offsets along one side: a step of size - overlap, the last tile flush with the end."""
    if length <= size:
        return [0]
    step = max(1, size - int(overlap * size))
    starts = list(range(0, length - size, step))
    starts.append(length - size)
    return starts


def tile_windows(width: int, height: int, size: int, overlap: float) -> list[Window]:
    """The tiles covering a width x height image, row by row."""
    return [
        (x, y, min(x + size, width), min(y + size, height))
        for y in tile_starts(height, size, overlap)
        for x in tile_starts(width, size, overlap)
    ]


def window_boxes(
    boxes: np.ndarray, window: Window, *, min_visibility: float
) -> tuple[np.ndarray, np.ndarray]:
    """(kept boxes clipped to `window`, in its pixels; their indices) of (M, 4) image boxes.

    A box is kept when at least `min_visibility` of its area lies inside the window; the
    part inside is its box in that chip (boxes of no area are never kept).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = (np.float32(v) for v in window)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(x1, x2)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(y1, y2)
    inside = box_areas(clipped)
    area = box_areas(boxes)
    visible = np.where(area > 0, inside / np.maximum(area, 1e-12), 0.0)
    keep = np.flatnonzero((inside > 0) & (visible >= min_visibility - 1e-6))
    moved = clipped[keep] - np.asarray([x1, y1, x1, y1], dtype=np.float32)
    return moved.astype(np.float32), keep.astype(np.int64)


def merge_detections(found: Detections, options: SliceOptions) -> Detections:
    """Per class, overlapping boxes of several tiles merged into one (highest score first)."""
    if len(found) == 0:
        return found
    if options.merge == "nms":
        keep = batched_nms(
            found.boxes, found.scores, found.labels, options.threshold, metric=options.metric
        )
        return found.take(keep)
    keep, boxes = greedy_nmm(
        found.boxes, found.scores, found.labels, options.threshold, metric=options.metric
    )
    return Detections(boxes=boxes, scores=found.scores[keep], labels=found.labels[keep])


def sliced_predict(
    predict: Callable[[Image.Image], Detections],
    image: Image.Image,
    options: SliceOptions,
    *,
    max_detections: int | None = None,
) -> Detections:
    """Detections of `image` from its tiles (and the whole image), in image pixels, merged."""
    return sliced_predict_many(
        lambda crops: [predict(crop) for crop in crops],
        image,
        options,
        max_detections=max_detections,
    )


def sliced_predict_many(
    predict_many: Callable[[Sequence[Image.Image]], Sequence[Detections]],
    image: Image.Image,
    options: SliceOptions,
    *,
    max_detections: int | None = None,
) -> Detections:
    """`sliced_predict` with every tile (and the whole image) handed to `predict_many` at once,
    for a model that predicts a batch; each crop's detections in that crop's pixels."""
    windows = tile_windows(image.width, image.height, options.size, options.overlap)
    crops = [image.crop(window) for window in windows]
    whole = options.full_image and len(windows) > 1
    found = list(predict_many([*crops, image] if whole else crops))
    if len(found) != len(crops) + int(whole):
        raise PredictError(f"{len(found)} detection sets for {len(crops) + int(whole)} crops")
    parts = [part.shifted(w[0], w[1]) for part, w in zip(found, windows, strict=False)]
    if whole:
        parts.append(found[-1])
    merged = merge_detections(Detections.concat(parts), options)
    merged = merged.clipped(image.width, image.height)
    return merged.best(max_detections) if max_detections is not None else merged
