"""Dataset statistics: boxes per class (and per split), COCO size buckets, a histogram of
object sizes and the distribution of image sizes."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

SMALL_THRESHOLD = 32
"""COCO: an object is small if its area is below 32 x 32 pixels."""
MEDIUM_THRESHOLD = 96
"""COCO: medium below 96 x 96, large from there."""

HISTOGRAM_EDGES = (0, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
"""Edges of the sqrt(area) histogram in pixels; the last bin is extended to the largest box."""

IMAGE_SIDE_EDGES = (0, 256, 512, 640, 800, 1024, 1333, 1600, 2048, 3000, 4096, 8192)
"""Edges of the histogram of the images' long side in pixels (extended like the box one)."""

COMMON_IMAGE_SIZES = 10
"""How many of the most frequent (width, height) pairs the statistics list."""


def box_area(ann: dict[str, Any]) -> float:
    """The area COCO evaluation buckets by: `area` if given, else the box's w * h."""
    if ann.get("area") is not None:
        return float(ann["area"])
    _, _, w, h = (float(v) for v in ann["bbox"])
    return max(w, 0.0) * max(h, 0.0)


def size_bucket(area: float) -> str:
    """'small', 'medium' or 'large' by COCO's area ranges."""
    if area < SMALL_THRESHOLD**2:
        return "small"
    if area < MEDIUM_THRESHOLD**2:
        return "medium"
    return "large"


def _histogram(
    sides: list[float], base: tuple[int, ...] = HISTOGRAM_EDGES
) -> dict[str, list[float] | list[int]]:
    sides = [s for s in sides if math.isfinite(s)]  # an infinite side would extend edges forever
    edges: list[float] = list(base)
    top = max(sides, default=0.0)
    while top >= edges[-1]:
        edges.append(edges[-1] * 2)
    counts = [0] * (len(edges) - 1)
    for side in sides:
        # bins are [edge_i, edge_i+1)
        index = max(i for i, e in enumerate(edges[:-1]) if side >= e)
        counts[index] += 1
    return {"edges": edges, "counts": counts}


def dataset_statistics(coco: dict[str, Any]) -> dict[str, Any]:
    """JSON-able statistics of a COCO dict: counts, boxes per class, size buckets, histogram."""
    images = coco.get("images", [])
    annotations = coco.get("annotations", [])
    categories = coco.get("categories", [])
    names = {c["id"]: str(c.get("name", c["id"])) for c in categories}
    per_class = {name: 0 for name in names.values()}
    buckets = {"small": 0, "medium": 0, "large": 0}
    per_class_buckets = {name: {"small": 0, "medium": 0, "large": 0} for name in names.values()}
    sides = []
    with_boxes = set()
    for ann in annotations:
        name = names.get(ann.get("category_id"), str(ann.get("category_id")))
        area = box_area(ann)
        bucket = size_bucket(area)
        per_class[name] = per_class.get(name, 0) + 1
        per_class_buckets.setdefault(name, {"small": 0, "medium": 0, "large": 0})[bucket] += 1
        buckets[bucket] += 1
        sides.append(math.sqrt(max(area, 0.0)))
        with_boxes.add(ann.get("image_id"))
    n_images = len(images)
    widths = [int(im.get("width") or 0) for im in images]
    heights = [int(im.get("height") or 0) for im in images]
    return {
        "images": n_images,
        "annotations": len(annotations),
        "categories": len(categories),
        "boxes_per_class": per_class,
        "size_buckets": buckets,
        "size_buckets_per_class": per_class_buckets,
        "size_histogram": _histogram(sides),
        "small_threshold": SMALL_THRESHOLD,
        "medium_threshold": MEDIUM_THRESHOLD,
        "images_without_boxes": sum(1 for im in images if im.get("id") not in with_boxes),
        "boxes_per_image": round(len(annotations) / n_images, 3) if n_images else 0.0,
        "image_size": {
            "min_width": min(widths, default=0),
            "max_width": max(widths, default=0),
            "min_height": min(heights, default=0),
            "max_height": max(heights, default=0),
        },
        "image_sizes": image_size_distribution(images),
    }


def image_size_distribution(images: list[dict[str, Any]]) -> dict[str, Any]:
    """How large the images are: a histogram of the long side and the most common sizes."""
    sizes = [(int(im.get("width") or 0), int(im.get("height") or 0)) for im in images]
    common = Counter(sizes).most_common(COMMON_IMAGE_SIZES)
    return {
        "long_side": _histogram([float(max(w, h)) for w, h in sizes], IMAGE_SIDE_EDGES),
        "most_common": [{"width": w, "height": h, "images": n} for (w, h), n in common],
    }


def split_statistics(cocos: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per split: images, boxes and boxes per class (every class of any split, 0 included)."""
    names: dict[Any, str] = {}
    for coco in cocos.values():
        for cat in coco.get("categories", []):
            names.setdefault(cat["id"], str(cat.get("name", cat["id"])))
    out = {}
    for split, coco in cocos.items():
        per_class = dict.fromkeys(names.values(), 0)
        for ann in coco.get("annotations", []):
            name = names.get(ann.get("category_id"), str(ann.get("category_id")))
            per_class[name] = per_class.get(name, 0) + 1
        out[split] = {
            "images": len(coco.get("images", [])),
            "annotations": len(coco.get("annotations", [])),
            "boxes_per_class": per_class,
        }
    return out


def merge_splits(cocos: dict[str, dict[str, Any]], *, shared_ids: bool = False) -> dict[str, Any]:
    """One COCO dict holding the images and annotations of several splits (categories unioned).

    With `shared_ids` (VOC, where `trainval` repeats `train` and `val` under the same image
    ids), an image and its boxes are counted once, from the first split that lists it.
    """
    categories: dict[Any, dict[str, Any]] = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for coco in cocos.values():
        for cat in coco.get("categories", []):
            categories.setdefault(cat["id"], cat)
        split_images = coco.get("images", [])
        if shared_ids:
            split_images = [im for im in split_images if im.get("id") not in seen]
            fresh = {im.get("id") for im in split_images}
            seen |= fresh
            split_anns = [a for a in coco.get("annotations", []) if a.get("image_id") in fresh]
        else:
            split_anns = coco.get("annotations", [])
        images.extend(split_images)
        annotations.extend(split_anns)
    return {"images": images, "annotations": annotations, "categories": list(categories.values())}


def text_histogram(histogram: dict[str, Any], *, width: int = 40) -> list[str]:
    """Lines of a text bar chart of a `size_histogram`, from the first to the last filled bin."""
    edges, counts = histogram["edges"], histogram["counts"]
    filled = [i for i, n in enumerate(counts) if n]
    if not filled:
        return []
    first, last = filled[0], filled[-1]
    peak = max(counts)
    lines = []
    for lo, hi, n in zip(
        edges[first : last + 1], edges[first + 1 : last + 2], counts[first : last + 1], strict=True
    ):
        bar = "#" * round(width * n / peak)
        lines.append(f"{lo:>5g}-{hi:<5g} px {n:>7d} {bar}")
    return lines
