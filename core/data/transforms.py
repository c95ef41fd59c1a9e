"""Image transforms that keep boxes right: letterbox, flip, colour jitter, small-object copy-paste.

Images are HxWx3 uint8 numpy arrays, boxes (M, 4) float32 x1 y1 x2 y2 in the image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114
"""Grey of the letterbox padding (the YOLO convention: neutral after ImageNet normalisation)."""

SMALL_SIDE = 32.0
"""COCO's small-object threshold: sqrt(area) below this is 'small'."""


@dataclass
class Letterboxed:
    """A letterboxed image with its boxes, the scale applied and the (left, top) padding."""

    image: np.ndarray  # (S, S, 3) uint8
    boxes: np.ndarray  # (M, 4) float32, model pixels
    scale: float
    pad: tuple[int, int]
    content: tuple[int, int, int, int]  # x1 y1 x2 y2 of the resized image inside the canvas


def letterbox(
    image: Image.Image | np.ndarray,
    boxes: np.ndarray,
    size: int,
    *,
    pad_value: int = PAD_VALUE,
    source_size: tuple[int, int] | None = None,
) -> Letterboxed:
    """Resize keeping the aspect ratio so the long side is `size`, pad to size x size, move boxes.

    `source_size` (width, height) is the size the boxes refer to, when the image was decoded
    smaller than that (JPEG draft mode).
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    w, h = source_size or pil.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = pil.convert("RGB").resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = np.asarray(resized)
    out = boxes.astype(np.float32).reshape(-1, 4) * scale
    out[:, [0, 2]] += left
    out[:, [1, 3]] += top
    return Letterboxed(canvas, out, scale, (left, top), (left, top, left + nw, top + nh))


def unletterbox_boxes(boxes: np.ndarray, scale: float, pad: tuple[int, int]) -> np.ndarray:
    """Model-pixel boxes back to the original image's pixels (inverse of `letterbox`)."""
    out = boxes.astype(np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] -= pad[0]
    out[:, [1, 3]] -= pad[1]
    return out / scale


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image left-right and its boxes with it."""
    width = image.shape[1]
    flipped = boxes.astype(np.float32).reshape(-1, 4).copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def color_jitter(
    image: np.ndarray,
    strength: float,
    rng: np.random.Generator,
    region: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Random brightness, contrast and saturation by factors in [1 - s, 1 + s] (boxes unchanged)."""
    if strength <= 0:
        return image
    x1, y1, x2, y2 = region or (0, 0, image.shape[1], image.shape[0])
    out = image.copy()
    patch = out[y1:y2, x1:x2].astype(np.float32)
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    patch *= brightness
    patch = (patch - patch.mean()) * contrast + patch.mean()
    grey = patch.mean(axis=2, keepdims=True)
    patch = (patch - grey) * saturation + grey
    out[y1:y2, x1:x2] = np.clip(patch, 0, 255).astype(np.uint8)
    return out


def _intersects(box: np.ndarray, others: np.ndarray, margin: float = 1.0) -> bool:
    if len(others) == 0:
        return False
    return bool(
        np.any(
            (box[0] < others[:, 2] + margin)
            & (box[2] + margin > others[:, 0])
            & (box[1] < others[:, 3] + margin)
            & (box[3] + margin > others[:, 1])
        )
    )


def copy_paste_small(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    max_objects: int = 4,
    small_side: float = SMALL_SIDE,
    region: tuple[int, int, int, int] | None = None,
    tries: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste copies of the image's small objects at free places, adding their boxes.

    Kisantal et al., "Augmentation for small object detection" (2019): over-sampling small
    objects by copying them, within the same image, to random places that overlap no object.
    Pastes stay inside `region` (the letterbox content) so no object lands on padding.
    """
    boxes = boxes.astype(np.float32).reshape(-1, 4)
    labels = labels.astype(np.int64).reshape(-1)
    x_lo, y_lo, x_hi, y_hi = region or (0, 0, image.shape[1], image.shape[0])
    ints = np.round(boxes).astype(int)
    sides = np.sqrt(np.maximum(ints[:, 2] - ints[:, 0], 0) * np.maximum(ints[:, 3] - ints[:, 1], 0))
    candidates = np.flatnonzero((sides > 1) & (sides < small_side))
    if len(candidates) == 0:
        return image, boxes, labels
    out = image.copy()
    new_boxes, new_labels = [boxes], [labels]
    occupied = boxes.copy()
    for _ in range(max_objects):
        src = int(rng.choice(candidates))
        x1, y1, x2, y2 = ints[src]
        x1, y1 = max(x1, 0), max(y1, 0)
        x2, y2 = min(x2, image.shape[1]), min(y2, image.shape[0])
        w, h = x2 - x1, y2 - y1
        if w <= 1 or h <= 1 or w >= x_hi - x_lo or h >= y_hi - y_lo:
            continue
        for _ in range(tries):
            nx = int(rng.integers(x_lo, x_hi - w + 1))
            ny = int(rng.integers(y_lo, y_hi - h + 1))
            box = np.array([nx, ny, nx + w, ny + h], dtype=np.float32)
            if _intersects(box, occupied):
                continue
            # copy from `image` (not `out`) so a paste never copies another paste's pixels
            out[ny : ny + h, nx : nx + w] = image[y1:y2, x1:x2]
            occupied = np.vstack([occupied, box[None]])
            new_boxes.append(box[None])
            new_labels.append(labels[src : src + 1])
            break
    return out, np.concatenate(new_boxes), np.concatenate(new_labels)
