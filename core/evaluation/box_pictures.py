"""Pictures of predicted boxes coloured by outcome: true positive, false positive, missed.

A detection is a true positive when it overlaps an unmatched ground-truth box of its class
with IoU >= 0.5 (greedily, best score first, as COCO matches); ground truth left unmatched
is missed. Drawn on the val images with the most small objects, one tile per model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.ops import box_iou

from core.evaluation.pictures import PictureSample, caption, draw_boxes, image_tile
from core.structures import DetectorOutput

IOU_THRESHOLD = 0.5
MIN_SCORE = 0.3
"""Detections drawn: those scoring at least this (the evaluation's 0.05 would bury the image)."""

SIDE = 384
"""Side of one model's tile: small objects need more pixels than the attention tiles."""

TRUE_POSITIVE = (0, 220, 0)
FALSE_POSITIVE = (255, 40, 40)
MISSED = (255, 200, 0)


@dataclass(frozen=True)
class Outcomes:
    """Which detections are true positives and which ground-truth boxes were found."""

    true_positive: Tensor  # (D,) bool
    found: Tensor  # (M,) bool

    @property
    def counts(self) -> tuple[int, int, int]:
        """(true positives, false positives, missed)."""
        tp = int(self.true_positive.sum())
        return tp, int(self.true_positive.numel()) - tp, int((~self.found).sum())


def match_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    *,
    iou_threshold: float = IOU_THRESHOLD,
) -> Outcomes:
    """Greedy class-aware matching, best score first: each GT box is matched at most once."""
    true_positive = torch.zeros(boxes.shape[0], dtype=torch.bool)
    found = torch.zeros(gt_boxes.shape[0], dtype=torch.bool)
    if boxes.numel() == 0 or gt_boxes.numel() == 0:
        return Outcomes(true_positive, found)
    ious = box_iou(boxes.float().cpu(), gt_boxes.float().cpu())  # (D, M)
    same_class = labels.cpu()[:, None] == gt_labels.cpu()[None, :]
    for d in torch.argsort(scores.cpu(), descending=True).tolist():
        candidates = torch.where(same_class[d] & ~found, ious[d], torch.full_like(ious[d], -1.0))
        best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            found[best] = True
            true_positive[d] = True
    return Outcomes(true_positive, found)


@torch.inference_mode()
def _detections(model: nn.Module, image: Tensor, device: torch.device) -> dict[str, Tensor]:
    output = model(image[None].to(device))
    detections = output.detections if isinstance(output, DetectorOutput) else output
    if not detections:
        raise RuntimeError("the detector returned no detections in eval mode")
    found = detections[0]
    return {name: found[name].detach().cpu() for name in ("boxes", "scores", "labels")}


def outcome_tile(
    sample: PictureSample,
    detections: dict[str, Tensor],
    *,
    title: str,
    min_score: float = MIN_SCORE,
    side: int = SIDE,
) -> tuple[Image.Image, Outcomes]:
    """One model's tile: missed GT in amber, true positives green, false positives red."""
    keep = detections["scores"] >= min_score
    boxes, scores = detections["boxes"][keep], detections["scores"][keep]
    labels = detections["labels"][keep]
    outcomes = match_detections(boxes, scores, labels, sample.boxes, sample.labels)
    image_size = int(sample.image.shape[-1])
    tile = image_tile(sample.image, side)
    draw_boxes(tile, sample.boxes[~outcomes.found], image_size, MISSED)
    draw_boxes(tile, boxes[~outcomes.true_positive], image_size, FALSE_POSITIVE)
    draw_boxes(tile, boxes[outcomes.true_positive], image_size, TRUE_POSITIVE)
    tp, fp, missed = outcomes.counts
    caption(tile, f"{title}: {tp} TP, {fp} FP, {missed} missed (score >= {min_score:g})")
    return tile, outcomes


def box_pictures(
    *,
    models: Sequence[tuple[str, nn.Module]],
    samples: Sequence[PictureSample],
    out_dir: Path,
    device: torch.device,
    min_score: float = MIN_SCORE,
) -> list[Path]:
    """PNGs `boxes_NN.png`, one per sample: the models' tiles side by side, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    modes = [(model, model.training) for _, model in models]
    paths = []
    try:
        for _, model in models:
            model.eval()
        for number, sample in enumerate(samples, start=1):
            tiles = [
                outcome_tile(
                    sample,
                    _detections(model, sample.image, device),
                    title=role,
                    min_score=min_score,
                )[0]
                for role, model in models
            ]
            canvas = Image.new("RGB", (SIDE * len(tiles), SIDE), (32, 32, 32))
            for index, tile in enumerate(tiles):
                canvas.paste(tile, (index * SIDE, 0))
            path = out_dir / f"boxes_{number:02d}.png"
            canvas.save(path)
            paths.append(path)
    finally:
        for model, mode in modes:
            model.train(mode)
    return paths
