"""The anchors of a student's dense head, in numpy, as torchvision's AnchorGenerator lays them.

The students (core/models/detectors.py) use 16 px RetinaNet anchors on P2 doubling per level,
3 scales x 3 ratios per location, and one stride-sized anchor per location for FCOS; a model
whose metadata names `anchor_sizes` / `anchor_aspect_ratios` uses those instead.
tests/core/predict/test_postprocess.py checks this layout against the torch model's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.predict.metadata import LEVEL_STRIDES, ModelMeta

RETINANET_ANCHOR_BASE = 16
ANCHOR_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
FCOS_ANCHOR_BASE = 4


@dataclass(frozen=True)
class AnchorLayout:
    """Per level: anchor sizes and aspect ratios (all combinations at every location)."""

    sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[tuple[float, ...], ...]

    @property
    def per_location(self) -> int:
        """Anchors at one location (the same on every level)."""
        return len(self.sizes[0]) * len(self.aspect_ratios[0])


def anchor_layout(meta: ModelMeta) -> AnchorLayout:
    """The anchor sizes and ratios of the model (its metadata's, else the students' default)."""
    levels = len(LEVEL_STRIDES)
    if meta.family == "retinanet":
        sizes = tuple(
            tuple(float(round(RETINANET_ANCHOR_BASE * 2**i * s)) for s in ANCHOR_SCALES)
            for i in range(levels)
        )
        ratios: tuple[tuple[float, ...], ...] = (ANCHOR_RATIOS,) * levels
    else:
        sizes = tuple((float(FCOS_ANCHOR_BASE * 2**i),) for i in range(levels))
        ratios = ((1.0,),) * levels
    return AnchorLayout(
        sizes=meta.anchor_sizes or sizes, aspect_ratios=meta.anchor_aspect_ratios or ratios
    )


def grid_sizes(image_size: int) -> list[int]:
    """Feature map side per level: every stride-2 step rounds up (padded 3x3 convs)."""
    return [math.ceil(image_size / stride) for stride in LEVEL_STRIDES]


def cell_anchors(sizes: tuple[float, ...], ratios: tuple[float, ...]) -> np.ndarray:
    """(A, 4) anchors centred on 0, ratio-major, rounded (torchvision's generate_anchors)."""
    scales = np.asarray(sizes, dtype=np.float32)
    aspect = np.asarray(ratios, dtype=np.float32)
    h_ratios = np.sqrt(aspect)
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)).astype(np.float32)


def level_anchors(layout: AnchorLayout, image_size: int) -> list[np.ndarray]:
    """Per level (H*W*A, 4) anchors in model pixels, location-major like the head's outputs."""
    out = []
    for grid, sizes, ratios in zip(
        grid_sizes(image_size), layout.sizes, layout.aspect_ratios, strict=True
    ):
        stride = image_size // grid  # torchvision: image size // feature size
        shifts = np.arange(grid, dtype=np.float32) * np.float32(stride)
        shift_y, shift_x = np.meshgrid(shifts, shifts, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        grid_shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=1)
        base = cell_anchors(sizes, ratios)
        out.append((grid_shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
    return out
