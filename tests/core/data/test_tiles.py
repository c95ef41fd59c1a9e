"""Tiled training (data.tile): the chip grid, boxes clipped to chips with min_visibility,
training chips drawn per sample, the grid of validation chips, the spec's checks, the
teacher-feature cache refused, and the dataset warnings at a job's real sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from core.data.dataset_warnings import MIN_OBJECT_PX
from core.data.loader import DetectionDataset, build_loaders, open_dataset
from core.data.tiles import chip_index, chip_of, choose_chip, image_chips
from core.distill.feature_cache import cache_refusal
from core.predict.slicing import tile_windows, window_boxes
from core.spec import DataSpec, JobSpec, TileSpec


def test_the_chip_grid_covers_every_pixel() -> None:
    for width, height, size, overlap in [(128, 128, 64, 0.0), (130, 97, 64, 0.25),
                                         (64, 200, 64, 0.5), (40, 30, 64, 0.2)]:  # fmt: skip
        windows = tile_windows(width, height, size, overlap)
        covered = np.zeros((height, width), dtype=bool)
        for x1, y1, x2, y2 in windows:
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert x2 - x1 == min(size, width) and y2 - y1 == min(size, height)
            covered[y1:y2, x1:x2] = True
        assert covered.all(), (width, height, size, overlap)
    # the validation index lists every chip of every image, image by image
    tile = TileSpec(size=64, overlap=0.0)
    index = chip_index([(128, 128), (64, 64)], tile)
    assert [i for i, _ in index] == [0, 0, 0, 0, 1]
    assert index[-1] == (1, (0, 0, 64, 64))


def test_a_box_cut_by_a_chip_border_is_clipped_in_one_chip_and_dropped_in_the_other() -> None:
    boxes = np.array([[50.0, 10.0, 70.0, 20.0]])  # 14 of its 20 px left of x = 64, 6 right
    labels = np.array([3])
    tile = TileSpec(size=64, overlap=0.0, min_visibility=0.5)
    chips = image_chips(128, 128, boxes, labels, tile)
    left, right = chips[0], chips[1]
    assert (left.window, right.window) == ((0, 0, 64, 64), (64, 0, 128, 64))
    np.testing.assert_allclose(left.boxes, [[50.0, 10.0, 64.0, 20.0]])  # clipped, chip pixels
    assert left.labels.tolist() == [3]
    assert len(right.boxes) == 0 and len(right.labels) == 0  # 30 % visible < 50 %
    assert all(len(chip.boxes) == 0 for chip in chips[2:])
    # with a lower bar the sliver is kept too, clipped and moved into the right chip's pixels
    low = chip_of(boxes, labels, (64, 0, 128, 64), TileSpec(size=64, min_visibility=0.25))
    np.testing.assert_allclose(low.boxes, [[0.0, 10.0, 6.0, 20.0]])
    # a box wholly inside is kept as it is; one wholly outside never
    moved, keep = window_boxes(np.array([[70.0, 70.0, 80.0, 90.0], [0, 0, 5, 5]]),
                               (64, 64, 128, 128), min_visibility=1.0)  # fmt: skip
    assert keep.tolist() == [0]
    np.testing.assert_allclose(moved, [[6.0, 6.0, 16.0, 26.0]])


def test_training_chips_hold_a_box_unless_the_empty_rate_draws_one_without() -> None:
    boxes = np.array([[100.0, 100.0, 110.0, 110.0]])  # only in the bottom-right chip
    labels = np.array([1])
    rng = np.random.default_rng(0)
    never = TileSpec(size=64, overlap=0.0, empty_rate=0.0)
    drawn = {choose_chip(128, 128, boxes, labels, never, rng).window for _ in range(20)}
    assert drawn == {(64, 64, 128, 128)}
    always = TileSpec(size=64, overlap=0.0, empty_rate=1.0)
    chips = [choose_chip(128, 128, boxes, labels, always, rng) for _ in range(40)]
    assert all(len(chip.boxes) == 0 for chip in chips)
    assert {chip.window for chip in chips} == {(0, 0, 64, 64), (64, 0, 128, 64), (0, 64, 64, 128)}
    # an image without any box still gives a chip
    nothing = choose_chip(128, 128, np.zeros((0, 4)), np.zeros(0), never, rng)
    assert nothing.size == (64, 64) and len(nothing.boxes) == 0


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 128 px images (one 128 x 96) with a box cut by x = 64 and a box in one corner."""
    root = tmp_path_factory.mktemp("large")
    cats = [{"id": 1, "name": "car"}]
    for split, count in (("train", 2), ("val", 1)):
        folder = root / "images" / split
        folder.mkdir(parents=True)
        records, anns = [], []
        for i in range(count):
            width, height = (128, 128) if i == 0 else (128, 96)
            pixels = np.zeros((height, width, 3), dtype=np.uint8)
            pixels[10:20, 50:70] = 255
            pixels[100 - 40 * i : 110 - 40 * i, 100:110] = 200
            Image.fromarray(pixels).save(folder / f"{i}.png")
            records.append({"id": i + 1, "file_name": f"{i}.png", "width": width, "height": height})
            for number, bbox in ((1, [50, 10, 20, 10]), (2, [100, 100 - 40 * i, 10, 10])):
                ann = {"id": 2 * i + number, "image_id": i + 1, "category_id": 1, "bbox": bbox}
                anns.append({**ann, "area": bbox[2] * bbox[3], "iscrowd": 0})
        (root / "annotations").mkdir(exist_ok=True)
        coco = {"images": records, "annotations": anns, "categories": cats}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def _dataset(large: Path, tile: TileSpec, **kwargs: object) -> DetectionDataset:
    split = open_dataset(large).splits["train"]
    return DetectionDataset(split, image_size=32, cat_id_to_label={1: 1}, tile=tile, **kwargs)  # type: ignore[arg-type]


def test_training_samples_are_random_chips_letterboxed_with_their_boxes(large: Path) -> None:
    tile = TileSpec(size=64, overlap=0.0, empty_rate=0.0)
    dataset = _dataset(large, tile, augment=None, seed=3)
    assert len(dataset) == 2  # one sample per image and epoch
    sample = dataset[0]
    assert tuple(sample.image.shape) == (3, 32, 32)  # the 64 px chip letterboxed to 32
    assert sample.chip in {(0, 0, 64, 64), (64, 64, 128, 128)}  # the chips that keep a box
    assert sample.scale == 0.5 and len(sample.target["boxes"]) == 1
    # the box is the chip's, scaled: its pixels are bright there in the chip's picture
    x1, y1, x2, y2 = sample.target["boxes"][0].round().int().tolist()
    assert float(sample.image[:, y1:y2, x1:x2].mean()) > 0.5
    # the same seed and epoch give the same chips; other epochs others, over time both
    again = _dataset(large, tile, augment=None, seed=3)
    assert again[0].chip == sample.chip
    seen = set()
    for epoch in range(12):
        dataset.set_epoch(epoch)
        seen.add(dataset[0].chip)
    assert seen == {(0, 0, 64, 64), (64, 64, 128, 128)}


def test_validation_chips_are_the_whole_grid_with_clipped_boxes(large: Path) -> None:
    tile = TileSpec(size=64, overlap=0.0, min_visibility=0.5)
    dataset = _dataset(large, tile, chips="grid")
    # 4 chips of the 128 px image, 2 x 2 of the 128 x 96 one (the last row flush: y 32..96)
    assert len(dataset) == 8
    chips = [dataset[i] for i in range(len(dataset))]
    assert [c.chip for c in chips[4:]] == [(0, 0, 64, 64), (64, 0, 128, 64),
                                           (0, 32, 64, 96), (64, 32, 128, 96)]  # fmt: skip
    # the second image's lower box (y 60..70) shows 40 % in the top row: only in the bottom one
    assert [len(c.target["boxes"]) for c in chips] == [1, 0, 0, 1, 1, 0, 0, 1]
    # the cut box: clipped in the left chip (x 50..64 -> 25..32 at scale 0.5), gone in the right
    np.testing.assert_allclose(chips[0].target["boxes"].numpy(), [[25.0, 5.0, 32.0, 10.0]])
    assert dataset.full_images().__next__()[1].size == (128, 128)  # evaluation sees it whole


def test_the_spec_checks_the_tile_and_the_feature_cache_refuses_tiled_data() -> None:
    data = {"path": "x", "image_size": 64, "tile": {"size": 64}}
    spec = JobSpec.model_validate({"kind": "teacher", "data": data,
                                   "teacher": {"arch": "retinanet_resnet18_fpn"}})  # fmt: skip
    assert spec.data.tile == TileSpec(size=64, overlap=0.2, min_visibility=0.5)
    with pytest.raises(ValidationError, match=r"data.tile.size: 100 px is not a multiple of 32"):
        JobSpec.model_validate({"kind": "teacher", "data": {**data, "tile": {"size": 100}},
                                "teacher": {"arch": "retinanet_resnet18_fpn"}})  # fmt: skip
    for wrong in ({"size": 64, "overlap": 1.0}, {"size": 64, "min_visibility": 0}, {"size": 8},
                  {"size": 64, "sizes": 2}):  # fmt: skip
        with pytest.raises(ValidationError):
            DataSpec.model_validate({**data, "tile": wrong})
    # A view is (image id, flipped): with chips it would serve another chip's features.
    distill = {"kind": "distill", "data": {**data, "augment": {"hflip": True}},
               "teacher": {"arch": "retinanet_resnet18_fpn", "checkpoint": "t.safetensors"},
               "student": {"arch": "retinanet_mobilenet_v2_fpn"}}  # fmt: skip
    tiled = JobSpec.model_validate(distill)
    assert cache_refusal(tiled) is not None and "data.tile" in str(cache_refusal(tiled))
    untiled = JobSpec.model_validate({**distill, "data": {**distill["data"], "tile": None}})  # type: ignore[dict-item]
    assert cache_refusal(untiled) is None


def test_the_job_start_warnings_use_the_real_image_and_tile_size(large: Path) -> None:
    # 10 px boxes in 128 px images: letterboxed to 32 px they are 2.5 px, below 4 px ...
    whole = DataSpec(path=str(large), image_size=32, augment={"hflip": False})
    info = build_loaders(whole, seed=0)[2]
    shrunk = [w for w in info.warnings if w.code == "objects_below_min_size"]
    assert len(shrunk) == 1
    assert shrunk[0].details["image_size"] == 32 and shrunk[0].details["current_tile_size"] is None
    assert shrunk[0].details["shrunk_boxes"] == 4 and shrunk[0].details["tile_size"] == 64
    assert 10 * 32 / shrunk[0].details["tile_size"] >= MIN_OBJECT_PX
    # ... in chips of 64 px they are 5 px: no warning, and the loaders say it is sliced
    tiled = DataSpec(path=str(large), image_size=32, augment={"hflip": False},
                     tile={"size": 64, "overlap": 0.0})  # fmt: skip
    info = build_loaders(tiled, seed=0)[2]
    assert not [w for w in info.warnings if w.code == "objects_below_min_size"]
    assert info.sliced_val is not None and info.val_images == 1
    # chips of 96 px show them at 3.3 px: warned, naming the chip size
    coarse = tiled.model_copy(update={"tile": TileSpec(size=96)})
    warning = next(w for w in build_loaders(coarse, seed=0)[2].warnings
                   if w.code == "objects_below_min_size")  # fmt: skip
    assert warning.details["current_tile_size"] == 96
    assert "chips of data.tile.size 96 px" in warning.message
