"""Statistics that warn: classes missing from train, objects the training size shrinks below
4 px (with the tile that keeps them), per split and class counts, image sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cli.main import main
from core.data.dataset_warnings import MIN_OBJECT_PX, shrink_warning
from core.data.validate import validate_dataset

CATEGORIES = [{"id": 1, "name": "car"}, {"id": 2, "name": "boat"}, {"id": 3, "name": "kite"}]


def _split(root: Path, split: str, images: list[tuple[int, int]], boxes: list[Any]) -> None:
    """One COCO split: `images` (width, height) and `boxes` (image index, category, bbox)."""
    folder = root / "images" / split
    folder.mkdir(parents=True)
    records = []
    for index, (width, height) in enumerate(images):
        name = f"{split}_{index}.png"
        Image.new("RGB", (width, height), (90, 120, 150)).save(folder / name)
        records.append({"id": index + 1, "file_name": name, "width": width, "height": height})
    annotations = [
        {"id": i + 1, "image_id": image + 1, "category_id": cat, "bbox": bbox}
        for i, (image, cat, bbox) in enumerate(boxes)
    ]
    coco = {"images": records, "annotations": annotations, "categories": CATEGORIES}
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


@pytest.fixture(scope="module")
def aerial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large images with 10 px cars in train; boats only in val; kites nowhere."""
    root = tmp_path_factory.mktemp("aerial")
    cars = [(0, 1, [100 + 40 * i, 200, 10, 10]) for i in range(8)]
    _split(root, "train", [(1000, 800), (640, 480)], [*cars, (1, 1, [10, 10, 200, 150])])
    _split(root, "val", [(1000, 800)], [(0, 1, [5, 5, 12, 12]), (0, 2, [50, 50, 30, 20])])
    return root


def _codes(report_warnings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(w["code"], w["details"].get("class", "")) for w in report_warnings]


def test_classes_missing_from_train_are_warned(aerial: Path) -> None:
    report = validate_dataset(aerial, image_size=160)
    assert report.ok, report.errors
    stats = report.statistics
    assert stats is not None
    warned = _codes(stats["warnings"])
    assert ("class_missing_from_train", "boat") in warned
    assert ("class_without_boxes", "kite") in warned
    assert not [w for w in warned if w[1] == "car"]
    boat = next(w for w in report.warnings if w.code == "class_missing_from_train")
    assert boat.file == "annotations/instances_train.json"
    assert "'boat' has no box in the 'train' split (1 in val)" in boat.message
    # Per split and class counts.
    assert stats["splits"]["train"]["boxes_per_class"] == {"car": 9, "boat": 0, "kite": 0}
    assert stats["splits"]["val"]["boxes_per_class"] == {"car": 1, "boat": 1, "kite": 0}
    json.dumps(report.to_dict())


def test_shrinking_below_4_px_is_warned_with_a_tile_size(aerial: Path) -> None:
    # 160 px: a 1000 px image shrinks x0.16, the 10 px cars become 1.6 px.
    report = validate_dataset(aerial, image_size=160)
    shrunk = [w for w in report.warnings if w.code == "objects_below_min_size"]
    assert len(shrunk) == 1
    details = shrunk[0].details
    assert (details["boxes"], details["shrunk_boxes"]) == (9, 8)
    # A tile T shows a 10 px car at 10 * 160 / T px: T <= 400 keeps it, 384 is a multiple of 32.
    assert details["tile_size"] == 384 and details["kept_share"] == 1.0
    assert 10 * 160 / details["tile_size"] >= MIN_OBJECT_PX
    assert "tiles of 384 px" in shrunk[0].message
    # At 640 px the cars are 6.4 px: no warning.
    report = validate_dataset(aerial, image_size=640)
    assert not [w for w in report.warnings if w.code == "objects_below_min_size"]


def test_the_tile_keeps_most_shrunk_boxes_and_says_so_when_not_all() -> None:
    images = [{"id": 1, "width": 2000, "height": 2000}]
    # Sides 1 px (x5) and 8 px (x95) in a 2000 px image at 320 px: 0.16 and 1.28 px.
    sides = [1.0] * 5 + [8.0] * 95
    anns = [{"id": i, "image_id": 1, "bbox": [0, 0, s, s]} for i, s in enumerate(sides)]
    warning = shrink_warning({"images": images, "annotations": anns}, image_size=320)
    assert warning is not None
    # 95 % of the boxes need T <= 8 * 320 / 4 = 640; the 1 px ones would need 80.
    assert warning.details["tile_size"] == 640
    assert warning.details["kept_share"] == 0.95
    # Boxes of 0.3 px would need tiles of 0.3 * 320 / 4 = 24 px: below the smallest tile (32).
    specks = [{"id": i, "image_id": 1, "bbox": [0, 0, 0.3, 0.3]} for i in range(10)]
    warning = shrink_warning({"images": images, "annotations": specks}, image_size=320)
    assert warning is not None and warning.details["tile_size"] == 32
    assert warning.details["kept_share"] == 0.0 and "larger data.image_size" in warning.message
    # Fewer than 1 % of the boxes shrunk: no warning.
    many = [
        *anns[5:],
        *({"id": 1000 + i, "image_id": 1, "bbox": [0, 0, 500, 500]} for i in range(10_000)),
    ]
    assert shrink_warning({"images": images, "annotations": many}, image_size=320) is None


def test_image_sizes_are_summarised(aerial: Path) -> None:
    stats = validate_dataset(aerial).statistics
    assert stats is not None
    sizes = stats["image_sizes"]
    assert sizes["most_common"][0] == {"width": 1000, "height": 800, "images": 2}
    edges, counts = sizes["long_side"]["edges"], sizes["long_side"]["counts"]
    assert sum(counts) == 3 and counts[edges.index(800)] == 2 and counts[edges.index(640)] == 1


def test_data_check_prints_the_warnings(aerial: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(aerial), "--image-size", "160"]) == 0
    out = capsys.readouterr().out
    assert "warning: annotations/instances_train.json: class 'boat' has no box" in out
    assert "tiles of 384 px" in out
    assert main(["data", "check", str(aerial), "--image-size", "8"]) == 2
