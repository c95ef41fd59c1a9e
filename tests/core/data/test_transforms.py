"""Transforms keep boxes right: letterbox, flip, colour jitter, small-object copy-paste."""

from __future__ import annotations

import numpy as np

from core.data.transforms import (
    PAD_VALUE,
    color_jitter,
    copy_paste_small,
    hflip,
    letterbox,
    unletterbox_boxes,
)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 60x100 black image with a white 10x20 rectangle at x 20..40, y 10..20."""
    image = np.zeros((60, 100, 3), dtype=np.uint8)
    image[10:20, 20:40] = 255
    return image, np.array([[20, 10, 40, 20]], dtype=np.float32)


def test_letterbox_scales_pads_and_moves_boxes() -> None:
    image, boxes = _scene()
    lb = letterbox(image, boxes, 50)
    assert lb.image.shape == (50, 50, 3)
    assert lb.scale == 0.5 and lb.pad == (0, 10)  # 100x60 -> 50x30, centred vertically
    np.testing.assert_allclose(lb.boxes, [[10, 15, 20, 20]])
    x1, y1, x2, y2 = lb.boxes[0].astype(int)
    assert lb.image[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].min() > 200  # the box holds the object
    assert (lb.image[:10] == PAD_VALUE).all() and (lb.image[40:] == PAD_VALUE).all()
    np.testing.assert_allclose(unletterbox_boxes(lb.boxes, lb.scale, lb.pad), boxes)


def test_letterbox_with_source_size_of_a_smaller_decode() -> None:
    image, boxes = _scene()
    half = image[::2, ::2]  # as a JPEG draft decode would give
    lb = letterbox(half, boxes, 50, source_size=(100, 60))
    np.testing.assert_allclose(lb.boxes, [[10, 15, 20, 20]])


def test_hflip_mirrors_boxes_with_pixels() -> None:
    image, boxes = _scene()
    flipped, fboxes = hflip(image, boxes)
    np.testing.assert_allclose(fboxes, [[60, 10, 80, 20]])
    assert flipped[10:20, 60:80].min() == 255
    assert flipped[:, :60].max() == 0 and flipped[:, 80:].max() == 0


def test_color_jitter_changes_pixels_not_shape() -> None:
    image, _ = _scene()
    rng = np.random.default_rng(0)
    out = color_jitter(image + 40, 0.5, rng, region=(0, 0, 50, 60))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out[:, :50], (image + 40)[:, :50])
    assert np.array_equal(out[:, 50:], (image + 40)[:, 50:])  # outside the region untouched


def test_copy_paste_adds_boxes_on_pasted_pixels() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 50, size=(96, 96, 3), dtype=np.uint8)
    pattern = rng.integers(100, 255, size=(8, 12, 3), dtype=np.uint8)
    image[20:28, 30:42] = pattern
    boxes = np.array([[30, 20, 42, 28], [50, 50, 95, 95]], dtype=np.float32)  # small, large
    labels = np.array([2, 1])
    out, new_boxes, new_labels = copy_paste_small(
        image, boxes, labels, rng, max_objects=3, region=(0, 0, 96, 96)
    )
    assert len(new_boxes) == len(new_labels) > 2
    np.testing.assert_array_equal(new_boxes[:2], boxes)
    for box, label in zip(new_boxes[2:], new_labels[2:], strict=True):
        x1, y1, x2, y2 = box.astype(int)
        assert label == 2  # only the small object is copied
        np.testing.assert_array_equal(out[y1:y2, x1:x2], pattern)
        # pasted boxes overlap no other box
        for other in new_boxes:
            if other is box or np.array_equal(other, box):
                continue
            overlap = min(x2, other[2]) - max(x1, other[0]), min(y2, other[3]) - max(y1, other[1])
            assert overlap[0] <= 0 or overlap[1] <= 0
    # outside the pasted boxes the image is unchanged
    mask = np.ones((96, 96), dtype=bool)
    for x1, y1, x2, y2 in new_boxes[2:].astype(int):
        mask[y1:y2, x1:x2] = False
    np.testing.assert_array_equal(out[mask], image[mask])


def test_copy_paste_stays_inside_region_and_skips_without_small_objects() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[30:36, 30:36] = 200
    boxes = np.array([[30, 30, 36, 36]], dtype=np.float32)
    _, new_boxes, _ = copy_paste_small(image, boxes, np.array([1]), rng, region=(0, 16, 64, 48))
    assert len(new_boxes) > 1
    assert (new_boxes[:, 1] >= 16).all() and (new_boxes[:, 3] <= 48).all()
    big = np.array([[0, 0, 60, 60]], dtype=np.float32)
    out, same, _ = copy_paste_small(image, big, np.array([1]), rng)
    assert len(same) == 1 and np.array_equal(out, image)
