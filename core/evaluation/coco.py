"""COCO box evaluation with pycocotools: COCO's AP figures, AI-TOD's tiny-object size bins,
class-agnostic AP and AP per class."""

from __future__ import annotations

import contextlib
import copy
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.structures import Batch, Detections

COCO_METRIC_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
)
"""COCO's summary metrics, in pycocotools' order (stats[0:6]); values are in [0, 1]."""

TINY_BINS: dict[str, tuple[float, float]] = {
    "AP_very_tiny": (0.0, 8.0),
    "AP_tiny": (8.0, 16.0),
    "AP_small_16": (16.0, 32.0),
}
"""AI-TOD's size bins (Wang et al., ICPR 2020) on sqrt(area) in original pixels: very tiny
below 8 px, tiny 8-16 px, small 16-32 px (COCO's AP_small is everything below 32 px)."""

AGNOSTIC_METRIC = "AP_agnostic"
"""AP at IoU 0.5:0.95 with every class merged into one (a box counts whatever its label)."""

METRIC_NAMES: tuple[str, ...] = (*COCO_METRIC_NAMES, *TINY_BINS, AGNOSTIC_METRIC)
"""Every figure of `evaluate()["bbox"]`; -1 where the ground truth has no such object."""

DEFAULT_MAX_DETECTIONS = 100
"""COCO's cap on the detections scored per image (a detector emitting more raises it)."""

PR_IOU = 0.5
"""The IoU threshold of the precision-recall curves (`pr_curve`)."""

PR_DIGITS = 4
"""Decimals kept of each precision value in `pr_curve` (metrics.json stays small)."""

PR_RECALL_POINTS = 101
"""COCO's recall thresholds 0, 0.01, ..., 1 (pycocotools' `recThrs`)."""


AREA_RANGES: dict[str, tuple[float, float]] = {
    "AP_small": (0.0, 32.0**2),
    "AP_medium": (32.0**2, 96.0**2),
    "AP_large": (96.0**2, 1e5**2),
    **{name: (low**2, high**2) for name, (low, high) in TINY_BINS.items()},
}
"""The area range of each size-restricted figure (the others score every box)."""


def empty_metrics() -> dict[str, Any]:
    """The result of an evaluation that had nothing to score: every AP 0."""
    return {"bbox": dict.fromkeys(METRIC_NAMES, 0.0), "per_class": {}}


def _without_detections(ground_truth: dict[str, Any], image_ids: list[int]) -> dict[str, Any]:
    """What pycocotools gives when nothing was detected: 0, or -1 where no object is scored."""
    wanted = set(image_ids)
    areas = [
        float(ann["area"])
        for ann in ground_truth.get("annotations", [])
        if int(ann["image_id"]) in wanted and not ann.get("iscrowd", 0)
    ]
    bbox = dict.fromkeys(METRIC_NAMES, 0.0 if areas else -1.0)
    for name, (low, high) in AREA_RANGES.items():
        # pycocotools keeps a box whose area lies in [low, high], both ends included.
        bbox[name] = 0.0 if any(low <= area <= high for area in areas) else -1.0
    result: dict[str, Any] = {"bbox": bbox, "per_class": {}}
    # Nothing found: precision 0 at every recall for each class that has ground truth.
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in ground_truth.get("categories", [])}
    present = sorted(
        {
            int(ann["category_id"])
            for ann in ground_truth.get("annotations", [])
            if int(ann["image_id"]) in wanted and not ann.get("iscrowd", 0)
        }
    )
    if present:
        zeros = [0.0] * PR_RECALL_POINTS
        last = PR_RECALL_POINTS - 1
        result["pr_curve"] = {
            "iou": PR_IOU,
            "recall": [round(i / last, PR_DIGITS) for i in range(PR_RECALL_POINTS)],
            "all": list(zeros),
            "per_class": {names.get(c, str(c)): list(zeros) for c in present},
        }
    return result


def _mean_precision(evaluator: Any, *, area: int, category: int | None = None) -> float:
    """Mean precision of one area range at the largest detection cap (-1 if nothing to score).

    The average pycocotools' `summarize` takes for AP: over the IoU thresholds 0.5:0.95,
    the recall thresholds and the categories (or one), ignoring the -1 of absent ground truth.
    """
    precision = evaluator.eval["precision"][:, :, :, area, -1]  # (T, R, K)
    values = precision if category is None else precision[:, :, category]
    values = values[values > -1]
    return float(values.mean()) if values.size else -1.0


def pr_curves(
    precision: np.ndarray,
    *,
    recall_thresholds: Sequence[float],
    iou_thresholds: Sequence[float],
    class_names: Sequence[str],
    iou: float = PR_IOU,
) -> dict[str, Any] | None:
    """Precision at each recall threshold, at IoU `iou`, all areas, the largest detection cap.

    `precision` is pycocotools' accumulated `eval["precision"]`, shaped (T, R, K, A, M); -1
    marks a class without ground truth (left out), 0 a recall the detector never reached.
    `{"iou", "recall": [R], "all": [R] (mean over the classes with ground truth),
    "per_class": {name: [R]}}`, or None when no class has ground truth.
    """
    t = int(np.argmin(np.abs(np.asarray(iou_thresholds, dtype=np.float64) - iou)))
    curves = np.asarray(precision)[t, :, :, 0, -1]  # (R, K)
    per_class: dict[str, list[float]] = {}
    kept = []
    for k, name in enumerate(class_names):
        column = curves[:, k]
        if (column > -1).any():
            kept.append(k)
            per_class[name] = [round(float(v), PR_DIGITS) for v in column.clip(0.0, 1.0)]
    if not kept:
        return None
    mean = curves[:, kept].clip(0.0, 1.0).mean(axis=1)  # (R,)
    return {
        "iou": float(np.asarray(iou_thresholds)[t]),
        "recall": [round(float(r), PR_DIGITS) for r in recall_thresholds],
        "all": [round(float(v), PR_DIGITS) for v in mean],
        "per_class": per_class,
    }


def _clean_ground_truth(gt: dict[str, Any]) -> dict[str, Any]:
    """A copy of a COCO dict with the fields pycocotools needs (area, iscrowd, info)."""
    data = copy.deepcopy(gt)
    data.setdefault("info", {})
    data.setdefault("licenses", [])
    for ann in data.get("annotations", []):
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            _, _, w, h = ann["bbox"]
            ann["area"] = float(w) * float(h)
    return data


class CocoEvaluator:
    """Collects detections batch by batch and scores them against a COCO ground-truth dict."""

    def __init__(self, ground_truth: dict[str, Any], label_to_cat_id: dict[int, int]) -> None:
        self.ground_truth = _clean_ground_truth(ground_truth)
        self.label_to_cat_id = dict(label_to_cat_id)
        self.image_sizes = {
            int(img["id"]): (float(img["width"]), float(img["height"]))
            for img in self.ground_truth.get("images", [])
        }
        self.category_names = {
            int(cat["id"]): str(cat.get("name", cat["id"]))
            for cat in self.ground_truth.get("categories", [])
        }
        self.reset()

    def reset(self) -> None:
        """Forget what was processed."""
        self.results: list[dict[str, Any]] = []
        self.image_ids: list[int] = []

    def process(self, batch: Batch, detections: Sequence[Detections]) -> None:
        """Add one batch's detections (model-pixel boxes) in original image coordinates."""
        for index, (image_id, dets) in enumerate(zip(batch.image_ids, detections, strict=True)):
            image_id = int(image_id)
            self.image_ids.append(image_id)
            boxes = dets["boxes"].detach().float().cpu().numpy().reshape(-1, 4)
            if boxes.size == 0:
                continue
            scale = float(batch.scales[index]) if batch.scales else 1.0
            pad_x, pad_y = batch.pads[index] if batch.pads else (0, 0)
            # Undo the letterbox: remove the padding, then the resize.
            boxes = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)) / scale
            if image_id in self.image_sizes:
                width, height = self.image_sizes[image_id]
                boxes[:, 0::2] = boxes[:, 0::2].clip(0.0, width)
                boxes[:, 1::2] = boxes[:, 1::2].clip(0.0, height)
            scores = dets["scores"].detach().float().cpu().numpy().reshape(-1)
            labels = dets["labels"].detach().cpu().numpy().reshape(-1)
            for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels, strict=True):
                cat_id = self.label_to_cat_id.get(int(label))
                if cat_id is None or x2 <= x1 or y2 <= y1:
                    continue
                self.results.append(
                    {
                        "image_id": image_id,
                        "category_id": cat_id,
                        "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                        "score": float(score),
                    }
                )

    def max_detections(self) -> int:
        """The per-image cap COCOeval scores at: 100, or more when a detector emitted more."""
        counts = Counter(int(result["image_id"]) for result in self.results)
        return max(DEFAULT_MAX_DETECTIONS, max(counts.values(), default=0))

    def evaluate(self) -> dict[str, Any]:
        """`{"bbox": {METRIC_NAMES}, "per_class": {name: AP}, "pr_curve": ...}`; -1 where GT
        has no such object.

        COCO's six figures, AI-TOD's size bins (`TINY_BINS`) and the class-agnostic AP, all at
        the detection cap `max_detections()`; `pr_curve` (`pr_curves`) at IoU 0.5 on 101 recall
        points, for all classes and each (absent when nothing was detected or scored).
        """
        image_ids = sorted(set(self.image_ids))
        if not image_ids:
            return empty_metrics()
        if not self.results:
            return _without_detections(self.ground_truth, image_ids)
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        cap = self.max_detections()
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
            coco_gt = COCO()
            coco_gt.dataset = self.ground_truth
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(copy.deepcopy(self.results))
            evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
            evaluator.params.imgIds = image_ids
            evaluator.params.maxDets = [1, 10, cap]
            # COCO's four area ranges first (summarize looks them up by label), then the bins.
            evaluator.params.areaRng = [
                *evaluator.params.areaRng,
                *(list(AREA_RANGES[name]) for name in TINY_BINS),
            ]
            evaluator.params.areaRngLbl = [*evaluator.params.areaRngLbl, *TINY_BINS]
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            agnostic = COCOeval(coco_gt, coco_dt, iouType="bbox")
            agnostic.params.imgIds = image_ids
            agnostic.params.maxDets = [1, 10, cap]
            agnostic.params.areaRng = agnostic.params.areaRng[:1]
            agnostic.params.areaRngLbl = agnostic.params.areaRngLbl[:1]
            agnostic.params.useCats = 0
            agnostic.evaluate()
            agnostic.accumulate()
        stats = [float(v) for v in evaluator.stats[: len(COCO_METRIC_NAMES)]]
        bbox = dict(zip(COCO_METRIC_NAMES, stats, strict=True))
        first_bin = len(evaluator.params.areaRng) - len(TINY_BINS)
        for index, name in enumerate(TINY_BINS):
            bbox[name] = _mean_precision(evaluator, area=first_bin + index)
        bbox[AGNOSTIC_METRIC] = _mean_precision(agnostic, area=0)
        # Mean AP over IoU 0.5:0.95 of each category.
        per_class: dict[str, float] = {}
        names = []
        for k, cat_id in enumerate(evaluator.params.catIds):
            name = self.category_names.get(int(cat_id), str(cat_id))
            names.append(name)
            per_class[name] = _mean_precision(evaluator, area=0, category=k)
        result: dict[str, Any] = {"bbox": bbox, "per_class": per_class}
        curve = pr_curves(
            evaluator.eval["precision"],
            recall_thresholds=evaluator.params.recThrs,
            iou_thresholds=evaluator.params.iouThrs,
            class_names=names,
        )
        if curve is not None:
            result["pr_curve"] = curve
        return result
