"""COCO evaluation: letterbox undone, labels mapped to category ids, empty results handled."""

from __future__ import annotations

import pytest
import torch

from core.evaluation.coco import METRIC_NAMES, CocoEvaluator
from core.structures import Batch, Detections, Target

# Two images in original pixels; category ids are not contiguous (labels 1, 2 -> ids 3, 7).
GROUND_TRUTH = {
    "images": [
        {"id": 10, "width": 200, "height": 100, "file_name": "a.jpg"},
        {"id": 11, "width": 150, "height": 150, "file_name": "b.jpg"},
    ],
    "annotations": [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [10, 20, 12, 10]},  # small
        {"id": 2, "image_id": 10, "category_id": 7, "bbox": [100, 30, 60, 50]},  # medium
        {"id": 3, "image_id": 11, "category_id": 7, "bbox": [5, 5, 120, 110]},  # large
    ],
    "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
}
LABELS = {1: 3, 2: 7}
# Letterbox of each image to 64 px: scale, then (left, top) padding.
SCALES = [64 / 200, 64 / 150]
PADS = [(0, 16), (0, 0)]


def _batch() -> Batch:
    return Batch(
        images=torch.zeros(2, 3, 64, 64),
        targets=[Target(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))] * 2,
        image_ids=[10, 11],
        scales=SCALES,
        pads=PADS,
    )


def _to_model_pixels(image_index: int, x: float, y: float, w: float, h: float) -> list[float]:
    s = SCALES[image_index]
    px, py = PADS[image_index]
    return [x * s + px, y * s + py, (x + w) * s + px, (y + h) * s + py]


def _perfect() -> list[Detections]:
    by_image: dict[int, list[tuple[list[float], int]]] = {0: [], 1: []}
    cat_to_label = {c: lab for lab, c in LABELS.items()}
    for ann in GROUND_TRUTH["annotations"]:
        index = 0 if ann["image_id"] == 10 else 1
        by_image[index].append(
            (_to_model_pixels(index, *ann["bbox"]), cat_to_label[ann["category_id"]])
        )
    return [
        Detections(
            boxes=torch.tensor([box for box, _ in items]),
            scores=torch.ones(len(items)),
            labels=torch.tensor([label for _, label in items]),
        )
        for items in by_image.values()
    ]


def test_perfect_detections_score_ap_one() -> None:
    evaluator = CocoEvaluator(GROUND_TRUTH, LABELS)
    evaluator.process(_batch(), _perfect())
    result = evaluator.evaluate()
    assert set(result["bbox"]) == set(METRIC_NAMES)
    # No ground-truth box is below 8 px or between 16 and 32 px: those bins score -1.
    absent = {"AP_very_tiny", "AP_small_16"}
    for name in METRIC_NAMES:
        assert abs(result["bbox"][name] - (-1.0 if name in absent else 1.0)) < 1e-6, name
    assert result["per_class"] == pytest.approx({"cat": 1.0, "dog": 1.0})


def test_wrong_labels_score_zero_and_reset_forgets() -> None:
    evaluator = CocoEvaluator(GROUND_TRUTH, LABELS)
    swapped = [
        Detections(boxes=d["boxes"], scores=d["scores"], labels=3 - d["labels"]) for d in _perfect()
    ]
    evaluator.process(_batch(), swapped)
    assert evaluator.evaluate()["bbox"]["AP"] == 0.0
    evaluator.reset()
    evaluator.process(_batch(), _perfect())
    assert evaluator.evaluate()["bbox"]["AP50"] > 0.99


def test_no_detections_give_zero_not_a_crash() -> None:
    evaluator = CocoEvaluator(GROUND_TRUTH, LABELS)
    empty = Detections(
        boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.int64)
    )
    evaluator.process(_batch(), [empty, empty])
    result = evaluator.evaluate()
    absent = {"AP_very_tiny", "AP_small_16"}  # no ground-truth box of these sizes
    assert result["bbox"] == {name: -1.0 if name in absent else 0.0 for name in METRIC_NAMES}
    assert CocoEvaluator(GROUND_TRUTH, LABELS).evaluate()["bbox"]["AP"] == 0.0
