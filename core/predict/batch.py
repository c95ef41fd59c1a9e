"""Images in, `detections.json` (COCO results) and one picture per image out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.predict.drawing import draw_detections
from core.predict.images import open_image
from core.predict.postprocess import PostprocessOptions
from core.predict.predictor import Predictor
from core.predict.results import coco_records, write_records
from core.predict.slicing import SliceOptions

log = logging.getLogger("distillery.predict")

DETECTIONS_FILE = "detections.json"
PICTURES_DIR = "pictures"
JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass
class PredictRun:
    """What one run wrote: the COCO records, the JSON file and the pictures."""

    records: list[dict[str, Any]]
    json_path: Path
    pictures: list[Path] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # detections per image, in input order


def picture_path(folder: Path, image: Path, taken: set[str]) -> Path:
    """Where the picture of `image` goes: its stem, made unique; JPEG stays JPEG, else PNG."""
    suffix = ".jpg" if image.suffix.lower() in JPEG_SUFFIXES else ".png"
    name, number = image.stem or "image", 1
    candidate = name
    while candidate.lower() in taken:
        number += 1
        candidate = f"{name}_{number}"
    taken.add(candidate.lower())
    return folder / f"{candidate}{suffix}"


def predict_images(
    predictor: Predictor,
    images: Sequence[Path],
    out: Path,
    *,
    options: PostprocessOptions,
    slicing: SliceOptions | None = None,
    pictures: bool = True,
) -> PredictRun:
    """Run the predictor over `images` (image ids 1.. in order) and write the results to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    run = PredictRun(records=records, json_path=out / DETECTIONS_FILE)
    taken: set[str] = set()
    for image_id, path in enumerate(images, start=1):
        image = open_image(path, name=str(path))
        found = predictor.detect(image, options, slicing)
        records.extend(coco_records(found, predictor.meta, image_id=image_id, file_name=path.name))
        run.counts.append(len(found))
        if pictures:
            target = picture_path(out / PICTURES_DIR, path, taken)
            target.parent.mkdir(parents=True, exist_ok=True)
            draw_detections(image, found, predictor.meta).save(target)
            run.pictures.append(target)
        log.info("%s: %d detections", path, len(found))
    write_records(records, run.json_path)
    return run
