"""Reading COCO detection datasets: `annotations/instances_<split>.json` plus an images folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.data.issues import DatasetError, ValidationIssue
from core.data.source import CocoSplit

SEARCH_DEPTH = 2
"""How many folders below the given root a dataset may start (archives often add one)."""


def _candidate_roots(root: Path) -> list[Path]:
    roots = [root]
    frontier = [root]
    for _ in range(SEARCH_DEPTH):
        frontier = sorted(
            p for d in frontier for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        roots.extend(frontier)
    return roots


def find_coco_root(root: Path) -> Path | None:
    """The folder holding `annotations/*.json` at or below `root`, or None."""
    for candidate in _candidate_roots(root):
        if coco_annotation_files(candidate):
            return candidate
    return None


def coco_annotation_files(root: Path) -> dict[str, Path]:
    """Split name -> annotation JSON under `root/annotations` (`instances_<split>.json` first)."""
    folder = root / "annotations"
    if not folder.is_dir():
        return {}
    files = sorted(folder.glob("*.json"))
    instances = {p.stem[len("instances_") :]: p for p in files if p.stem.startswith("instances_")}
    if instances:
        return instances
    return {p.stem: p for p in files}


def load_coco_json(path: Path) -> dict[str, Any]:
    """Parse one COCO annotation file; DatasetError names the file and position if it is broken."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name}: cannot read the file ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise DatasetError(
            f"{path.name}: the top level must be an object, not {type(data).__name__}"
        )
    return data


def resolve_image_root(root: Path, split: str, coco: dict[str, Any]) -> Path:
    """The folder that the split's `file_name`s are relative to (images/<split>, images, root)."""
    candidates = [
        root / "images" / split,
        root / "images",
        root / split,
        root / f"{split}2017",
        root / "images" / f"{split}2017",
        root,
    ]
    existing = [c for c in candidates if c.is_dir()]
    images = coco.get("images")
    sample = [
        str(im["file_name"])
        for im in (images if isinstance(images, list) else [])[:8]
        if isinstance(im, dict) and "file_name" in im
    ]
    if sample:
        best = max(existing, key=lambda c: sum((c / name).is_file() for name in sample))
        if any((best / name).is_file() for name in sample):
            return best
    return existing[0] if existing else root


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
    """A copy with `area` and `iscrowd` filled in where missing (pycocotools needs both)."""
    out = dict(coco)
    anns = []
    for ann in coco.get("annotations", []):
        ann = dict(ann)
        x, y, w, h = (float(v) for v in ann["bbox"])
        ann["bbox"] = [x, y, w, h]
        ann.setdefault("area", w * h)
        ann.setdefault("iscrowd", 0)
        anns.append(ann)
    out["annotations"] = anns
    out.setdefault("info", {})
    out.setdefault("licenses", [])
    return out


def read_coco(root: Path) -> dict[str, CocoSplit]:
    """Every split of a COCO-layout folder; DatasetError if there is none or one is unusable."""
    found = find_coco_root(root)
    if found is None:
        raise DatasetError(f"{root}: no annotations/instances_<split>.json found")
    splits = {}
    for name, path in coco_annotation_files(found).items():
        coco = load_coco_json(path)
        rel = str(path.relative_to(root))
        problems = check_structure(coco, file=rel)
        if problems:
            raise DatasetError(f"{rel} is not a COCO detection file", problems)
        try:
            coco = normalise_coco(coco)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"{rel}: an annotation lacks a valid 'bbox' ({exc}); run `distillery data check`"
            ) from exc
        splits[name] = CocoSplit(coco=coco, image_root=resolve_image_root(found, name, coco))
    return splits
