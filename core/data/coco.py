"""Reading COCO detection datasets in the three accepted layouts (see `COCO_LAYOUTS`).

(a) `annotations/instances_<split>.json` (or `annotations/<split>.json`) with the images under
    `images/<split>/`, `images/`, `<split>/` or beside;
(b) one `annotations.json` (or `_annotations.coco.json`) beside the images: split `train`;
(c) one `_annotations.coco.json` (or `annotations.json`) per split folder, images beside it,
    as Roboflow exports (`train/`, `valid/`, `test/`; `valid`/`validation` read as `val`).

`find_coco_layout` is the one place that decides the layout: format detection, reading and
validation all go through it, so a file they accept is always read and checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.issues import DatasetError, ValidationIssue
from core.data.paths import (
    OUTSIDE,
    SEARCH_DEPTH,
    candidate_roots,
    contained,
    inside,
    is_file,
    relative_name,
)
from core.data.source import CocoSplit
from core.data.strict_json import JsonError, loads_strict

__all__ = [
    "COCO_LAYOUTS",
    "SEARCH_DEPTH",
    "CocoFile",
    "coco_annotation_files",
    "find_coco_layout",
    "find_coco_root",
    "load_coco_json",
    "read_coco",
]

COCO_LAYOUTS = (
    "annotations/instances_<split>.json (images in images/<split>/, images/ or beside); "
    "annotations.json or _annotations.coco.json beside the images (split train); "
    "<split>/_annotations.coco.json in each split folder with its images (Roboflow: "
    "train/, valid/, test/)"
)
"""The accepted COCO layouts, as error messages list them."""

SINGLE_FILES = ("annotations.json", "_annotations.coco.json")
"""Layout (b): one annotation file beside the images, in this order of preference."""
SPLIT_FILES = ("_annotations.coco.json", "annotations.json")
"""Layout (c): the annotation file of each split folder, in this order of preference."""
SPLIT_FOLDERS = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
"""Layout (c): split folder name -> split name."""


@dataclass(frozen=True)
class CocoFile:
    """One split of a COCO layout: its annotation file and the folder its images are under."""

    split: str
    path: Path
    base: Path


def _file_entry(path: Path) -> bool:
    # A symlink counts whatever it points to (reading refuses one that leads outside), so
    # that detection never depends on what exists outside the dataset.
    return path.is_symlink() or (path.exists() and not path.is_dir())


def _layout_a(folder: Path) -> list[CocoFile]:
    annotations = folder / "annotations"
    if not annotations.is_dir() or not inside(annotations, folder):
        return []
    files = sorted(
        p for p in annotations.glob("*.json") if not p.name.startswith(".") and _file_entry(p)
    )
    instances = [p for p in files if p.stem.startswith("instances_")]
    if instances:
        return [CocoFile(p.stem[len("instances_") :], p, folder) for p in instances]
    return [CocoFile(p.stem, p, folder) for p in files]


def _layout_b(folder: Path) -> list[CocoFile]:
    for name in SINGLE_FILES:
        path = folder / name
        if _file_entry(path):
            return [CocoFile("train", path, folder)]
    return []


def _layout_c(folder: Path) -> list[CocoFile]:
    found: dict[str, CocoFile] = {}
    for sub in sorted(folder.iterdir()):
        split = SPLIT_FOLDERS.get(sub.name.lower())
        if split is None or not sub.is_dir() or not inside(sub, folder):
            continue
        for name in SPLIT_FILES:
            path = sub / name
            if _file_entry(path):
                # a folder literally named like the split wins over its alias (val over valid)
                if split not in found or sub.name.lower() == split:
                    found[split] = CocoFile(split, path, sub)
                break
    return [found[s] for s in sorted(found)]


def coco_files(folder: Path) -> list[CocoFile]:
    """The splits of the first COCO layout (a, b, c) that `folder` itself holds, or []."""
    for layout in (_layout_a, _layout_b, _layout_c):
        try:
            files = layout(folder)
        except OSError:
            files = []
        if files:
            return files
    return []


def _first_layout(root: Path) -> tuple[Path, list[CocoFile]] | None:
    for candidate in candidate_roots(root):
        files = coco_files(candidate)
        if files:
            return candidate, files
    return None


def find_coco_layout(root: Path) -> list[CocoFile]:
    """The splits of the COCO dataset at or up to two folders below `root`, or [] if none.

    Detection looks at file names only, never at their content: a broken annotation file is
    still found, so that reading or validation names its defect.
    """
    found = _first_layout(root)
    return found[1] if found else []


def find_coco_root(root: Path) -> Path | None:
    """The folder a COCO layout starts in at or below `root`, or None."""
    found = _first_layout(root)
    return found[0] if found else None


def coco_annotation_files(root: Path) -> dict[str, Path]:
    """Split name -> annotation JSON of the COCO layout at or below `root`."""
    return {f.split: f.path for f in find_coco_layout(root)}


def load_coco_json(
    path: Path, *, name: str | None = None, root: Path | None = None
) -> dict[str, Any]:
    """Parse one COCO annotation file; DatasetError names it (as `name`) and what is wrong.

    With `root`, a file that resolves outside it (a symlink) is refused before it is read.
    Nesting is bounded and NaN / Infinity are refused (`core.data.strict_json`).
    """
    label = name or path.name
    if root is not None and contained(root, path.parent, path.name) is None:
        raise DatasetError(f"{label}: {OUTSIDE}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"{label}: cannot read the file ({exc.strerror or 'I/O error'})"
        ) from exc
    try:
        data = loads_strict(raw)
    except JsonError as exc:
        raise DatasetError(f"{label}: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{label}: the top level must be an object, not {type(data).__name__}")
    return data


def resolve_image_root(
    base: Path, split: str, coco: dict[str, Any], *, root: Path | None = None
) -> Path:
    """The folder the split's `file_name`s are relative to (images/<split>, images, base...).

    Only names that stay inside `root` (default `base`) are tried, so the choice never
    depends on files outside the dataset.
    """
    top = root or base
    candidates = [
        base / "images" / split,
        base / "images",
        base / split,
        base / f"{split}2017",
        base / "images" / f"{split}2017",
        base,
    ]
    existing = [c for c in candidates if c.is_dir() and inside(c, top)]
    images = coco.get("images")
    sample = [
        im["file_name"]
        for im in (images if isinstance(images, list) else [])[:8]
        if isinstance(im, dict) and isinstance(im.get("file_name"), str)
    ]

    def hits(folder: Path) -> int:
        paths = (contained(top, folder, name) for name in sample)
        return sum(1 for p in paths if p is not None and is_file(p))

    if sample and existing:
        best = max(existing, key=hits)
        if hits(best):
            return best
    return existing[0] if existing else base


def check_structure(coco: dict[str, Any], *, file: str) -> list[ValidationIssue]:
    """Issues that make a COCO dict unusable at all: missing or mistyped top-level keys."""
    issues = []
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            issues.append(ValidationIssue(file=file, message=f"missing top-level key '{key}'"))
        elif not isinstance(coco[key], list):
            issues.append(ValidationIssue(file=file, message=f"'{key}' must be a list"))
    return issues


def normalise_coco(coco: dict[str, Any]) -> dict[str, Any]:
    """A copy with `area` and `iscrowd` filled in where missing (pycocotools needs both).

    ValueError if a box is not four finite numbers.
    """
    out = dict(coco)
    anns = []
    for ann in coco.get("annotations", []):
        ann = dict(ann)
        x, y, w, h = (float(v) for v in ann["bbox"])
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise ValueError(f"annotation {ann.get('id')!r}: bbox values must be finite")
        ann["bbox"] = [x, y, w, h]
        ann.setdefault("area", w * h)
        ann.setdefault("iscrowd", 0)
        anns.append(ann)
    out["annotations"] = anns
    out.setdefault("info", {})
    out.setdefault("licenses", [])
    return out


def read_coco(root: Path) -> dict[str, CocoSplit]:
    """Every split of a COCO dataset at or below `root`; DatasetError if none or one is unusable.

    Messages name files relative to `root`; images may not lie outside `root`.
    """
    files = find_coco_layout(root)
    if not files:
        raise DatasetError(f"{root.name}: no COCO layout found; accepted: {COCO_LAYOUTS}")
    splits = {}
    for found in files:
        rel = relative_name(found.path, root)
        coco = load_coco_json(found.path, name=rel, root=root)
        problems = check_structure(coco, file=rel)
        if problems:
            raise DatasetError(f"{rel} is not a COCO detection file", problems)
        try:
            coco = normalise_coco(coco)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(
                f"{rel}: an annotation lacks a valid 'bbox' ({exc}); run `distillery data check`"
            ) from exc
        image_root = resolve_image_root(found.base, found.split, coco, root=root)
        splits[found.split] = CocoSplit(coco=coco, image_root=image_root, root=root, source=rel)
    return splits
