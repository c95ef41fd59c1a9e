"""Dense head outputs -> detections, in numpy, step for step as torchvision's heads do it.

The head outputs are those of `Detector.raw_outputs` and of the exported ONNX (the same
names): `cls_logits` (N, A, K+1), `bbox_regression` (N, A, 4), FCOS also `bbox_ctrness`
(N, A, 1), with A = sum over levels of H*W*anchors. Per level: score = sigmoid(logit)
(FCOS: sqrt(sigmoid(logit) * sigmoid(centerness))), kept above the score threshold, the best
`topk_candidates`, decoded on their anchors (RetinaNet: deltas (dx, dy, log dw, log dh) with
weights 1 and log-sizes clipped at log(1000/16); FCOS: left, top, right, bottom distances
times the anchor size), clipped to the image; then class-wise NMS over all levels, the best
`detections_per_image`, and last the background column 0 dropped, like `Detector.forward`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.predict.anchors import AnchorLayout, anchor_layout, level_anchors
from core.predict.boxes import batched_nms, score_order
from core.predict.detections import Detections
from core.predict.errors import PredictError
from core.predict.metadata import ModelMeta

BBOX_XFORM_CLIP = math.log(1000.0 / 16)
"""torchvision's BoxCoder clip of the log-size deltas."""


@dataclass(frozen=True)
class PostprocessOptions:
    """The post-processing knobs (defaults: the model's own, from its metadata)."""

    score_threshold: float
    detections_per_image: int
    nms_threshold: float
    topk_candidates: int

    @classmethod
    def of(
        cls,
        meta: ModelMeta,
        *,
        score_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> PostprocessOptions:
        """The model's defaults, with the score threshold and detection cap overridden."""
        if score_threshold is not None and not 0.0 <= score_threshold < 1.0:
            raise PredictError(f"score threshold {score_threshold} is not in [0, 1)")
        if max_detections is not None and max_detections < 1:
            raise PredictError(f"max detections {max_detections} is not positive")
        return cls(
            score_threshold=meta.score_threshold if score_threshold is None else score_threshold,
            detections_per_image=(
                meta.detections_per_image if max_detections is None else max_detections
            ),
            nms_threshold=meta.family_nms_threshold,
            topk_candidates=meta.topk_candidates,
        )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float32)


def decode_retinanet(deltas: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(M, 4) boxes from (M, 4) deltas on (M, 4) anchors (BoxCoder weights 1, 1, 1, 1)."""
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + np.float32(0.5) * widths
    ctr_y = anchors[:, 1] + np.float32(0.5) * heights
    dw = np.minimum(deltas[:, 2], np.float32(BBOX_XFORM_CLIP))
    dh = np.minimum(deltas[:, 3], np.float32(BBOX_XFORM_CLIP))
    pred_ctr_x = deltas[:, 0] * widths + ctr_x
    pred_ctr_y = deltas[:, 1] * heights + ctr_y
    half_w = np.float32(0.5) * (np.exp(dw) * widths)
    half_h = np.float32(0.5) * (np.exp(dh) * heights)
    boxes = [pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h]
    return np.stack(boxes, axis=1).astype(np.float32)


def decode_fcos(distances: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(M, 4) boxes from (M, 4) left/top/right/bottom distances in anchor sizes (FCOS)."""
    ctr_x = np.float32(0.5) * (anchors[:, 0] + anchors[:, 2])
    ctr_y = np.float32(0.5) * (anchors[:, 1] + anchors[:, 3])
    w = anchors[:, 2] - anchors[:, 0]
    h = anchors[:, 3] - anchors[:, 1]
    scaled = distances * np.stack([w, h, w, h], axis=1)
    boxes = [ctr_x - scaled[:, 0], ctr_y - scaled[:, 1], ctr_x + scaled[:, 2], ctr_y + scaled[:, 3]]
    return np.stack(boxes, axis=1).astype(np.float32)


class DensePostprocessor:
    """Turns one image's dense head outputs into detections in model pixels."""

    def __init__(self, meta: ModelMeta, layout: AnchorLayout | None = None) -> None:
        self.meta = meta
        self.layout = layout or anchor_layout(meta)
        self.anchors = level_anchors(self.layout, meta.image_size)
        self.per_level = [len(a) for a in self.anchors]

    def check(self, outputs: Mapping[str, np.ndarray], *, source: str) -> None:
        """PredictError naming what is off when the outputs do not fit the metadata."""
        needed = ["cls_logits", "bbox_regression"]
        if self.meta.family == "fcos":
            needed.append("bbox_ctrness")
        missing = [name for name in needed if name not in outputs]
        if missing:
            raise PredictError(f"{source}: the model has no output {', '.join(missing)}")
        logits = outputs["cls_logits"]
        expected = (sum(self.per_level), self.meta.num_classes)
        if logits.ndim != 3 or tuple(logits.shape[1:]) != expected:
            raise PredictError(
                f"{source}: cls_logits has shape {tuple(logits.shape)}, but a {self.meta.arch} "
                f"at {self.meta.image_size} px with num_classes {self.meta.num_classes} gives "
                f"(N, {expected[0]}, {expected[1]}): the metadata does not describe this model"
            )

    def __call__(
        self, outputs: Mapping[str, np.ndarray], options: PostprocessOptions, *, index: int = 0
    ) -> Detections:
        """Detections of image `index` of the batch, labels 1..K, in model pixels."""
        logits = np.asarray(outputs["cls_logits"][index], dtype=np.float32)
        regression = np.asarray(outputs["bbox_regression"][index], dtype=np.float32)
        ctrness = (
            np.asarray(outputs["bbox_ctrness"][index], dtype=np.float32)
            if self.meta.family == "fcos"
            else None
        )
        size = float(self.meta.image_size)
        all_boxes, all_scores, all_labels = [], [], []
        start = 0
        for anchors, count in zip(self.anchors, self.per_level, strict=True):
            level = slice(start, start + count)
            start += count
            level_logits = logits[level]
            num_classes = level_logits.shape[-1]
            if ctrness is None:
                scores = _sigmoid(level_logits)
            else:
                scores = np.sqrt(_sigmoid(level_logits) * _sigmoid(ctrness[level]))
            scores = scores.reshape(-1)
            candidates = np.flatnonzero(scores > options.score_threshold)
            best = score_order(scores[candidates])[: options.topk_candidates]
            candidates = candidates[best]
            anchor_index = candidates // num_classes
            decode = decode_fcos if ctrness is not None else decode_retinanet
            boxes = decode(regression[level][anchor_index], anchors[anchor_index])
            all_boxes.append(np.clip(boxes, 0.0, size))
            all_scores.append(scores[candidates])
            all_labels.append(candidates % num_classes)
        boxes = np.concatenate(all_boxes).astype(np.float32)
        scores = np.concatenate(all_scores).astype(np.float32)
        labels = np.concatenate(all_labels).astype(np.int64)
        keep = batched_nms(boxes, scores, labels, options.nms_threshold)
        keep = keep[: options.detections_per_image]
        keep = keep[labels[keep] > 0]
        return Detections(boxes=boxes[keep], scores=scores[keep], labels=labels[keep])
