"""Attention pictures: teacher vs student spatial attention per level, small-object images."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor, nn

from core.structures import Batch

SMALL_AREA = 32 * 32
"""COCO's small-object threshold on the box area in original pixels."""

TILE = 192
"""Side of one tile of a picture, in pixels."""


def attention_map(features: Tensor, *, p: float = 2.0) -> Tensor:
    """Zagoruyko spatial attention: mean over channels of |F|^p, scaled to [0, 1] per image."""
    attention = features.detach().float().abs().pow(p).mean(dim=1)  # (N, H, W)
    flat = attention.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    high = flat.max(dim=1).values[:, None, None]
    return (attention - low) / (high - low).clamp_min(1e-12)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """A jet-like colour map of values in [0, 1]: (H, W) -> (H, W, 3) uint8."""
    x = values.clip(0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # red, green, blue peaks
    rgb = (1.5 - np.abs(4.0 * (x - centres))).clip(0.0, 1.0)
    return (rgb * 255).astype(np.uint8)


def image_tile(image: Tensor, side: int = TILE) -> Image.Image:
    """A (3, H, W) image in [0, 1] as a `side` x `side` PIL picture."""
    pixels = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(
        np.uint8
    )
    return Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)


def overlay(image: Image.Image, attention: Tensor) -> Image.Image:
    """The picture blended with a heat map of a (H, W) map in [0, 1], resized to it."""
    side = image.size[0]
    resized = F.interpolate(attention[None, None], size=(side, side), mode="bilinear")[0, 0]
    heat = Image.fromarray(heat_colours(resized.cpu().numpy()))
    return Image.blend(image, heat, 0.55)


def draw_boxes(
    tile: Image.Image,
    boxes: Tensor,
    image_size: int,
    colour: tuple[int, int, int] = (0, 255, 0),
) -> None:
    """Draw model-pixel boxes (x1 y1 x2 y2 at `image_size`) on a picture of any side."""
    draw = ImageDraw.Draw(tile)
    factor = tile.size[0] / image_size
    for x1, y1, x2, y2 in (boxes.detach().cpu().reshape(-1, 4) * factor).tolist():
        draw.rectangle((x1, y1, max(x2, x1), max(y2, y1)), outline=colour, width=2)


def caption(tile: Image.Image, text: str) -> None:
    """White text on a black band in the picture's top-left corner."""
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, 8 + 7 * len(text), 14), fill=(0, 0, 0))
    draw.text((3, 1), text, fill=(255, 255, 255))


def small_object_count(batch: Batch, index: int) -> int:
    """How many ground-truth boxes of one image of a batch are COCO-small in original pixels."""
    boxes = batch.targets[index]["boxes"]
    if boxes.numel() == 0:
        return 0
    scale = float(batch.scales[index]) if batch.scales else 1.0
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (scale * scale)
    return int((areas < SMALL_AREA).sum())


@dataclass(frozen=True)
class PictureSample:
    """One val image chosen for pictures: model-pixel tensor, its ground truth and its id."""

    image: Tensor  # (3, S, S) in [0, 1]
    boxes: Tensor  # (M, 4) model pixels
    labels: Tensor  # (M,) 1..K
    image_id: int
    small_objects: int


def small_object_samples(
    batches: Iterable[Batch], *, count: int, max_batches: int = 32
) -> list[PictureSample]:
    """The `count` images with most COCO-small objects among the first batches (first wins)."""
    candidates: list[PictureSample] = []
    for batch_index, batch in enumerate(batches):
        if batch_index >= max_batches:
            break
        for index in range(len(batch.image_ids)):
            target = batch.targets[index]
            candidates.append(
                PictureSample(
                    image=batch.images[index],
                    boxes=target["boxes"],
                    labels=target["labels"],
                    image_id=int(batch.image_ids[index]),
                    small_objects=small_object_count(batch, index),
                )
            )
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].small_objects, i))
    return [candidates[i] for i in order[:count]]


def select_small_object_images(
    batches: Iterable[Batch], *, count: int, max_batches: int = 32
) -> list[tuple[Tensor, Tensor]]:
    """(image, GT boxes) of the `count` images with most small objects among the first batches."""
    chosen = small_object_samples(batches, count=count, max_batches=max_batches)
    return [(sample.image, sample.boxes) for sample in chosen]


def _features(model: nn.Module, images: Tensor) -> dict[str, Tensor]:
    extract = getattr(model, "extract_features", None)
    if callable(extract):
        return dict(extract(images))
    return dict(model(images).features)


@torch.inference_mode()
def attention_pictures(
    *,
    teacher: nn.Module | None,
    student: nn.Module,
    batches: Iterable[Batch],
    out_dir: Path,
    device: torch.device,
    count: int = 4,
    p: float = 2.0,
) -> list[Path]:
    """PNGs, one per image: the image with GT boxes, then attention per level; teacher above."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models: list[tuple[str, nn.Module]] = [("student", student)]
    if teacher is not None:
        models.insert(0, ("teacher", teacher))
    modes = [(m, m.training) for _, m in models]
    for model, _ in modes:
        model.eval()
    paths: list[Path] = []
    try:
        chosen = select_small_object_images(batches, count=count)
        for number, (image, boxes) in enumerate(chosen, start=1):
            image_size = image.shape[-1]
            base = image_tile(image)
            rows: list[list[Image.Image]] = []
            for role, model in models:
                features = _features(model, image[None].to(device))
                levels = [name for name in ("p2", "p3", "p4", "p5") if name in features]
                first = base.copy()
                draw_boxes(first, boxes, image_size)
                caption(first, role)
                row = [first]
                for level in levels:
                    tile = overlay(base, attention_map(features[level], p=p)[0].cpu())
                    draw_boxes(tile, boxes, image_size)
                    caption(tile, f"{role} {level}")
                    row.append(tile)
                rows.append(row)
            width = max(len(row) for row in rows) * TILE
            canvas = Image.new("RGB", (width, len(rows) * TILE), (32, 32, 32))
            for r, row in enumerate(rows):
                for c, tile in enumerate(row):
                    canvas.paste(tile, (c * TILE, r * TILE))
            path = out_dir / f"attention_{number:02d}.png"
            canvas.save(path)
            paths.append(path)
    finally:
        for model, mode in modes:
            model.train(mode)
    return paths
