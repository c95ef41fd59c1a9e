"""Validation reports every problem at once, each naming its file and ids."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image

from core.data.validate import ValidationIssue, validate_dataset


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)


def _write(root: Path, name: str, data: Any) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (root / "annotations" / f"instances_{name}.json").write_text(text)


def _find(issues: list[ValidationIssue], text: str) -> ValidationIssue:
    hits = [i for i in issues if text in i.message]
    assert hits, f"no issue mentions {text!r}: {[str(i) for i in issues]}"
    return hits[0]


def test_valid_dataset_has_statistics(tiny_coco: Path) -> None:
    report = validate_dataset(tiny_coco)
    assert report.ok and report.errors == []
    assert report.statistics is not None
    assert report.statistics["images"] == 12
    assert report.statistics["splits"]["val"]["images"] == 2
    assert report.format == "coco"
    json.dumps(report.to_dict())


def test_every_coco_problem_is_reported_together(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    for name in ("a.png", "b.png", "dup.png"):
        _image(root / "images" / "train" / name)
    (root / "images" / "train" / "bad.png").write_bytes(b"not an image at all")
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 40, "height": 30},
            {"id": 3, "file_name": "gone.png", "width": 40, "height": 30},
            {"id": 4, "file_name": "bad.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "dup.png", "width": 40, "height": 30},
            {"id": 5, "file_name": "a.png"},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 4]},
            {"id": 12, "image_id": 2, "category_id": 1, "bbox": [30, 20, 20, 5]},
            {"id": 13, "image_id": 2, "category_id": 7, "bbox": [1, 1, 5, 5]},
            {"id": 10, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 14, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 15, "image_id": 1, "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "dot"}, {"id": 1, "name": "dot again"}],
    }
    _write(root, "train", coco)
    _write(root, "val", '{"images": [1, 2')
    _write(root, "test", {"images": []})
    issues = validate_dataset(root).errors
    train = "annotations/instances_train.json"

    assert _find(issues, "not valid JSON").file == "annotations/instances_val.json"
    missing_keys = [i for i in issues if "missing top-level key" in i.message]
    assert {i.file for i in missing_keys} == {"annotations/instances_test.json"}
    assert len(missing_keys) == 2  # 'annotations' and 'categories'
    gone = _find(issues, "image file is missing")
    assert (gone.file, gone.image_id) == ("images/train/gone.png", 3)
    bad = _find(issues, "unreadable image")
    assert (bad.file, bad.image_id) == ("images/train/bad.png", 4)
    assert _find(issues, "image id is used 2 times").image_id == 2
    assert _find(issues, "missing key(s) ['width', 'height']").image_id == 5
    zero = _find(issues, "non-positive size")
    assert (zero.file, zero.image_id, zero.annotation_id) == (train, 1, 11)
    outside = _find(issues, "outside the 40x30 image")
    assert (outside.image_id, outside.annotation_id) == (2, 12)
    assert _find(issues, "category id 7 is not declared").annotation_id == 13
    assert _find(issues, "annotation id is used 2 times").annotation_id == 10
    assert _find(issues, "image id that is not listed").annotation_id == 14
    assert _find(issues, "missing key(s) ['bbox']").annotation_id == 15
    assert _find(issues, "category id 1 is declared 2 times").file == train
    assert validate_dataset(root).statistics is None
    for issue in issues:
        assert set(issue.to_dict()) == {"file", "image_id", "annotation_id", "message"}


def test_empty_dataset_is_an_error(tmp_path: Path) -> None:
    _write(
        tmp_path, "train", {"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    )
    report = validate_dataset(tmp_path)
    assert not report.ok
    _find(report.errors, "empty")
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    _find(validate_dataset(nothing).errors, "neither COCO")


def test_every_voc_problem_is_reported(tiny_voc: Path, tmp_path: Path) -> None:
    root = tmp_path / "voc"
    shutil.copytree(tiny_voc, root)
    xmls = sorted((root / "Annotations").glob("*.xml"))
    xmls[0].write_text("<annotation><filename>oops")
    second = xmls[1].read_text()
    xmls[1].write_text(second.replace("<width>", "<width>x").replace("<height>", "<height>x"))
    # the third image: its picture is gone and it has no usable size -> missing file
    third = xmls[2].stem
    for picture in (root / "JPEGImages").glob(f"{third}.*"):
        picture.unlink()
    (root / "Annotations" / "extra.xml").write_text(
        "<annotation><filename>{}</filename><size><width>64</width><height>64</height></size>"
        "<object><name>zero</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>5</xmax>"
        "<ymax>20</ymax></bndbox></object>"
        "<object><name>one</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>90</xmax>"
        "<ymax>20</ymax></bndbox></object></annotation>".format(
            next((root / "JPEGImages").iterdir()).name
        )
    )
    with (root / "ImageSets" / "Main" / "train.txt").open("a") as f:
        f.write("ghost\n")
    report = validate_dataset(root, format="voc")
    issues = report.errors
    assert report.format == "voc"
    assert _find(issues, "unparsable XML").file == f"Annotations/{xmls[0].name}"
    assert _find(issues, "is missing").file == f"Annotations/{third}.xml"
    assert _find(issues, "non-positive size").file == "Annotations/extra.xml"
    assert "64x64" in _find(issues, "outside").message
    assert _find(issues, "lists 'ghost'").file == "ImageSets/Main/train.txt"
    # the second file lost its <size>, but the picture is readable: no error for it
    assert not [i for i in issues if i.file == f"Annotations/{xmls[1].name}"]
    xmls[1].unlink()
    (root / "Annotations" / "nosize.xml").write_text(
        "<annotation><filename>nosize.jpg</filename></annotation>"
    )
    (root / "JPEGImages" / "nosize.jpg").write_bytes(b"garbage")
    _find(validate_dataset(root).errors, "unknown image size")


def test_unsafe_archive_is_a_validation_error(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape.txt", b"x")
    issues = validate_dataset(archive).errors
    assert len(issues) == 1
    assert issues[0].file == "evil.zip" and "escapes" in issues[0].message


def test_valid_archive(tiny_coco: Path, tmp_path: Path) -> None:
    archive = Path(shutil.make_archive(str(tmp_path / "ds"), "gztar", root_dir=tiny_coco))
    report = validate_dataset(archive)
    assert report.ok and report.statistics is not None
    assert report.statistics["annotations"] > 0
