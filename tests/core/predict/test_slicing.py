"""Sliced inference: tiles cover the image, a box cut by a tile border comes back once."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.predict.detections import Detections
from core.predict.errors import PredictError
from core.predict.loading import load_predictor
from core.predict.slicing import SliceOptions, sliced_predict, tile_starts, tile_windows
from tests.core.predict.students import ExportedStudent

RED, BLUE = (255, 0, 0), (0, 0, 255)


def test_tiles_cover_the_image_and_end_flush_with_the_border() -> None:
    windows = tile_windows(600, 400, 256, 0.25)
    assert tile_starts(600, 256, 0.25) == [0, 192, 344]  # step 256 - 64, last flush
    assert tile_starts(400, 256, 0.25) == [0, 144]
    assert len(windows) == 6
    assert all(x2 - x1 == 256 and y2 - y1 == 256 for x1, y1, x2, y2 in windows)
    covered = np.zeros((400, 600), dtype=bool)
    for x1, y1, x2, y2 in windows:
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    assert tile_windows(100, 80, 256, 0.2) == [(0, 0, 100, 80)]  # smaller than a tile
    with pytest.raises(PredictError, match="overlap"):
        SliceOptions(size=256, overlap=1.0)


def colour_boxes(tile: Image.Image) -> Detections:
    """A toy detector: the bounding box of the red pixels (label 1) and of the blue (label 2),
    scored by how many pixels it sees (a cut box scores lower than the whole)."""
    pixels = np.asarray(tile)
    boxes, scores, labels = [], [], []
    for label, colour in ((1, RED), (2, BLUE)):
        ys, xs = np.nonzero(np.all(pixels == colour, axis=2))
        if len(xs):
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            scores.append(min(1.0, len(xs) / 2400))
            labels.append(label)
    return Detections(
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.asarray(scores, dtype=np.float32),
        labels=np.asarray(labels, dtype=np.int64),
    )


def _scene() -> Image.Image:
    image = Image.new("RGB", (600, 400), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    # Straddles the border x = 256 of the first tile; whole in the second (192..448).
    draw.rectangle((230, 100, 289, 139), fill=RED)
    # Another class, far from any border.
    draw.rectangle((470, 300, 499, 329), fill=BLUE)
    return image


def test_a_box_cut_by_a_tile_border_comes_back_once() -> None:
    options = SliceOptions(size=256, overlap=0.25)
    found = sliced_predict(colour_boxes, _scene(), options)
    assert sorted(found.labels.tolist()) == [1, 2]
    red = found.boxes[found.labels == 1][0]
    assert red.tolist() == [230, 100, 290, 140]  # the whole box, in image pixels
    blue = found.boxes[found.labels == 2][0]
    assert blue.tolist() == [470, 300, 500, 330]
    # NMS on IoU keeps the cut half beside the whole box: IoS is what merging needs.
    by_iou = sliced_predict(
        colour_boxes, _scene(), SliceOptions(size=256, overlap=0.25, merge="nms", metric="iou")
    )
    assert sorted(by_iou.labels.tolist()) == [1, 1, 2]
    by_ios = sliced_predict(
        colour_boxes, _scene(), SliceOptions(size=256, overlap=0.25, merge="nms", metric="ios")
    )
    assert sorted(by_ios.labels.tolist()) == [1, 2]
    assert by_ios.boxes[by_ios.labels == 1][0].tolist() == [230, 100, 290, 140]


def test_the_whole_image_pass_is_optional() -> None:
    seen: list[tuple[int, int]] = []

    def record(tile: Image.Image) -> Detections:
        seen.append(tile.size)
        return colour_boxes(tile)

    sliced_predict(record, _scene(), SliceOptions(size=256, overlap=0.25, full_image=False))
    assert seen == [(256, 256)] * 6
    seen.clear()
    sliced_predict(record, _scene(), SliceOptions(size=256, overlap=0.25))
    assert seen == [(256, 256)] * 6 + [(600, 400)]


def test_sliced_inference_with_a_real_student(student: ExportedStudent) -> None:
    predictor = load_predictor(student.onnx)
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, size=(150, 200, 3), dtype=np.uint8))
    options = predictor.options(score_threshold=0.1, max_detections=50)
    found = predictor.detect(image, options, SliceOptions(size=64, overlap=0.2))
    whole = predictor.detect(image, options)
    assert 0 < len(found) <= 50
    assert len(found) != len(whole) or not np.allclose(found.boxes, whole.boxes)
    assert np.isfinite(found.boxes).all()
    assert (found.boxes[:, 0] >= 0).all() and (found.boxes[:, 2] <= 200).all()
    assert (found.boxes[:, 1] >= 0).all() and (found.boxes[:, 3] <= 150).all()
    assert (found.scores > 0.1).all()
    assert (np.diff(found.scores) <= 0).all()  # best first
