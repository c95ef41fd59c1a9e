"""VOC corners, 1-based or 0-based: the same annotations give the same boxes and statistics as
COCO whichever way they were written (detected, or configured with `data.voc_coordinates`)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.data.loader import build_loaders, open_dataset
from core.data.stats import dataset_statistics, merge_splits
from core.data.validate import validate_dataset
from core.data.voc import detect_coordinates
from core.data.voc_export import write_voc
from core.spec import DataSpec

SIZE = (40, 30)
# Whole-pixel COCO boxes: one at the top-left corner, one touching the right edge, one the bottom.
BOXES = {
    "train": [("car", [0, 0, 5, 4]), ("car", [10, 5, 12, 8]), ("boat", [28, 10, 12, 20])],
    "val": [("boat", [3, 20, 6, 10]), ("car", [20, 2, 9, 9])],
}
CATEGORIES = [{"id": 4, "name": "boat"}, {"id": 9, "name": "car"}]


def _coco_dataset(root: Path) -> Path:
    ids = {c["name"]: c["id"] for c in CATEGORIES}
    ann_id = 0
    for image_id, (split, boxes) in enumerate(BOXES.items(), start=1):
        folder = root / "images" / split
        folder.mkdir(parents=True)
        Image.new("RGB", SIZE, (90, 120, 150)).save(folder / f"{split}.png")
        annotations = []
        for name, box in boxes:
            ann_id += 1
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": ids[name],
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        coco = {
            "images": [
                {"id": image_id, "file_name": f"{split}.png", "width": SIZE[0], "height": SIZE[1]}
            ],
            "annotations": annotations,
            "categories": CATEGORIES,
        }
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def _zero_based_copy(one_based: Path, out: Path) -> Path:
    """The same VOC dataset with corners written as COCO's x, y, x + w, y + h."""
    shutil.copytree(one_based, out)
    for xml in (out / "Annotations").glob("*.xml"):
        text = xml.read_text()
        for tag in ("xmin", "ymin"):
            text = re.sub(
                rf"<{tag}>(\d+)</{tag}>", lambda m, t=tag: f"<{t}>{int(m[1]) - 1}</{t}>", text
            )
        xml.write_text(text)
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("voc_coordinates")
    coco = _coco_dataset(base / "coco")
    one_based = write_voc(coco, base / "voc_one_based")
    return {
        "coco": coco,
        "one_based": one_based,
        "zero_based": _zero_based_copy(one_based, base / "voc_zero_based"),
    }


def _boxes(path: Path, **options: Any) -> dict[str, list[tuple[str, list[float]]]]:
    source = open_dataset(path, **options)
    names = {c["id"]: c["name"] for c in source.categories}
    return {
        split: sorted((names[a["category_id"]], a["bbox"]) for a in s.coco["annotations"])
        for split, s in source.splits.items()
    }


def _statistics(path: Path) -> dict[str, Any]:
    source = open_dataset(path)
    return dataset_statistics(merge_splits({k: s.coco for k, s in source.splits.items()}))


def test_both_conventions_are_detected_and_read_as_coco(datasets: dict[str, Path]) -> None:
    expected = {
        split: sorted((n, [float(v) for v in b]) for n, b in boxes)
        for split, boxes in BOXES.items()
    }
    assert _boxes(datasets["coco"]) == expected
    for convention in ("one_based", "zero_based"):
        source = open_dataset(datasets[convention])
        assert {s.coco["info"]["voc_coordinates"] for s in source.splits.values()} == {convention}
        assert _boxes(datasets[convention]) == expected, convention


def test_the_same_annotations_give_the_same_statistics(datasets: dict[str, Path]) -> None:
    reference = _statistics(datasets["coco"])
    keys = ("size_buckets", "size_histogram", "boxes_per_class", "size_buckets_per_class")
    for convention in ("one_based", "zero_based"):
        stats = _statistics(datasets[convention])
        assert {k: stats[k] for k in keys} == {k: reference[k] for k in keys}, convention
        report = validate_dataset(datasets[convention])
        assert report.ok, report.errors
        assert report.statistics is not None
        assert report.statistics["voc_coordinates"] == convention
        assert report.statistics["size_histogram"] == reference["size_histogram"]


def test_a_configured_convention_overrides_the_detection(datasets: dict[str, Path]) -> None:
    # Zero-based corners read as 1-based: every box moves up-left a pixel and grows by one.
    grown = _boxes(datasets["zero_based"], voc_coordinates="one_based")
    assert ("car", [9.0, 4.0, 13.0, 9.0]) in grown["train"]
    assert ("car", [0.0, 0.0, 5.0, 4.0]) in grown["train"]  # clipped at the corner: 0 - 1 -> 0
    # And through the job spec's data section.
    spec = DataSpec(path=str(datasets["zero_based"]), image_size=64, voc_coordinates="one_based")
    _, _, info = build_loaders(spec, seed=0)
    assert [19.0, 1.0, 10.0, 10.0] in [a["bbox"] for a in info.val_gt["annotations"]]
    spec = DataSpec(path=str(datasets["zero_based"]), image_size=64)
    _, _, info = build_loaders(spec, seed=0)
    assert [20.0, 2.0, 9.0, 9.0] in [a["bbox"] for a in info.val_gt["annotations"]]


def test_detection_rule() -> None:
    def objects(*corners: tuple[float, float, float, float]) -> list[dict[str, Any]]:
        return [{"corners": c} for c in corners]

    assert detect_coordinates(objects((1, 1, 40, 30), (5, 6, 7, 8))) == "one_based"
    assert detect_coordinates(objects((5, 6, 7, 8), (0, 3, 9, 9))) == "zero_based"
    assert detect_coordinates(objects((5, 6, 7, 8), (2.5, 3, 9, 9))) == "zero_based"
    assert detect_coordinates([]) == "one_based"


def test_a_point_box_in_zero_based_corners_is_named(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    broken = shutil.copytree(datasets["zero_based"], tmp_path / "broken")
    xml = broken / "Annotations" / "train.xml"
    text = xml.read_text().replace("<xmax>22</xmax>", "<xmax>10</xmax>", 1)
    xml.write_text(text)
    report = validate_dataset(broken)
    assert [e.message for e in report.errors] == [
        "object 1 (car): box [10.0, 5.0, 10.0, 13.0] has no area in zero_based coordinates"
    ]
    assert report.errors[0].file == "Annotations/train.xml"
