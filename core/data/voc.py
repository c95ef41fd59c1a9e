"""Pascal VOC: reading it as COCO (`Annotations/`, `JPEGImages/`, `ImageSets/Main/<split>.txt`)
and writing a COCO-layout dataset out as VOC."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from PIL import Image

from core.data.coco import SEARCH_DEPTH
from core.data.issues import DatasetError, ValidationIssue
from core.data.source import CocoSplit

BOX_TOLERANCE = 1.0
"""VOC corners are 1-based and inclusive; allow a pixel of slack for 0-based exports."""


def find_voc_root(root: Path) -> Path | None:
    """The folder holding `Annotations/` and `JPEGImages/` at or up to two levels below `root`."""
    frontier = [root]
    for depth in range(SEARCH_DEPTH + 1):
        for folder in frontier:
            if (folder / "Annotations").is_dir() and (folder / "JPEGImages").is_dir():
                return folder
        if depth < SEARCH_DEPTH:
            frontier = sorted(
                p
                for d in frontier
                for p in d.iterdir()
                if p.is_dir() and not p.name.startswith(".")
            )
    return None


def _split_lists(voc: Path) -> dict[str, list[str]]:
    """Split name -> image stems from ImageSets/Main/<split>.txt (class lists skipped)."""
    folder = voc / "ImageSets" / "Main"
    splits: dict[str, list[str]] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.txt")):
            if "_" in path.stem:
                continue  # per-class lists such as aeroplane_train.txt
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            splits[path.stem] = [ln.split()[0] for ln in lines if ln.strip()]
    return splits


def _text(node: ET.Element | None, tag: str) -> str | None:
    found = node.find(tag) if node is not None else None
    return found.text.strip() if found is not None and found.text else None


def _number(node: ET.Element | None, tag: str) -> float | None:
    text = _text(node, tag)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _parse_xml(
    xml_path: Path, voc: Path, rel: str, image_id: int, issues: list[ValidationIssue]
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(image record, objects with VOC corners) of one annotation file, or None if unusable."""
    raw = xml_path.read_bytes()
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        issues.append(ValidationIssue(rel, "DTDs and entities are not allowed", image_id))
        return None
    try:
        tree = ET.fromstring(raw)
    except ET.ParseError as exc:
        issues.append(ValidationIssue(rel, f"unparsable XML ({exc})", image_id))
        return None
    file_name = _text(tree, "filename") or f"{xml_path.stem}.jpg"
    image_path = voc / "JPEGImages" / file_name
    if not image_path.is_file():
        matches = sorted((voc / "JPEGImages").glob(f"{xml_path.stem}.*"))
        if not matches:
            issues.append(
                ValidationIssue(rel, f"image JPEGImages/{file_name} is missing", image_id)
            )
            return None
        image_path = matches[0]
    size = tree.find("size")
    width, height = _number(size, "width"), _number(size, "height")
    if not width or not height or width <= 0 or height <= 0:
        try:
            with Image.open(image_path) as im:
                width, height = float(im.size[0]), float(im.size[1])
        except OSError:
            issues.append(
                ValidationIssue(
                    rel, "unknown image size: no <size> and the image is unreadable", image_id
                )
            )
            return None
    record = {
        "id": image_id,
        "file_name": image_path.name,
        "width": int(width),
        "height": int(height),
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
        objects.append({"name": name, "corners": (x1, y1, x2, y2), "difficult": difficult})
    return record, objects


def read_voc(root: Path, *, issues: list[ValidationIssue] | None = None) -> dict[str, CocoSplit]:
    """Every split of a VOC dataset as COCO dicts (categories sorted by name, ids 1..K).

    Problems are appended to `issues` and the item skipped; without `issues`, the first
    problems raise DatasetError.
    """
    strict = issues is None
    found: list[ValidationIssue] = [] if issues is None else issues
    voc = find_voc_root(root)
    if voc is None:
        raise DatasetError(f"{root}: no Pascal VOC layout (Annotations/ + JPEGImages/) found")
    xml_files = sorted((voc / "Annotations").glob("*.xml"))
    records: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for image_id, xml_path in enumerate(xml_files, start=1):
        rel = str(xml_path.relative_to(root))
        parsed = _parse_xml(xml_path, voc, rel, image_id, found)
        if parsed is not None:
            records[xml_path.stem] = parsed
    names = sorted({o["name"] for _, objs in records.values() for o in objs})
    cat_ids = {name: i + 1 for i, name in enumerate(names)}
    categories = [{"id": cat_ids[n], "name": n, "supercategory": "none"} for n in names]
    lists = _split_lists(voc)
    if not lists:
        lists = {"train": [p.stem for p in xml_files]}
    splits = {}
    ann_id = 0
    for split, stems in lists.items():
        images, annotations = [], []
        for stem in stems:
            if stem not in records:
                if not (voc / "Annotations" / f"{stem}.xml").is_file():
                    found.append(
                        ValidationIssue(
                            str((voc / "ImageSets" / "Main" / f"{split}.txt").relative_to(root)),
                            f"lists '{stem}' but Annotations/{stem}.xml is missing",
                        )
                    )
                continue
            record, objects = records[stem]
            images.append(record)
            for obj in objects:
                x1, y1, x2, y2 = obj["corners"]
                # 1-based inclusive corners -> 0-based [x, y, w, h]
                x, y = max(x1 - 1.0, 0.0), max(y1 - 1.0, 0.0)
                w, h = min(x2, record["width"]) - x, min(y2, record["height"]) - y
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
            "info": {"description": f"converted from Pascal VOC ({voc.name})"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        splits[split] = CocoSplit(coco=coco, image_root=voc / "JPEGImages")
    if strict and found:
        raise DatasetError(f"{root.name}: the VOC dataset has problems", found)
    return splits


def _sub(parent: ET.Element, tag: str, text: object) -> ET.Element:
    node = ET.SubElement(parent, tag)
    node.text = str(text)
    return node


def _voc_xml(
    image: dict[str, Any], stem_file: str, anns: list[dict[str, Any]], names: dict[int, str]
) -> ET.ElementTree:
    root = ET.Element("annotation")
    _sub(root, "folder", "JPEGImages")
    _sub(root, "filename", stem_file)
    size = ET.SubElement(root, "size")
    _sub(size, "width", image["width"])
    _sub(size, "height", image["height"])
    _sub(size, "depth", 3)
    _sub(root, "segmented", 0)
    for ann in anns:
        x, y, w, h = (float(v) for v in ann["bbox"])
        xmin, ymin = round(x) + 1, round(y) + 1
        xmax, ymax = max(round(x + w), xmin), max(round(y + h), ymin)
        obj = ET.SubElement(root, "object")
        _sub(obj, "name", names[ann["category_id"]])
        _sub(obj, "pose", "Unspecified")
        _sub(obj, "truncated", 0)
        _sub(obj, "difficult", int(ann.get("difficult", 0)))
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            _sub(box, tag, value)
    ET.indent(root)
    return ET.ElementTree(root)


def write_voc(source: Path, out: Path) -> Path:
    """Write the dataset at `source` (COCO folder or archive) in Pascal VOC layout under `out`."""
    from core.data.loader import open_dataset

    dataset = open_dataset(Path(source))
    out = Path(out)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    names = {int(c["id"]): str(c["name"]) for c in dataset.categories}
    stems: dict[tuple[str, int], str] = {}
    used: set[str] = set()
    for split_name, split in dataset.splits.items():
        for image in split.coco["images"]:
            stem = Path(str(image["file_name"])).stem
            if stem in used:
                stem = f"{split_name}_{image['id']}_{stem}"
            used.add(stem)
            stems[(split_name, int(image["id"]))] = stem
    for split_name, split in dataset.splits.items():
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in split.coco["annotations"]:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        listed = []
        for image in split.coco["images"]:
            stem = stems[(split_name, int(image["id"]))]
            src = split.image_path(image)
            file_name = stem + src.suffix.lower()
            shutil.copyfile(src, out / "JPEGImages" / file_name)
            anns = [a for a in by_image.get(int(image["id"]), []) if not a.get("iscrowd", 0)]
            tree = _voc_xml(image, file_name, anns, names)
            tree.write(out / "Annotations" / f"{stem}.xml", encoding="utf-8", xml_declaration=False)
            listed.append(stem)
        (out / "ImageSets" / "Main" / f"{split_name}.txt").write_text(
            "".join(f"{s}\n" for s in listed), encoding="utf-8"
        )
    return out
