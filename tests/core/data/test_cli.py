"""`distillery data check | synth | to-voc`: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main


def test_check_valid_dataset_prints_statistics(
    tiny_coco: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "check", str(tiny_coco)]) == 0
    out = capsys.readouterr().out
    assert "12 images" in out and "boxes per class" in out and "small" in out and "#" in out


def test_check_broken_dataset_lists_errors_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "annotations").mkdir()
    coco = {
        "images": [{"id": 1, "file_name": "missing.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 9, "bbox": [0, 0, 3, 3]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    assert main(["data", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "image 1: image file is missing" in err
    assert "annotation 5: category id 9 is not declared" in err
    assert main(["data", "check", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and len(report["errors"]) == 2
    assert {e["annotation_id"] for e in report["errors"]} == {None, 5}


def test_synth_then_to_voc_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    args = ["data", "synth", str(out), "--images", "3", "--size", "48", "--seed", "2"]
    assert main([*args, "--val-fraction", "0.34"]) == 0
    assert len(list((out / "images" / "val").glob("*.jpg"))) == 1
    assert main(["data", "to-voc", str(out), str(tmp_path / "voc")]) == 0
    assert len(list((tmp_path / "voc" / "Annotations").glob("*.xml"))) == 3
    capsys.readouterr()
    assert main(["data", "check", str(tmp_path / "voc"), "--format", "voc", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "voc" and report["statistics"]["images"] == 3
    assert main(["data", "synth", str(out), "--images", "0", "--size", "48"]) == 2
    assert main(["data", "to-voc", str(tmp_path / "nope"), str(tmp_path / "v2")]) == 1
