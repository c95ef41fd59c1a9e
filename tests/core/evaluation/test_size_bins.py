"""AI-TOD's size bins and the class-agnostic AP beside COCO's figures."""

from __future__ import annotations

import pytest
import torch

from core.evaluation.coco import METRIC_NAMES, TINY_BINS, CocoEvaluator
from core.structures import Batch, Detections, Target

# One 100 px image (no letterbox): a 6 px, a 12 px, a 24 px and a 50 px box, two classes.
BOXES = {
    "very_tiny": [10, 10, 6, 6],
    "tiny": [30, 10, 12, 12],
    "small": [10, 40, 24, 24],
    "medium": [45, 45, 50, 50],
}
GROUND_TRUTH = {
    "images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.jpg"}],
    "annotations": [
        {"id": i + 1, "image_id": 1, "category_id": 1 + i % 2, "bbox": box}
        for i, box in enumerate(BOXES.values())
    ],
    "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "boat"}],
}
LABELS = {1: 1, 2: 2}


def _batch() -> Batch:
    empty = Target(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))
    return Batch(
        images=torch.zeros(1, 3, 100, 100),
        targets=[empty],
        image_ids=[1],
        scales=[1.0],
        pads=[(0, 0)],
    )


def _detections(keep: list[str], labels: list[int]) -> list[Detections]:
    corners = [[x, y, x + w, y + h] for name, (x, y, w, h) in BOXES.items() if name in keep]
    return [
        Detections(
            boxes=torch.tensor(corners, dtype=torch.float32).reshape(-1, 4),
            scores=torch.linspace(0.9, 0.6, len(corners)),
            labels=torch.tensor(labels, dtype=torch.int64),
        )
    ]


def _evaluate(keep: list[str], labels: list[int]) -> dict[str, float]:
    evaluator = CocoEvaluator(GROUND_TRUTH, LABELS)
    evaluator.process(_batch(), _detections(keep, labels))
    bbox: dict[str, float] = evaluator.evaluate()["bbox"]
    return bbox


def test_each_bin_scores_only_its_own_sizes() -> None:
    assert set(TINY_BINS) <= set(METRIC_NAMES)
    # Only the very tiny and the small box found (right class): those bins 1, tiny 0.
    bbox = _evaluate(["very_tiny", "small"], [1, 1])
    assert bbox["AP_very_tiny"] == pytest.approx(1.0)
    assert bbox["AP_tiny"] == pytest.approx(0.0)
    assert bbox["AP_small_16"] == pytest.approx(1.0)
    assert bbox["AP_medium"] == pytest.approx(0.0)
    # COCO's AP_small holds all three (two of three found).
    assert 0.0 < bbox["AP_small"] < 1.0


def test_a_bin_without_objects_is_minus_one() -> None:
    ground_truth = {**GROUND_TRUTH, "annotations": GROUND_TRUTH["annotations"][3:]}
    evaluator = CocoEvaluator(ground_truth, LABELS)
    evaluator.process(_batch(), _detections(["medium"], [2]))
    bbox = evaluator.evaluate()["bbox"]
    assert bbox["AP_medium"] == pytest.approx(1.0)
    for name in (*TINY_BINS, "AP_small", "AP_large"):
        assert bbox[name] == -1.0, name
    # Nothing detected at all: -1 still for the empty bins, 0 for the others.
    evaluator.reset()
    evaluator.process(_batch(), _detections([], []))
    bbox = evaluator.evaluate()["bbox"]
    assert bbox["AP_very_tiny"] == -1.0 and bbox["AP_medium"] == 0.0


def test_class_agnostic_ap_ignores_the_labels() -> None:
    everything = list(BOXES)
    right = _evaluate(everything, [1, 2, 1, 2])
    wrong = _evaluate(everything, [2, 1, 2, 1])
    assert right["AP"] == pytest.approx(1.0) and right["AP_agnostic"] == pytest.approx(1.0)
    assert wrong["AP"] == pytest.approx(0.0)
    assert wrong["AP_agnostic"] == pytest.approx(1.0)  # every box found, labels swapped


def test_the_detection_cap_follows_the_detector() -> None:
    # 150 detections in one image: the cap rises above COCO's 100 so none is cut.
    evaluator = CocoEvaluator(GROUND_TRUTH, LABELS)
    boxes = torch.tensor([[0.0, 0.0, 3.0, 3.0]]).repeat(150, 1)
    dets = Detections(
        boxes=boxes, scores=torch.full((150,), 0.9), labels=torch.ones(150, dtype=torch.int64)
    )
    evaluator.process(_batch(), [dets])
    assert evaluator.max_detections() == 150
    evaluator.reset()
    evaluator.process(_batch(), _detections(["tiny"], [2]))
    assert evaluator.max_detections() == 100
