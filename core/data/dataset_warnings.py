"""Warnings on a usable dataset: classes the training split lacks, and objects the training
size would shrink out of sight (with the tile size that would keep them).

They never make a dataset invalid; validation lists them beside its statistics
(`statistics["warnings"]`), where the API and `distillery data check` show them. A job
computes them again when it starts (core.data.loader.build_loaders), with its own
`data.image_size` and `data.tile.size`, logs them and writes them to metrics.json.
"""

from __future__ import annotations

import math
from typing import Any

from core.data.issues import DatasetWarning

MIN_OBJECT_PX = 4
"""Below this side (sqrt of the box area, model pixels) an object is a cell or less of P2."""

SHRINK_WARN_SHARE = 0.01
"""Warn when at least this share of the training boxes falls below MIN_OBJECT_PX."""

TILE_KEEP_SHARE = 0.95
"""The suggested tile brings at least this share of the shrunk boxes back to MIN_OBJECT_PX."""

TILE_MULTIPLE = 32
"""Suggested tile sizes are multiples of this (and at least this)."""


def train_split_name(cocos: dict[str, dict[str, Any]], train_split: str = "train") -> str | None:
    """The split a job trains on (as core.data.loader resolves it), or None if none is known."""
    if train_split in cocos:
        return train_split
    return next(iter(cocos)) if len(cocos) == 1 else None


def _class_names(cocos: dict[str, dict[str, Any]]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for coco in cocos.values():
        for cat in coco.get("categories", []):
            names.setdefault(cat["id"], str(cat.get("name", cat["id"])))
    return names


def class_warnings(
    cocos: dict[str, dict[str, Any]],
    *,
    train_split: str = "train",
    files: dict[str, str] | None = None,
) -> list[DatasetWarning]:
    """A warning per class without any training box (and per class without any box at all)."""
    names = _class_names(cocos)
    counts = {split: dict.fromkeys(names, 0) for split in cocos}
    for split, coco in cocos.items():
        for ann in coco.get("annotations", []):
            if ann.get("category_id") in counts[split]:
                counts[split][ann["category_id"]] += 1
    train = train_split_name(cocos, train_split)
    file = (files or {}).get(train or "", "")
    warnings = []
    for cat_id, name in names.items():
        per_split = {split: counts[split][cat_id] for split in cocos}
        if not any(per_split.values()):
            warnings.append(
                DatasetWarning(
                    "class_without_boxes",
                    f"class {name!r} is declared but no split has a box of it",
                    file,
                    {"class": name, "boxes_per_split": per_split},
                )
            )
        elif train is not None and per_split[train] == 0:
            elsewhere = ", ".join(f"{n} in {s}" for s, n in per_split.items() if n)
            warnings.append(
                DatasetWarning(
                    "class_missing_from_train",
                    f"class {name!r} has no box in the {train!r} split ({elsewhere}): the "
                    "model cannot learn it, and its AP of 0 is averaged into the headline AP",
                    file,
                    {"class": name, "split": train, "boxes_per_split": per_split},
                )
            )
    return warnings


def _shrunk_boxes(
    coco: dict[str, Any], image_size: int, tile_size: int | None = None
) -> tuple[int, list[float]]:
    """(boxes counted, largest tile in original pixels keeping each shrunk box visible).

    The model sees an image (or, with `tile_size`, a chip of at most that side) letterboxed
    to `image_size`: a box of side s shows at s * image_size / min(long side, tile)."""
    long_sides = {
        im.get("id"): max(float(im.get("width") or 0), float(im.get("height") or 0))
        for im in coco.get("images", [])
    }
    total = 0
    tiles = []
    for ann in coco.get("annotations", []):
        long_side = long_sides.get(ann.get("image_id"), 0.0)
        bbox = ann.get("bbox") or [0, 0, 0, 0]
        side = math.sqrt(max(float(bbox[2]), 0.0) * max(float(bbox[3]), 0.0))
        if long_side <= 0 or ann.get("iscrowd", 0):
            continue
        total += 1
        seen_side = min(long_side, float(tile_size)) if tile_size else long_side
        if side * image_size / seen_side < MIN_OBJECT_PX:
            # A tile of T px letterboxed to image_size shows the box at side * image_size / T.
            tiles.append(side * image_size / MIN_OBJECT_PX)
    return total, tiles


def shrink_warning(
    coco: dict[str, Any],
    *,
    image_size: int,
    split: str = "train",
    file: str = "",
    tile_size: int | None = None,
) -> DatasetWarning | None:
    """A warning if letterboxing to `image_size` (the images, or their chips of `tile_size`
    px with data.tile) leaves too many boxes below MIN_OBJECT_PX."""
    total, tiles = _shrunk_boxes(coco, image_size, tile_size)
    if not tiles or len(tiles) < SHRINK_WARN_SHARE * total:
        return None
    tiles.sort()
    reachable = tiles[math.floor((1 - TILE_KEEP_SHARE) * len(tiles))]
    tile = max(TILE_MULTIPLE, int(reachable // TILE_MULTIPLE) * TILE_MULTIPLE)
    kept = sum(1 for t in tiles if t >= tile) / len(tiles)
    sides = sorted(
        max(int(im.get("width") or 0), int(im.get("height") or 0)) for im in coco["images"]
    )
    median = sides[len(sides) // 2] if sides else 0
    seen = f"chips of data.tile.size {tile_size} px" if tile_size else "the images"
    message = (
        f"{len(tiles)} of {total} {split} boxes ({len(tiles) / total:.1%}) are smaller than "
        f"{MIN_OBJECT_PX} px (sqrt of the box area) once {seen} (image long side {median} px, "
        f"median) are letterboxed to data.image_size {image_size}; tiles of {tile} px "
        f"(data.tile) keep {kept:.0%} of them at {MIN_OBJECT_PX} px or more"
    )
    if kept < TILE_KEEP_SHARE:
        message += "; the rest need a larger data.image_size"
    details = {
        "split": split,
        "image_size": image_size,
        "current_tile_size": tile_size,
        "min_object_px": MIN_OBJECT_PX,
        "boxes": total,
        "shrunk_boxes": len(tiles),
        "tile_size": tile,
        "kept_share": round(kept, 4),
    }
    return DatasetWarning("objects_below_min_size", message, file, details)


def dataset_warnings(
    cocos: dict[str, dict[str, Any]],
    *,
    image_size: int,
    train_split: str = "train",
    files: dict[str, str] | None = None,
    tile_size: int | None = None,
) -> list[DatasetWarning]:
    """Every warning on a dataset's splits (COCO dicts) for training at `image_size` (on
    chips of `tile_size` px when the job tiles)."""
    warnings = class_warnings(cocos, train_split=train_split, files=files)
    train = train_split_name(cocos, train_split)
    if train is not None:
        found = shrink_warning(
            cocos[train],
            image_size=image_size,
            split=train,
            file=(files or {}).get(train, ""),
            tile_size=tile_size,
        )
        if found is not None:
            warnings.append(found)
    return warnings
