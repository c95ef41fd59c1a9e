"""The study's data: the synthetic benchmark with a held-out test split, and its VOC export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.study.plan import Scale

DONE = ".complete"
"""Marker file written last, so an interrupted preparation is redone, not trusted."""


def _marker(folder: Path) -> dict[str, Any] | None:
    path = folder / DONE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _recipe(scale: Scale) -> dict[str, Any]:
    return {
        "image_size": scale.image_size,
        "trainval_images": scale.trainval_images,
        "val_fraction": scale.val_fraction,
        "test_images": scale.test_images,
        "data_seed": scale.data_seed,
        "test_seed": scale.test_seed,
    }


def build_benchmark(scale: Scale, out: Path) -> Path:
    """COCO folder with train/val (seed `data_seed`) and test (seed `test_seed`) splits."""
    from core.data.loader import open_dataset
    from core.data.synthetic import generate_synthetic

    recipe = _recipe(scale)
    if _marker(out) == recipe:
        return out
    shutil.rmtree(out, ignore_errors=True)
    work = out.with_name(out.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    generate_synthetic(
        out,
        images=scale.trainval_images,
        size=scale.image_size,
        seed=scale.data_seed,
        val_fraction=scale.val_fraction,
    )
    # The test images come from another seed: no image of them is seen in training or in
    # the end-of-run check on val.
    generate_synthetic(
        work,
        images=scale.test_images,
        size=scale.image_size,
        seed=scale.test_seed,
        val_fraction=0.0,
    )
    source = open_dataset(work).splits["train"]
    test_images = out / "images" / "test"
    test_images.mkdir(parents=True, exist_ok=True)
    coco = dict(source.coco)
    coco["images"] = []
    for image in source.coco["images"]:
        file_name = Path(str(image["file_name"])).name
        shutil.copyfile(source.image_path(image), test_images / file_name)
        coco["images"].append({**image, "file_name": file_name})
    (out / "annotations" / "instances_test.json").write_text(json.dumps(coco), encoding="utf-8")
    shutil.rmtree(work)
    (out / DONE).write_text(json.dumps(recipe), encoding="utf-8")
    return out


def export_voc(coco_folder: Path, out: Path) -> Path:
    """The same images and boxes in Pascal VOC layout (core.data.voc_export.write_voc)."""
    from core.data.voc_export import write_voc

    source = _marker(coco_folder)
    if source is not None and _marker(out) == source:
        return out
    shutil.rmtree(out, ignore_errors=True)
    write_voc(coco_folder, out)
    (out / DONE).write_text(json.dumps(source), encoding="utf-8")
    return out


def split_counts(folder: Path) -> dict[str, dict[str, int]]:
    """Images and boxes per split of a dataset folder (COCO or VOC)."""
    from core.data.loader import open_dataset

    source = open_dataset(folder)
    return {
        name: {"images": len(split.coco["images"]), "boxes": len(split.coco["annotations"])}
        for name, split in sorted(source.splits.items())
    }
