"""Box arithmetic in numpy (x1 y1 x2 y2): overlaps, NMS and greedy merging.

`nms` follows torchvision's CPU kernel (scores sorted stably, highest first; a box is
suppressed when its IoU with a kept one is > the threshold), so a detector's detections come
out the same as torchvision's. Matching by IoS (intersection over the smaller box) is what
merging tiles needs: a box cut by a tile border lies inside the whole box of the neighbour.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

MatchMetric = Literal["iou", "ios"]


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N,) areas of (N, 4) boxes (0 for degenerate ones)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def overlaps(box: np.ndarray, others: np.ndarray, metric: MatchMetric = "iou") -> np.ndarray:
    """(M,) IoU or IoS of one (4,) box with (M, 4) boxes."""
    others = np.asarray(others, dtype=np.float32).reshape(-1, 4)
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = box_areas(box[None])[0]
    other_areas = box_areas(others)
    if metric == "ios":
        smaller = np.minimum(area, other_areas)
        return np.where(smaller > 0, inter / np.maximum(smaller, 1e-12), 0.0)
    union = area + other_areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties in their original order (torch's stable sort)."""
    return np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, *, metric: MatchMetric = "iou"
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    order = score_order(scores)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    for position, index in enumerate(order):
        if suppressed[index]:
            continue
        keep.append(int(index))
        rest = order[position + 1 :]
        rest = rest[~suppressed[rest]]
        if len(rest):
            suppressed[rest[overlaps(boxes[index], boxes[rest], metric) > threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    *,
    metric: MatchMetric = "iou",
) -> np.ndarray:
    """NMS within each label; kept indices over all labels, highest score first."""
    labels = np.asarray(labels)
    kept = [
        np.flatnonzero(labels == label)[
            nms(boxes[labels == label], scores[labels == label], threshold, metric=metric)
        ]
        for label in np.unique(labels)
    ]
    if not kept:
        return np.zeros(0, dtype=np.int64)
    merged = np.concatenate(kept)
    return merged[score_order(np.asarray(scores)[merged])]


def greedy_nmm(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    *,
    metric: MatchMetric = "ios",
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum merging (SAHI): per label, the best box absorbs those it matches.

    Returns the indices of the kept boxes (highest score first) and their merged boxes (the
    union of each kept box with the boxes it absorbed); scores stay those of the kept boxes.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels)
    keep: list[int] = []
    merged: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[score_order(np.asarray(scores)[members])]
        used = np.zeros(len(order), dtype=bool)
        for position, index in enumerate(order):
            if used[position]:
                continue
            used[position] = True
            union = boxes[index].copy()
            candidates = np.flatnonzero(~used)
            candidates = candidates[candidates > position]
            if len(candidates):
                matched = candidates[
                    overlaps(boxes[index], boxes[order[candidates]], metric) > threshold
                ]
                used[matched] = True
                for other in boxes[order[matched]]:
                    union[:2] = np.minimum(union[:2], other[:2])
                    union[2:] = np.maximum(union[2:], other[2:])
            keep.append(int(index))
            merged.append(union)
    if not keep:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.float32)
    kept = np.asarray(keep, dtype=np.int64)
    order = score_order(np.asarray(scores)[kept])
    return kept[order], np.stack(merged)[order]
