"""Statistics: COCO size buckets and the size histogram on known boxes."""

from __future__ import annotations

import json

from core.data.stats import dataset_statistics, merge_splits, size_bucket, text_histogram


def _coco(boxes: list[tuple[float, float]], with_area: bool = False) -> dict:
    anns = []
    for i, (w, h) in enumerate(boxes):
        ann = {"id": i + 1, "image_id": 1, "category_id": 1 + i % 2, "bbox": [0, 0, w, h]}
        if with_area:
            ann["area"] = w * h
        anns.append(ann)
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 500, "height": 400},
            {"id": 2, "file_name": "b.jpg", "width": 300, "height": 200},
        ],
        "annotations": anns,
        "categories": [
            {"id": 1, "name": "cat"},
            {"id": 2, "name": "dog"},
            {"id": 3, "name": "eel"},
        ],
    }


def test_buckets_follow_coco_area_ranges() -> None:
    assert size_bucket(31.9**2) == "small"
    assert size_bucket(32**2) == "medium"
    assert size_bucket(95.9**2) == "medium"
    assert size_bucket(96**2) == "large"
    # 10x10 small, 31x33 (1023 px) small, 32x32 medium, 50x100 medium, 96x96 large, 200x10 medium
    boxes = [(10, 10), (31, 33), (32, 32), (50, 100), (96, 96), (200, 10)]
    stats = dataset_statistics(_coco(boxes))
    assert stats["size_buckets"] == {"small": 2, "medium": 3, "large": 1}
    assert stats["images"] == 2 and stats["annotations"] == 6 and stats["categories"] == 3
    assert stats["boxes_per_class"] == {"cat": 3, "dog": 3, "eel": 0}
    assert stats["size_buckets_per_class"]["cat"] == {"small": 1, "medium": 1, "large": 1}
    assert stats["images_without_boxes"] == 1
    assert (stats["small_threshold"], stats["medium_threshold"]) == (32, 96)
    json.dumps(stats)  # JSON-able


def test_histogram_counts_sqrt_area() -> None:
    stats = dataset_statistics(_coco([(4, 4), (10, 10), (10, 10), (30, 30), (1000, 1000)], True))
    hist = stats["size_histogram"]
    edges, counts = hist["edges"], hist["counts"]
    assert len(counts) == len(edges) - 1 and sum(counts) == 5
    assert counts[edges.index(4)] == 1  # sqrt = 4 lies in [4, 8)
    assert counts[edges.index(8)] == 2  # sqrt = 10 lies in [8, 12)
    assert counts[edges.index(24)] == 1  # sqrt = 30 lies in [24, 32)
    assert edges[-1] > 1000 and counts[-1] == 1
    lines = text_histogram(hist)
    assert lines[0].strip().startswith("4-8") and lines[-1].endswith("#" * round(40 / 2))


def test_merge_counts_shared_voc_images_once() -> None:
    train = _coco([(10, 10), (20, 20)])
    val = {**_coco([(50, 50)]), "images": [{"id": 2, "file_name": "b.jpg"}]}
    for ann in val["annotations"]:
        ann["image_id"] = 2
    trainval = {**train, "images": train["images"], "annotations": train["annotations"]}
    merged = merge_splits({"train": train, "val": val, "trainval": trainval}, shared_ids=True)
    assert len(merged["images"]) == 2 and len(merged["annotations"]) == 2
    assert len(merge_splits({"train": train, "trainval": trainval})["annotations"]) == 4
