"""Running a detector over a validation loader (or sliced over full images) into a COCO
evaluator."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.data.transforms import letterbox
from core.evaluation.coco import CocoEvaluator
from core.predict.detections import Detections as NumpyDetections
from core.predict.slicing import SliceOptions, sliced_predict_many
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


@torch.inference_mode()
def evaluate_sliced(
    detector: nn.Module,
    images: Iterable[tuple[int, Image.Image]],
    evaluator: CocoEvaluator,
    *,
    image_size: int,
    slicing: SliceOptions,
    device: torch.device,
    batch_size: int = 8,
    max_detections: int | None = None,
) -> dict[str, Any]:
    """COCO metrics of `detector` by sliced inference on full-size images (data.tile).

    Each image is cut into the grid of core.predict.slicing (the one `distillery predict
    --slice` uses); every tile (and, with `slicing.full_image`, the whole image) is
    letterboxed to `image_size` as in training, the tiles' boxes are moved back into the
    image and merged across tiles, and the merged boxes are scored against the full images'
    ground truth, so the figures are those of a sliced deployment.
    """
    was_training = detector.training
    detector.eval()
    evaluator.reset()

    def predict_many(crops: Sequence[Image.Image]) -> list[NumpyDetections]:
        found: list[NumpyDetections] = []
        for start in range(0, len(crops), batch_size):
            boxed = [
                letterbox(crop, np.zeros((0, 4), np.float32), image_size)
                for crop in crops[start : start + batch_size]
            ]
            pixels = np.stack([lb.image for lb in boxed])  # (B, S, S, 3) uint8
            batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
            output = detector(batch.to(device))
            detections = output.detections if isinstance(output, DetectorOutput) else output
            if detections is None:
                raise RuntimeError("the detector returned no detections in eval mode")
            for lb, dets in zip(boxed, detections, strict=True):
                part = NumpyDetections(
                    boxes=dets["boxes"].detach().float().cpu().numpy().reshape(-1, 4),
                    scores=dets["scores"].detach().float().cpu().numpy().reshape(-1),
                    labels=dets["labels"].detach().cpu().numpy().reshape(-1).astype(np.int64),
                )
                found.append(part.scaled(lb.scale, lb.pad))
        return found

    try:
        for image_id, image in images:
            merged = sliced_predict_many(
                predict_many, image, slicing, max_detections=max_detections
            )
            # boxes already in image pixels: a batch of one with no letterbox to undo
            record = Batch(images=torch.zeros(0), targets=[], image_ids=[image_id], scales=[1.0],
                           pads=[(0, 0)])  # fmt: skip
            evaluator.process(
                record,
                [
                    {
                        "boxes": torch.from_numpy(merged.boxes.reshape(-1, 4)),
                        "scores": torch.from_numpy(merged.scores),
                        "labels": torch.from_numpy(merged.labels),
                    }
                ],
            )
    finally:
        detector.train(was_training)
    return evaluator.evaluate()
