"""Running a detector over a validation loader into a COCO evaluator."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from core.evaluation.coco import CocoEvaluator
from core.structures import Batch, DetectorOutput


@torch.inference_mode()
def evaluate_detector(
    detector: nn.Module,
    loader: Iterable[Batch],
    evaluator: CocoEvaluator,
    *,
    device: torch.device,
) -> dict[str, Any]:
    """COCO metrics of `detector` (eval mode) on every batch of `loader`."""
    was_training = detector.training
    detector.eval()
    evaluator.reset()
    try:
        for batch in loader:
            images = batch.images.to(device)
            output = detector(images)
            detections = output.detections if isinstance(output, DetectorOutput) else output
            if detections is None:
                raise RuntimeError("the detector returned no detections in eval mode")
            evaluator.process(batch, detections)
    finally:
        detector.train(was_training)
    return evaluator.evaluate()
