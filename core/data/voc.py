"""Pascal VOC: reading it as COCO (`Annotations/`, `JPEGImages/`, `ImageSets/Main/<split>.txt`)
and writing a COCO-layout dataset out as VOC.

Every name the dataset gives (`<filename>`, ImageSets entries) and every file found in it is
kept inside the dataset root (`core.data.paths`); messages name files relative to the root.
"""

from __future__ import annotations

import glob
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from core.data.issues import NAME_LIMIT, DatasetError, ValidationIssue, brief_repr
from core.data.paths import (
    OUTSIDE,
    candidate_roots,
    contained,
    is_file,
    relative_name,
    scrub_paths,
)
from core.data.source import CocoSplit

BOX_TOLERANCE = 1.0
"""VOC corners are 1-based and inclusive; allow a pixel of slack for 0-based exports."""

VocCoordinates = Literal["auto", "one_based", "zero_based"]
"""How `<bndbox>` corners count pixels. `one_based`: the VOC devkit's, pixels 1..W inclusive
(COCO x = xmin - 1, x + w = xmax); `zero_based`: corners in COCO's continuous coordinates
(x = xmin, x + w = xmax), as many exporters write them."""

VOC_LAYOUT = "Annotations/ + JPEGImages/ (+ ImageSets/Main/<split>.txt), possibly one folder down"
"""The accepted VOC layout, as error messages list it."""


def find_voc_root(root: Path) -> Path | None:
    """The folder holding `Annotations/` and `JPEGImages/` at or up to two levels below `root`."""
    for folder in candidate_roots(root):
        if (folder / "Annotations").is_dir() and (folder / "JPEGImages").is_dir():
            return folder
    return None


def _split_lists(
    voc: Path, root: Path, issues: list[ValidationIssue]
) -> dict[str, tuple[str, list[str]]]:
    """Split name -> (list file relative to root, image stems) from ImageSets/Main/<split>.txt."""
    folder = voc / "ImageSets" / "Main"
    splits: dict[str, tuple[str, list[str]]] = {}
    if not folder.is_dir() or contained(root, folder, ".") is None:
        return splits
    for path in sorted(folder.glob("*.txt")):
        if "_" in path.stem or path.name.startswith("."):
            continue  # per-class lists such as aeroplane_train.txt
        rel = relative_name(path, root)
        if contained(root, path.parent, path.name) is None:
            issues.append(ValidationIssue(rel, OUTSIDE))
            continue
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            issues.append(ValidationIssue(rel, f"cannot read the file ({exc.strerror})"))
            continue
        splits[path.stem] = (rel, [ln.split()[0] for ln in lines if ln.strip()])
    return splits


def _text(node: ET.Element | None, tag: str) -> str | None:
    found = node.find(tag) if node is not None else None
    return found.text.strip() if found is not None and found.text else None


def _number(node: ET.Element | None, tag: str) -> float | None:
    text = _text(node, tag)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _image_size(path: Path, root: Path, *, verify: bool) -> tuple[tuple[int, int] | None, str]:
    """((width, height) or None, why not) of an image file; `verify` checks it decodes."""
    try:
        with Image.open(path) as im:
            size = (int(im.size[0]), int(im.size[1]))
            if verify:
                im.verify()
    except Exception as exc:  # any decoder failure means the image is unreadable
        return None, scrub_paths(str(exc), root)
    return size, ""


def _image_file(
    tree: ET.Element,
    xml_path: Path,
    voc: Path,
    root: Path,
    rel: str,
    image_id: int,
    issues: list[ValidationIssue],
) -> tuple[Path, str] | None:
    """(path, name relative to JPEGImages) of the picture an annotation file describes."""
    jpeg = voc / "JPEGImages"
    given = _text(tree, "filename")
    file_name = (given or f"{xml_path.stem}.jpg").replace("\\", "/")
    image_path = contained(root, jpeg, file_name)
    if image_path is None:
        if given is not None:
            issues.append(
                ValidationIssue(
                    rel, f"<filename> {brief_repr(given, NAME_LIMIT)} {OUTSIDE}", image_id
                )
            )
        else:
            issues.append(ValidationIssue(rel, f"JPEGImages/{file_name} {OUTSIDE}", image_id))
        return None
    if is_file(image_path):
        return image_path, file_name
    matches = sorted(
        p
        for p in jpeg.glob(f"{glob.escape(xml_path.stem)}.*")
        if contained(root, jpeg, p.name) is not None and is_file(p)
    )
    if not matches:
        issues.append(ValidationIssue(rel, f"image JPEGImages/{file_name} is missing", image_id))
        return None
    return matches[0].resolve(), matches[0].name


def _parse_xml(
    xml_path: Path,
    voc: Path,
    root: Path,
    rel: str,
    image_id: int,
    issues: list[ValidationIssue],
    *,
    check_image: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(image record, objects with VOC corners) of one annotation file, or None if unusable.

    The image's size comes from `<size>`, else from the picture itself; with `check_image`
    the picture is always decoded and must match `<size>`.
    """
    if contained(root, xml_path.parent, xml_path.name) is None:
        issues.append(ValidationIssue(rel, OUTSIDE, image_id))
        return None
    try:
        raw = xml_path.read_bytes()
    except OSError as exc:
        issues.append(ValidationIssue(rel, f"cannot read the file ({exc.strerror})", image_id))
        return None
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        issues.append(ValidationIssue(rel, "DTDs and entities are not allowed", image_id))
        return None
    try:
        tree = ET.fromstring(raw)
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: unknown encoding
        issues.append(ValidationIssue(rel, f"unparsable XML ({exc})", image_id))
        return None
    found = _image_file(tree, xml_path, voc, root, rel, image_id, issues)
    if found is None:
        return None
    image_path, file_name = found
    size = tree.find("size")
    given_w, given_h = _number(size, "width"), _number(size, "height")
    declared = None
    if given_w is not None and given_h is not None and given_w > 0 and given_h > 0:
        declared = (int(given_w), int(given_h))
    actual: tuple[int, int] | None = None
    if declared is None or check_image:
        actual, why = _image_size(image_path, root, verify=check_image)
        if actual is None:
            if declared is None:
                message = "unknown image size: no <size> and the image is unreadable"
                issues.append(ValidationIssue(rel, f"{message} ({why})", image_id))
            else:
                issues.append(
                    ValidationIssue(
                        relative_name(image_path, root),
                        f"unreadable image ({why}; listed in {rel})",
                        image_id,
                    )
                )
            return None
        if declared is not None and declared != actual:
            issues.append(
                ValidationIssue(
                    rel,
                    f"<size> is {declared[0]}x{declared[1]} but JPEGImages/{file_name} "
                    f"is {actual[0]}x{actual[1]}",
                    image_id,
                )
            )
    image_size = declared or actual
    if image_size is None:  # unreachable: one of them is known here
        return None
    width, height = float(image_size[0]), float(image_size[1])
    record = {
        "id": image_id,
        "file_name": file_name,
        "width": image_size[0],
        "height": image_size[1],
    }
    objects = []
    for index, obj in enumerate(tree.findall("object")):
        name = _text(obj, "name")
        box = obj.find("bndbox")
        corners = [_number(box, k) for k in ("xmin", "ymin", "xmax", "ymax")]
        where = f"object {index}"
        if not name:
            issues.append(ValidationIssue(rel, f"{where}: no <name>", image_id))
            continue
        if any(c is None for c in corners):
            issues.append(
                ValidationIssue(rel, f"{where} ({name}): missing or bad <bndbox>", image_id)
            )
            continue
        x1, y1, x2, y2 = (float(c) for c in corners if c is not None)
        if x2 < x1 or y2 < y1:
            issues.append(
                ValidationIssue(
                    rel, f"{where} ({name}): box has non-positive size {[x1, y1, x2, y2]}", image_id
                )
            )
            continue
        if x1 < 0 or y1 < 0 or x2 > width + BOX_TOLERANCE or y2 > height + BOX_TOLERANCE:
            issues.append(
                ValidationIssue(
                    rel,
                    f"{where} ({name}): box {[x1, y1, x2, y2]} lies outside the "
                    f"{int(width)}x{int(height)} image",
                    image_id,
                )
            )
            continue
        difficult = _text(obj, "difficult") == "1"
        objects.append(
            {"name": name, "corners": (x1, y1, x2, y2), "difficult": difficult, "index": index}
        )
    return record, objects


def detect_coordinates(objects: list[dict[str, Any]]) -> Literal["one_based", "zero_based"]:
    """`zero_based` when a corner rules 1-based pixels out, else `one_based` (the devkit's).

    A 1-based corner is a whole number from 1: any `xmin` or `ymin` of 0, or any corner with a
    fraction, is a zero-based (continuous) export. `xmax = width` says nothing: it is the last
    pixel of a 1-based box and the right edge of a zero-based one alike.
    """
    for obj in objects:
        x1, y1, x2, y2 = obj["corners"]
        if x1 == 0 or y1 == 0 or any(c != int(c) for c in (x1, y1, x2, y2)):
            return "zero_based"
    return "one_based"


def to_coco_box(
    corners: tuple[float, float, float, float],
    width: float,
    height: float,
    coordinates: Literal["one_based", "zero_based"],
) -> list[float]:
    """COCO `[x, y, w, h]` of VOC corners in the given convention, clipped to the image."""
    x1, y1, x2, y2 = corners
    shift = 1.0 if coordinates == "one_based" else 0.0
    x, y = max(x1 - shift, 0.0), max(y1 - shift, 0.0)
    return [x, y, min(x2, width) - x, min(y2, height) - y]


def read_voc(
    root: Path,
    *,
    issues: list[ValidationIssue] | None = None,
    check_images: bool = False,
    coordinates: VocCoordinates = "auto",
) -> dict[str, CocoSplit]:
    """Every split of a VOC dataset as COCO dicts (categories sorted by name, ids 1..K).

    Problems are appended to `issues` and the item skipped; without `issues`, the first
    problems raise DatasetError. `check_images` decodes every picture and compares it with
    its `<size>` (validation); otherwise a picture is opened only when `<size>` is missing.
    `coordinates` is the `<bndbox>` convention (`auto`: `detect_coordinates` on every box);
    each split's `info` records the one used as `voc_coordinates`.
    """
    if coordinates not in ("auto", "one_based", "zero_based"):
        raise ValueError(
            f"voc_coordinates: {brief_repr(coordinates)} is not auto, one_based or zero_based"
        )
    strict = issues is None
    found: list[ValidationIssue] = [] if issues is None else issues
    voc = find_voc_root(root)
    if voc is None:
        raise DatasetError(f"{root.name}: no Pascal VOC layout ({VOC_LAYOUT}) found")
    xml_files = sorted(
        p
        for p in (voc / "Annotations").glob("*.xml")
        if not p.name.startswith(".") and (p.is_symlink() or not p.is_dir())
    )
    records: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for image_id, xml_path in enumerate(xml_files, start=1):
        rel = relative_name(xml_path, root)
        parsed = _parse_xml(xml_path, voc, root, rel, image_id, found, check_image=check_images)
        if parsed is not None:
            records[xml_path.stem] = parsed
    convention: Literal["one_based", "zero_based"] = (
        detect_coordinates([o for _, objs in records.values() for o in objs])
        if coordinates == "auto"
        else coordinates
    )
    for stem, (record, objects) in records.items():
        kept = []
        for obj in objects:
            box = to_coco_box(obj["corners"], record["width"], record["height"], convention)
            if box[2] <= 0 or box[3] <= 0:  # xmin = xmax is one pixel only when 1-based
                found.append(
                    ValidationIssue(
                        relative_name(voc / "Annotations" / f"{stem}.xml", root),
                        f"object {obj['index']} ({obj['name']}): box {list(obj['corners'])} has no "
                        f"area in {convention} coordinates",
                        record["id"],
                    )
                )
                continue
            kept.append({**obj, "bbox": box})
        records[stem] = (record, kept)
    names = sorted({o["name"] for _, objs in records.values() for o in objs})
    cat_ids = {name: i + 1 for i, name in enumerate(names)}
    categories = [{"id": cat_ids[n], "name": n, "supercategory": "none"} for n in names]
    lists = _split_lists(voc, root, found)
    if not lists:
        lists = {"train": ("", [p.stem for p in xml_files])}
    known = {p.stem for p in xml_files}
    splits = {}
    ann_id = 0
    for split, (list_file, stems) in lists.items():
        images, annotations = [], []
        for stem in stems:
            if stem not in records:
                # decided on the files found in Annotations/, never by probing a listed name
                if contained(root, voc / "Annotations", f"{stem}.xml") is None:
                    found.append(
                        ValidationIssue(
                            list_file, f"lists {brief_repr(stem, NAME_LIMIT)}, which {OUTSIDE}"
                        )
                    )
                elif stem not in known:
                    found.append(
                        ValidationIssue(
                            list_file,
                            f"lists {brief_repr(stem, NAME_LIMIT)} but "
                            f"Annotations/{stem[:NAME_LIMIT]}.xml is missing",
                        )
                    )
                continue
            record, objects = records[stem]
            images.append(record)
            for obj in objects:
                x, y, w, h = obj["bbox"]
                ann_id += 1
                annotations.append(
                    {
                        "id": ann_id,
                        "image_id": record["id"],
                        "category_id": cat_ids[obj["name"]],
                        "bbox": [x, y, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                        "difficult": int(obj["difficult"]),
                    }
                )
        coco = {
            "info": {
                "description": f"converted from Pascal VOC ({voc.name})",
                "voc_coordinates": convention,
            },
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        splits[split] = CocoSplit(
            coco=coco, image_root=voc / "JPEGImages", root=root, source=list_file or "Annotations"
        )
    if strict and found:
        raise DatasetError(f"{root.name}: the VOC dataset has problems", found)
    return splits
