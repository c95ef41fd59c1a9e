"""Dataset validation that reports every problem at once, each naming its file and ids."""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from core.data.archive import ArchiveError, is_archive, safe_extract
from core.data.coco import (
    COCO_LAYOUTS,
    check_structure,
    find_coco_layout,
    load_coco_json,
    resolve_image_root,
)
from core.data.dataset_warnings import dataset_warnings
from core.data.issues import (
    NAME_LIMIT,
    DatasetError,
    DatasetWarning,
    ValidationIssue,
    brief_repr,
)
from core.data.layout import detect_format
from core.data.paths import OUTSIDE, contained, is_file, relative_name, scrub_paths
from core.data.stats import dataset_statistics, merge_splits, split_statistics
from core.data.voc import VocCoordinates, read_voc
from core.spec import DataSpec

__all__ = [
    "DatasetWarning",
    "ValidationIssue",
    "ValidationReport",
    "check_coco_split",
    "validate_dataset",
]

BOX_TOLERANCE = 1.0
"""Pixels a box may overhang the image before it counts as outside (float rounding in exports)."""

DEFAULT_MAX_BYTES = 64 * 2**30
DEFAULT_MAX_FILES = 2_000_000
DEFAULT_MAX_ISSUES = 10_000
"""Issues kept in a report; beyond it one summary issue counts the rest (keeps rows bounded)."""

DEFAULT_IMAGE_SIZE: int = DataSpec.model_fields["image_size"].default
"""The training size the warnings assume when the caller names none (the spec's default)."""


@dataclass
class ValidationReport:
    """Every problem found (empty if the dataset is usable) and, if usable, its statistics
    and the warnings on it (also in `statistics["warnings"]`, which is what the platform keeps)."""

    errors: list[ValidationIssue] = field(default_factory=list)
    statistics: dict[str, Any] | None = None
    format: str | None = None
    warnings: list[DatasetWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if no problem was found."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping of the report."""
        return {
            "ok": self.ok,
            "format": self.format,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
            "statistics": self.statistics,
        }


def _is_number(value: Any) -> bool:
    """A finite int or float (JSON's 1e999 parses to inf; NaN never compares)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _positive_size(width: Any, height: Any) -> tuple[float, float] | None:
    if not (_is_number(width) and _is_number(height)):
        return None
    size = (float(width), float(height))
    return size if min(size) > 0 else None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_categories(coco: dict[str, Any], file: str, issues: list[ValidationIssue]) -> set[Any]:
    declared: set[Any] = set()
    seen: Counter[Any] = Counter()
    for index, cat in enumerate(coco["categories"]):
        if not isinstance(cat, dict) or not _is_id(cat.get("id")):
            issues.append(ValidationIssue(file, f"categories[{index}]: needs an integer 'id'"))
            continue
        seen[cat["id"]] += 1
        declared.add(cat["id"])
        if not cat.get("name"):
            issues.append(ValidationIssue(file, f"category {cat['id']}: missing 'name'"))
        elif not isinstance(cat["name"], str):
            issues.append(ValidationIssue(file, f"category {cat['id']}: 'name' must be a string"))
    for cat_id, count in sorted(seen.items()):
        if count > 1:
            issues.append(ValidationIssue(file, f"category id {cat_id} is declared {count} times"))
    if not declared:
        issues.append(ValidationIssue(file, "no categories declared"))
    return declared


def _check_images(
    coco: dict[str, Any],
    file: str,
    image_root: Path,
    root: Path,
    issues: list[ValidationIssue],
    open_images: bool,
) -> dict[Any, tuple[float, float] | None]:
    """Image id -> (width, height) if known, checking records and files."""
    sizes: dict[Any, tuple[float, float] | None] = {}
    seen: Counter[Any] = Counter()
    for index, image in enumerate(coco["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")):
            issues.append(ValidationIssue(file, f"images[{index}]: needs an integer 'id'"))
            continue
        image_id = image["id"]
        seen[image_id] += 1
        missing = [k for k in ("file_name", "width", "height") if k not in image]
        if missing:
            issues.append(ValidationIssue(file, f"missing key(s) {missing}", image_id))
        width, height = image.get("width"), image.get("height")
        declared = None
        if "width" in image and "height" in image:
            declared = _positive_size(width, height)
            if declared is None:
                issues.append(
                    ValidationIssue(file, f"bad size width={width!r} height={height!r}", image_id)
                )
        sizes.setdefault(image_id, declared)
        name = image.get("file_name")
        if not isinstance(name, str) or not name:
            if "file_name" in image:
                issues.append(ValidationIssue(file, "'file_name' must be a string", image_id))
            continue
        path = contained(root, image_root, name)
        if path is None:
            # the same words whether or not the target exists: no probing of the server
            issues.append(
                ValidationIssue(
                    file, f"file_name {brief_repr(name, NAME_LIMIT)} {OUTSIDE}", image_id
                )
            )
            continue
        rel = relative_name(path, root)
        if not is_file(path):
            issues.append(
                ValidationIssue(rel, f"image file is missing (listed in {file})", image_id)
            )
            continue
        if not open_images:
            continue
        try:
            with Image.open(path) as im:
                actual = im.size
                im.verify()
        except Exception as exc:  # any decoder failure means the image is unreadable
            why = scrub_paths(str(exc), root)
            issues.append(ValidationIssue(rel, f"unreadable image ({why})", image_id))
            continue
        if declared is not None and (int(declared[0]), int(declared[1])) != actual:
            issues.append(
                ValidationIssue(
                    rel,
                    f"declared size {int(declared[0])}x{int(declared[1])} in {file} but the "
                    f"image is {actual[0]}x{actual[1]}",
                    image_id,
                )
            )
    for image_id, count in sorted(seen.items()):
        if count > 1:
            issues.append(ValidationIssue(file, f"image id is used {count} times", image_id))
    return sizes


def _check_annotations(
    coco: dict[str, Any],
    file: str,
    sizes: dict[Any, tuple[float, float] | None],
    categories: set[Any],
    issues: list[ValidationIssue],
) -> None:
    seen: Counter[Any] = Counter()
    for index, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict) or not _is_id(ann.get("id")):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            issues.append(
                ValidationIssue(file, f"annotations[{index}]: needs an integer 'id'", image_id)
            )
            continue
        ann_id, image_id = ann["id"], ann.get("image_id")
        seen[ann_id] += 1
        missing = [k for k in ("image_id", "category_id", "bbox") if k not in ann]
        if missing:
            shown_id = image_id if _is_id(image_id) else None
            issues.append(ValidationIssue(file, f"missing key(s) {missing}", shown_id, ann_id))
            continue
        if not _is_id(image_id):
            issues.append(
                ValidationIssue(
                    file, f"'image_id' must be an integer, got {brief_repr(image_id)}", None, ann_id
                )
            )
            continue
        if image_id not in sizes:
            issues.append(
                ValidationIssue(file, "refers to an image id that is not listed", image_id, ann_id)
            )
        category = ann["category_id"]
        if not _is_id(category) or category not in categories:
            issues.append(
                ValidationIssue(
                    file, f"category id {brief_repr(category)} is not declared", image_id, ann_id
                )
            )
        for key in ("area", "iscrowd"):
            if key in ann and not (_is_number(ann[key]) and ann[key] >= 0):
                issues.append(
                    ValidationIssue(
                        file,
                        f"'{key}' must be a finite non-negative number, got {brief_repr(ann[key])}",
                        image_id,
                        ann_id,
                    )
                )
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            issues.append(
                ValidationIssue(
                    file,
                    f"bbox must be 4 finite numbers [x, y, w, h], got {brief_repr(bbox)}",
                    image_id,
                    ann_id,
                )
            )
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            issues.append(
                ValidationIssue(
                    file, f"box has non-positive size (w={w:g}, h={h:g})", image_id, ann_id
                )
            )
            continue
        size = sizes.get(image_id)
        if size is not None:
            width, height = size
            if (
                x < -BOX_TOLERANCE
                or y < -BOX_TOLERANCE
                or x + w > width + BOX_TOLERANCE
                or y + h > height + BOX_TOLERANCE
            ):
                issues.append(
                    ValidationIssue(
                        file,
                        f"box {[x, y, w, h]} lies outside the {width:g}x{height:g} image",
                        image_id,
                        ann_id,
                    )
                )
    for ann_id, count in sorted(seen.items()):
        if count > 1:
            issues.append(
                ValidationIssue(file, f"annotation id is used {count} times", annotation_id=ann_id)
            )


def check_coco_split(
    coco: dict[str, Any],
    *,
    file: str,
    image_root: Path,
    root: Path | None = None,
    open_images: bool = True,
) -> list[ValidationIssue]:
    """Every problem of one COCO split: records, ids, image files and boxes.

    Image files must resolve inside `root` (default `image_root`); issues name files
    relative to it.
    """
    issues = check_structure(coco, file=file)
    if issues:
        return issues
    categories = _check_categories(coco, file, issues)
    sizes = _check_images(coco, file, image_root, root or image_root, issues, open_images)
    _check_annotations(coco, file, sizes, categories, issues)
    return issues


def _validate_coco(
    root: Path, issues: list[ValidationIssue], names: dict[str, str]
) -> dict[str, dict[str, Any]]:
    files = find_coco_layout(root)
    if not files:
        issues.append(ValidationIssue(root.name, f"no COCO layout found; accepted: {COCO_LAYOUTS}"))
        return {}
    cocos = {}
    for found in files:
        rel = relative_name(found.path, root)
        try:
            coco = load_coco_json(found.path, name=rel, root=root)
        except DatasetError as exc:
            issues.append(ValidationIssue(rel, str(exc).removeprefix(f"{rel}: ")))
            continue
        structure = check_structure(coco, file=rel)
        if structure:
            issues.extend(structure)
            continue
        image_root = resolve_image_root(found.base, found.split, coco, root=root)
        issues.extend(check_coco_split(coco, file=rel, image_root=image_root, root=root))
        cocos[found.split] = coco
        names[found.split] = rel
    return cocos


@dataclass(frozen=True)
class _Options:
    """What validation assumes of the job that will train on the data."""

    image_size: int = DEFAULT_IMAGE_SIZE
    train_split: str = "train"
    voc_coordinates: VocCoordinates = "auto"


def _validate_root(
    root: Path,
    fmt: Literal["auto", "coco", "voc"],
    report: ValidationReport,
    options: _Options,
) -> None:
    issues = report.errors
    if fmt == "auto":
        try:
            fmt = detect_format(root)
        except DatasetError as exc:
            issues.append(ValidationIssue(root.name, str(exc).removeprefix(f"{root.name}: ")))
            return
    if fmt not in ("coco", "voc"):
        issues.append(
            ValidationIssue(root.name, f"unknown format {brief_repr(fmt)}; use auto, coco or voc")
        )
        return
    report.format = fmt
    files: dict[str, str] = {}
    if fmt == "coco":
        cocos = _validate_coco(root, issues, files)
    else:
        try:
            splits = read_voc(
                root, issues=issues, check_images=True, coordinates=options.voc_coordinates
            )
        except DatasetError as exc:
            issues.append(ValidationIssue(root.name, str(exc).removeprefix(f"{root.name}: ")))
            return
        cocos = {name: s.coco for name, s in splits.items()}
        files = {name: s.source for name, s in splits.items()}
    if issues or not cocos:
        return  # statistics only describe a dataset without problems
    merged = merge_splits(cocos, shared_ids=fmt == "voc")
    if not merged["images"]:
        issues.append(ValidationIssue(root.name, "the dataset is empty: no image in any split"))
    elif not merged["annotations"]:
        issues.append(ValidationIssue(root.name, "the dataset has no annotated box"))
    else:
        stats = dataset_statistics(merged)
        stats["format"] = fmt
        stats["splits"] = split_statistics(cocos)
        if fmt == "voc":
            stats["voc_coordinates"] = next(iter(cocos.values()))["info"]["voc_coordinates"]
        report.warnings = dataset_warnings(
            cocos, image_size=options.image_size, train_split=options.train_split, files=files
        )
        stats["warnings"] = [w.to_dict() for w in report.warnings]
        stats["warnings_image_size"] = options.image_size
        report.statistics = stats


def _scrubbed(issue: ValidationIssue, roots: tuple[Path, ...]) -> ValidationIssue:
    return ValidationIssue(
        file=scrub_paths(issue.file, *roots),
        message=scrub_paths(issue.message, *roots),
        image_id=issue.image_id,
        annotation_id=issue.annotation_id,
    )


def validate_dataset(
    path: Path,
    *,
    format: Literal["auto", "coco", "voc"] = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    max_issues: int = DEFAULT_MAX_ISSUES,
    image_size: int = DEFAULT_IMAGE_SIZE,
    train_split: str = "train",
    voc_coordinates: VocCoordinates = "auto",
) -> ValidationReport:
    """Check a dataset folder or archive and report every problem (file, ids, what is wrong).

    Every file is named relative to the dataset root (an archive's members as in the
    archive), never by an absolute path of this machine. A usable dataset also gets its
    statistics and warnings (core.data.dataset_warnings) for training at `image_size` on
    `train_split`; `voc_coordinates` is VOC's `<bndbox>` convention (core.data.voc).
    """
    path = Path(path)
    options = _Options(image_size, train_split, voc_coordinates)
    report = ValidationReport()
    roots: tuple[Path, ...] = (path,)
    if not path.exists():
        report.errors.append(ValidationIssue(path.name, "no such file or folder"))
    elif path.is_dir():
        _validate_root(path, format, report, options)
    elif not is_archive(path):
        report.errors.append(ValidationIssue(path.name, "not a folder, zip or tar archive"))
    else:
        with tempfile.TemporaryDirectory(prefix="distillery-validate-") as tmp:
            root = Path(tmp) / "dataset"
            roots = (root, Path(tmp))
            try:
                safe_extract(path, root, max_bytes=max_bytes, max_files=max_files)
            except ArchiveError as exc:
                report.errors.append(ValidationIssue(path.name, str(exc)))
            else:
                _validate_root(root, format, report, options)
    report.errors = [_scrubbed(issue, roots) for issue in report.errors]
    if len(report.errors) > max_issues:
        dropped = len(report.errors) - max_issues
        report.errors = report.errors[:max_issues]
        report.errors.append(ValidationIssue(path.name, f"{dropped} more problems not listed"))
    return report
