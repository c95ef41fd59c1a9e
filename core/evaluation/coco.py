"""COCO box evaluation with pycocotools: AP, AP50, AP75, AP_small/medium/large and per class."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.structures import Batch, Detections

METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
"""The summary metrics, in pycocotools' order (stats[0:6]); values are in [0, 1]."""


def empty_metrics() -> dict[str, Any]:
    """The result of an evaluation that had nothing to score: every AP 0."""
    return {"bbox": dict.fromkeys(METRIC_NAMES, 0.0), "per_class": {}}


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

    def evaluate(self) -> dict[str, Any]:
        """`{"bbox": {AP, AP50, ...}, "per_class": {name: AP}}`; -1 where GT has no such objects."""
        image_ids = sorted(set(self.image_ids))
        if not self.results or not image_ids:
            return empty_metrics()
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
            coco_gt = COCO()
            coco_gt.dataset = self.ground_truth
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(copy.deepcopy(self.results))
            evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        stats = [float(v) for v in evaluator.stats[: len(METRIC_NAMES)]]
        bbox = dict(zip(METRIC_NAMES, stats, strict=True))
        # Mean AP over IoU 0.5:0.95 of each category: precision is (T, R, K, A, M).
        precision = evaluator.eval["precision"]
        per_class: dict[str, float] = {}
        for k, cat_id in enumerate(evaluator.params.catIds):
            values = precision[:, :, k, 0, -1]
            values = values[values > -1]
            name = self.category_names.get(int(cat_id), str(cat_id))
            per_class[name] = float(values.mean()) if values.size else -1.0
        return {"bbox": bbox, "per_class": per_class}
