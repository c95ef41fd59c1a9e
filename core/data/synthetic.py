"""The offline small-object benchmark: handwritten digits pasted small onto real photographs.

Everything comes from files installed with the packages: scikit-image's bundled photographs
are the backgrounds, scikit-learn's bundled 8x8 handwritten digits are the objects (digits
0-4 are the five classes, 5-9 and plain shapes are unlabelled distractors). Most objects
fall in COCO's "small" bucket (side below 32 px). Nothing is downloaded; one seed gives the
same dataset byte for byte with the same Pillow/libjpeg.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ("zero", "one", "two", "three", "four")
"""Labelled classes: the digits 0..4 (COCO category ids 1..5)."""

DISTRACTOR_DIGITS = (5, 6, 7, 8, 9)

# Photographs shipped inside scikit-image's wheel (no pooch download needed for these).
_COLOUR_BACKGROUNDS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)
_GREY_BACKGROUNDS = ("brick.png", "camera.png", "coins.png", "grass.png", "gravel.png", "moon.png")

SMALL_SIDE = (8.0, 28.0)
"""Side range in pixels of small objects (most of them)."""
MEDIUM_SIDE = (34.0, 64.0)
SMALL_SHARE = 0.8


@lru_cache(maxsize=1)
def _backgrounds() -> tuple[tuple[np.ndarray, bool], ...]:
    """(image, is_grey) of every bundled photograph that is present; at least one is required."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    found = []
    for name, grey in [(n, False) for n in _COLOUR_BACKGROUNDS] + [
        (n, True) for n in _GREY_BACKGROUNDS
    ]:
        path = folder / name
        if path.is_file():
            with Image.open(path) as im:
                found.append((np.asarray(im.convert("RGB")), grey))
    if not found:
        raise RuntimeError(f"no bundled scikit-image photographs found in {folder}")
    return tuple(found)


@lru_cache(maxsize=1)
def _digits() -> dict[int, np.ndarray]:
    """Digit -> (n, 8, 8) float32 glyphs in [0, 1] from scikit-learn's bundled set."""
    # Read scikit-learn's bundled CSV directly: importing sklearn.datasets costs seconds.
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec else []
    csv = next((Path(f) / "datasets" / "data" / "digits.csv.gz" for f in folders), None)
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)  # (1797, 64 pixels + label)
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, target = bunch.images.astype(np.float32), bunch.target
    images = images / 16.0
    return {d: images[target == d] for d in range(10)}


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    photos = _backgrounds()
    photo, grey = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    aspect = width / height
    crop_h = int(min(ph, pw / aspect) * rng.uniform(0.35, 1.0))
    crop_w = max(1, min(pw, round(crop_h * aspect)))
    crop_h = max(1, crop_h)
    x = int(rng.integers(0, pw - crop_w + 1))
    y = int(rng.integers(0, ph - crop_h + 1))
    crop = Image.fromarray(photo[y : y + crop_h, x : x + crop_w])
    out = np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if grey:
        out = (out * rng.uniform(0.55, 1.0, size=3)).astype(np.float32)
    return out


def _clutter(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """Faint lines and blobs so that not every edge is an object."""
    h, w = canvas.shape[:2]
    layer = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(0, 5))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, x1 = sorted(rng.integers(0, w, size=2).tolist())
        y0, y1 = sorted(rng.integers(0, h, size=2).tolist())
        if rng.random() < 0.5:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 3)))
        else:
            draw.ellipse([x0, y0, x0 + (x1 - x0) // 3 + 1, y0 + (y1 - y0) // 3 + 1], fill=colour)
    alpha = rng.uniform(0.15, 0.35)
    return canvas * (1 - alpha) + np.asarray(layer, dtype=np.float32) * alpha


def _glyph_alpha(glyph: np.ndarray, gw: int, gh: int) -> np.ndarray:
    big = Image.fromarray(glyph).resize((gw, gh), Image.Resampling.BILINEAR)
    return np.clip((np.asarray(big, dtype=np.float32) - 0.15) / 0.5, 0.0, 1.0)


def _shape_alpha(rng: np.random.Generator, gw: int, gh: int) -> np.ndarray:
    mask = Image.new("L", (gw, gh), 0)
    draw = ImageDraw.Draw(mask)
    kind = int(rng.integers(3))
    if kind == 0:
        draw.ellipse([0, 0, gw - 1, gh - 1], fill=255)
    elif kind == 1:
        draw.rectangle([gw // 5, gh // 5, gw - 1 - gw // 5, gh - 1 - gh // 5], fill=255)
    else:
        draw.polygon([(gw // 2, 0), (gw - 1, gh - 1), (0, gh - 1)], fill=255)
    return np.asarray(mask, dtype=np.float32) / 255.0


def _contrasting_colour(rng: np.random.Generator, mean: np.ndarray) -> np.ndarray:
    colour = rng.uniform(0, 255, size=3)
    if np.abs(colour - mean).mean() < 90:
        colour = np.where(mean > 127, rng.uniform(0, 60, 3), rng.uniform(195, 255, 3))
    return colour


def _overlaps(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    x1, y1, x2, y2 = box
    return any(x1 < b[2] + 2 and x2 + 2 > b[0] and y1 < b[3] + 2 and y2 + 2 > b[1] for b in taken)


def _place(
    rng: np.random.Generator,
    canvas: np.ndarray,
    alpha: np.ndarray,
    taken: list[tuple[int, int, int, int]],
) -> tuple[int, int, int, int] | None:
    """Composite `alpha` in a contrasting colour at a free place; the tight box, or None."""
    h, w = canvas.shape[:2]
    gh, gw = alpha.shape
    ys, xs = np.nonzero(alpha > 0.25)
    if len(xs) == 0 or gw >= w or gh >= h:
        return None
    tx1, ty1, tx2, ty2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    for _ in range(30):
        x = int(rng.integers(0, w - gw + 1))
        y = int(rng.integers(0, h - gh + 1))
        box = (x + tx1, y + ty1, x + tx2, y + ty2)
        if _overlaps(box, taken):
            continue
        patch = canvas[y : y + gh, x : x + gw]
        colour = _contrasting_colour(rng, patch.reshape(-1, 3).mean(axis=0))
        a = alpha[..., None]
        canvas[y : y + gh, x : x + gw] = patch * (1 - a) + colour * a
        taken.append(box)
        return box
    return None


def _object_size(rng: np.random.Generator, width: int, height: int) -> tuple[int, int]:
    lo, hi = SMALL_SIDE if rng.random() < SMALL_SHARE else MEDIUM_SIDE
    side = min(rng.uniform(lo, hi), min(width, height) * 0.6)
    gh = max(6, round(side))
    gw = max(5, round(gh * rng.uniform(0.75, 1.0)))
    return gw, gh


def _render_image(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, list[tuple[tuple[int, int, int, int], int]]]:
    """One picture and its labelled objects ((x1, y1, x2, y2), digit)."""
    width = size
    height = size if rng.random() < 0.5 else max(32, round(size * rng.uniform(0.6, 1.0)))
    canvas = _clutter(rng, _background(rng, width, height))
    digits = _digits()
    taken: list[tuple[int, int, int, int]] = []
    objects = []
    max_objects = max(2, round(8 * width * height / 160**2))
    for _ in range(int(rng.integers(1, max_objects + 1))):
        digit = int(rng.integers(len(CLASS_NAMES)))
        pool = digits[digit]
        gw, gh = _object_size(rng, width, height)
        box = _place(rng, canvas, _glyph_alpha(pool[int(rng.integers(len(pool)))], gw, gh), taken)
        if box is not None:
            objects.append((box, digit))
    for _ in range(int(rng.integers(0, 3))):
        gw, gh = _object_size(rng, width, height)
        if rng.random() < 0.6:
            pool = digits[int(rng.choice(DISTRACTOR_DIGITS))]
            alpha = _glyph_alpha(pool[int(rng.integers(len(pool)))], gw, gh)
        else:
            alpha = _shape_alpha(rng, gw, gh)
        _place(rng, canvas, alpha, taken)
    canvas = canvas + rng.normal(0.0, 3.0, size=canvas.shape)
    return canvas.clip(0, 255).astype(np.uint8), objects


def generate_synthetic(
    out: Path, *, images: int, size: int, seed: int, val_fraction: float = 0.2
) -> Path:
    """Write the synthetic small-object benchmark in COCO layout under `out`; returns `out`."""
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    n_val = round(images * val_fraction)
    if val_fraction > 0 and images >= 2:
        n_val = min(images - 1, max(1, n_val))
    split_of = ["train"] * (images - n_val) + ["val"] * n_val
    categories = [
        {"id": i + 1, "name": name, "supercategory": "digit"} for i, name in enumerate(CLASS_NAMES)
    ]
    cocos: dict[str, dict[str, Any]] = {}
    for split in dict.fromkeys(split_of):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        cocos[split] = {
            "info": {
                "description": "Distillery synthetic small-object benchmark",
                "seed": seed,
                "size": size,
            },
            "licenses": [],
            "images": [],
            "annotations": [],
            "categories": categories,
        }
    ann_id = 0
    for index, split in enumerate(split_of):
        image_id = index + 1
        pixels, objects = _render_image(rng, size)
        file_name = f"{image_id:06d}.jpg"
        Image.fromarray(pixels).save(out / "images" / split / file_name, quality=92)
        coco = cocos[split]
        coco["images"].append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": int(pixels.shape[1]),
                "height": int(pixels.shape[0]),
            }
        )
        for (x1, y1, x2, y2), digit in objects:
            ann_id += 1
            w, h = x2 - x1, y2 - y1
            coco["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": digit + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, coco in cocos.items():
        path = out / "annotations" / f"instances_{split}.json"
        path.write_text(json.dumps(coco), encoding="utf-8")
    return out
