"""Writing a dataset in Pascal VOC layout (`distillery data convert`, the study's VOC track)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from core.data.loader import open_dataset


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
