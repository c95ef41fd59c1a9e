"""The synthetic benchmark: deterministic for a seed, COCO layout, mostly small objects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.synthetic import CLASS_NAMES, generate_synthetic


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_layout_and_coco_content(tiny_coco: Path) -> None:
    train = json.loads((tiny_coco / "annotations" / "instances_train.json").read_text())
    val = json.loads((tiny_coco / "annotations" / "instances_val.json").read_text())
    assert (len(train["images"]), len(val["images"])) == (10, 2)
    assert [c["name"] for c in train["categories"]] == list(CLASS_NAMES)
    ids = [im["id"] for im in train["images"] + val["images"]]
    assert len(set(ids)) == 12
    for split, coco in (("train", train), ("val", val)):
        for image in coco["images"]:
            with Image.open(tiny_coco / "images" / split / image["file_name"]) as im:
                assert im.size == (image["width"], image["height"]) and max(im.size) == 64
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
            assert w > 0 and h > 0 and x >= 0 and y >= 0
            assert x + w <= image["width"] and y + h <= image["height"]


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate_synthetic(tmp_path / "a", images=4, size=48, seed=7)
    b = generate_synthetic(tmp_path / "b", images=4, size=48, seed=7)
    c = generate_synthetic(tmp_path / "c", images=4, size=48, seed=8)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_mostly_small_objects_on_object_pixels(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "s", images=10, size=192, seed=1, val_fraction=0.0)
    assert not (out / "annotations" / "instances_val.json").exists()
    coco = json.loads((out / "annotations" / "instances_train.json").read_text())
    areas = np.array([a["area"] for a in coco["annotations"]])
    assert len(areas) >= 30
    assert (areas < 32**2).mean() >= 0.6  # COCO "small"
    assert (areas >= 32**2).any()  # and some medium ones
    # a box holds a drawn digit: its pixels vary far more than a blank strip would
    contrast = []
    for ann in coco["annotations"][:20]:
        image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        pixels = np.asarray(Image.open(out / "images" / "train" / image["file_name"]), float)
        x, y, w, h = (int(v) for v in ann["bbox"])
        contrast.append(pixels[y : y + h, x : x + w].std())
    assert np.median(contrast) > 20


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        generate_synthetic(tmp_path, images=2, size=8, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        generate_synthetic(tmp_path, images=2, size=64, seed=0, val_fraction=1.5)
