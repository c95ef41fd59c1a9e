"""Predicted boxes coloured true positive / false positive / missed at IoU 0.5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from core.evaluation.box_pictures import (
    FALSE_POSITIVE,
    MISSED,
    SIDE,
    TRUE_POSITIVE,
    box_pictures,
    match_detections,
)
from core.evaluation.pictures import PictureSample
from core.structures import Detections, DetectorOutput

GT_BOXES = torch.tensor([[4.0, 4.0, 14.0, 14.0], [30.0, 30.0, 40.0, 40.0], [50.0, 4.0, 60.0, 12.0]])
GT_LABELS = torch.tensor([1, 1, 2])


def test_greedy_class_aware_matching() -> None:
    boxes = torch.tensor(
        [
            [5.0, 5.0, 14.0, 14.0],  # on GT 0 (IoU 0.81): TP
            [4.0, 4.0, 13.0, 13.0],  # also on GT 0, lower score: FP (GT 0 taken)
            [50.0, 4.0, 60.0, 12.0],  # on GT 2 but class 1: FP, GT 2 missed
            [30.0, 30.0, 34.0, 34.0],  # on GT 1 with IoU 0.16: FP
        ]
    )
    outcomes = match_detections(
        boxes, torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 1, 1, 1]), GT_BOXES, GT_LABELS
    )
    assert outcomes.true_positive.tolist() == [True, False, False, False]
    assert outcomes.found.tolist() == [True, False, False]
    assert outcomes.counts == (1, 3, 2)
    # The better-scored of two candidates wins, whatever their order.
    swapped = match_detections(
        boxes[:2], torch.tensor([0.1, 0.9]), torch.tensor([1, 1]), GT_BOXES, GT_LABELS
    )
    assert swapped.true_positive.tolist() == [False, True]


class FixedDetector(nn.Module):
    """Always the same detections: one true positive on GT 0, one false positive."""

    def forward(self, images: Tensor) -> DetectorOutput:
        found = Detections(
            boxes=torch.tensor([[4.0, 4.0, 14.0, 14.0], [20.0, 50.0, 28.0, 60.0]]),
            scores=torch.tensor([0.9, 0.8]),
            labels=torch.tensor([1, 1]),
        )
        return DetectorOutput(features={}, detections=[found] * images.shape[0])


def _colour_present(picture: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((np.abs(picture.astype(int) - np.array(colour)).sum(axis=-1) < 30).any())


def test_pictures_show_each_outcome_in_its_colour(tmp_path: Path) -> None:
    sample = PictureSample(
        image=torch.zeros(3, 64, 64), boxes=GT_BOXES, labels=GT_LABELS, image_id=3, small_objects=3
    )
    paths = box_pictures(
        models=[("teacher", FixedDetector()), ("student", FixedDetector())],
        samples=[sample],
        out_dir=tmp_path,
        device=torch.device("cpu"),
    )
    assert [p.name for p in paths] == ["boxes_01.png"]
    with Image.open(paths[0]) as picture:
        assert picture.size == (2 * SIDE, SIDE)
        pixels = np.asarray(picture.convert("RGB"))
    student = pixels[:, SIDE:]
    for colour in (TRUE_POSITIVE, FALSE_POSITIVE, MISSED):
        assert _colour_present(student, colour), colour
