"""NMS as torchvision's, greedy merging and the IoS that tile merging matches by."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import batched_nms as tv_batched_nms

from core.predict.boxes import batched_nms, greedy_nmm, overlaps


def _random_boxes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, size=(count, 2))
    wh = rng.uniform(2, 30, size=(count, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return boxes, rng.random(count).astype(np.float32), rng.integers(0, 3, count)


def test_batched_nms_is_torchvisions() -> None:
    for seed in range(3):
        boxes, scores, labels = _random_boxes(300, seed)
        expected = tv_batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.5
        ).numpy()
        got = batched_nms(boxes, scores, labels, 0.5)
        assert 0 < len(got) < len(boxes)
        assert np.array_equal(got, expected)


def test_ios_of_a_box_inside_another_is_one() -> None:
    whole = np.array([10, 10, 50, 30], dtype=np.float32)
    half = np.array([[10, 10, 30, 30]], dtype=np.float32)
    assert overlaps(whole, half, "ios")[0] == 1.0
    assert abs(overlaps(whole, half, "iou")[0] - 0.5) < 1e-6


def test_greedy_merging_unites_matched_boxes_of_one_label() -> None:
    boxes = np.array(
        [[10, 10, 50, 30], [40, 10, 60, 30], [12, 12, 48, 28], [100, 100, 120, 120]],
        dtype=np.float32,
    )
    scores = np.array([0.9, 0.6, 0.8, 0.7], dtype=np.float32)
    labels = np.array([1, 1, 2, 1])
    keep, merged = greedy_nmm(boxes, scores, labels, 0.4, metric="ios")
    # Box 1 (IoS 0.5 with box 0) is absorbed into box 0; box 2 has another label.
    assert keep.tolist() == [0, 2, 3]
    assert merged[0].tolist() == [10, 10, 60, 30]
    assert merged[1].tolist() == boxes[2].tolist()
