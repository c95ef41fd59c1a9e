"""Precision-recall curves at IoU 0.5 from pycocotools' accumulated precision array."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.evaluation.coco import CocoEvaluator, pr_curves
from core.structures import Detections
from tests.core.evaluation.test_coco import GROUND_TRUTH, LABELS, _batch, _to_model_pixels


def test_pr_curves_pick_iou_half_and_leave_out_classes_without_ground_truth() -> None:
    recall = np.linspace(0.0, 1.0, 101)
    ious = np.linspace(0.5, 0.95, 10)
    precision = np.zeros((10, 101, 3, 4, 3))
    precision[0, :, 0, 0, -1] = np.where(recall <= 0.5, 0.8, 0.0)  # class a at IoU 0.5
    precision[1:, :, 0, 0, -1] = 0.1  # other IoUs must not leak in
    precision[0, :, 1, 0, -1] = 1.0  # class b
    precision[0, :, 1, 0, 0] = 0.3  # a smaller detection cap must not leak in
    precision[:, :, 2] = -1.0  # class c: no ground truth
    curve = pr_curves(
        precision, recall_thresholds=recall, iou_thresholds=ious, class_names=["a", "b", "c"]
    )
    assert curve is not None
    assert curve["iou"] == 0.5 and len(curve["recall"]) == 101
    assert set(curve["per_class"]) == {"a", "b"}
    assert curve["per_class"]["a"][50] == 0.8 and curve["per_class"]["a"][51] == 0.0
    assert curve["all"][0] == pytest.approx(0.9) and curve["all"][100] == pytest.approx(0.5)
    none = pr_curves(
        -np.ones((10, 101, 1, 4, 3)), recall_thresholds=recall, iou_thresholds=ious,
        class_names=["x"],
    )  # fmt: skip
    assert none is None


def test_evaluator_writes_the_curve_of_a_half_found_class() -> None:
    """Cat found perfectly; of the two dogs one is found after a higher-scoring false alarm."""
    cat, dog_a, dog_b = GROUND_TRUTH["annotations"]
    evaluator = CocoEvaluator(GROUND_TRUTH, LABELS)
    first = Detections(
        boxes=torch.tensor(
            [_to_model_pixels(0, *cat["bbox"]), _to_model_pixels(0, *dog_a["bbox"]),
             _to_model_pixels(0, 150, 80, 20, 10)]
        ),
        scores=torch.tensor([0.9, 0.8, 0.95]),
        labels=torch.tensor([1, 2, 2]),
    )  # fmt: skip
    second = Detections(
        boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.int64)
    )
    evaluator.process(_batch(), [first, second])
    result = evaluator.evaluate()
    curve = result["pr_curve"]
    assert dog_b["image_id"] == 11 and curve["iou"] == 0.5
    assert curve["per_class"]["cat"] == [1.0] * 101
    dog = curve["per_class"]["dog"]
    # Interpolated precision: 1 false, 1 true of 2 dogs -> 0.5 up to recall 0.5, then nothing.
    assert dog[:51] == [0.5] * 51 and dog[51:] == [0.0] * 50
    assert curve["all"][0] == pytest.approx(0.75) and curve["all"][100] == pytest.approx(0.5)


def test_nothing_detected_gives_a_zero_curve_for_each_class_with_ground_truth() -> None:
    evaluator = CocoEvaluator(GROUND_TRUTH, LABELS)
    nothing = Detections(
        boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.int64)
    )
    evaluator.process(_batch(), [nothing, nothing])
    curve = evaluator.evaluate()["pr_curve"]
    assert curve["recall"][0] == 0.0 and curve["recall"][-1] == 1.0 and len(curve["recall"]) == 101
    assert curve["all"] == [0.0] * 101
    assert sorted(curve["per_class"]) == ["cat", "dog"]
