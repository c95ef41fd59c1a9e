"""Opening datasets and the loaders that feed the models."""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.issues import DatasetError
from core.data.loader import build_loaders, open_dataset
from core.data.transforms import unletterbox_boxes
from core.spec import DataSpec
from core.structures import Batch


def _zip_folder(folder: Path, out: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + str(path.relative_to(folder)))
    return out


def test_open_coco_folder_has_both_splits(tiny_coco: Path) -> None:
    source = open_dataset(tiny_coco)
    assert source.format == "coco"
    assert set(source.splits) == {"train", "val"}
    assert len(source.splits["train"].coco["images"]) == 10
    assert len(source.splits["val"].coco["images"]) == 2
    first = source.splits["train"].coco["images"][0]
    assert source.splits["train"].image_path(first).is_file()


def test_open_coco_zip_one_folder_down(tiny_coco: Path, tmp_path: Path) -> None:
    archive = _zip_folder(tiny_coco, tmp_path / "ds.zip", prefix="mydata/")
    source = open_dataset(archive, extract_to=tmp_path / "unpacked")
    assert source.format == "coco"
    assert source.root == tmp_path / "unpacked"
    train = source.splits["train"]
    assert train.image_path(train.coco["images"][0]).is_file()


def test_archive_is_unpacked_once(tiny_coco: Path, tmp_path: Path) -> None:
    archive = _zip_folder(tiny_coco, tmp_path / "ds.zip")
    first = open_dataset(archive, extract_to=tmp_path / "cache")
    marker = next(first.root.rglob("*.jpg"))
    marker.unlink()  # a second open must reuse the folder, not unpack again
    second = open_dataset(archive, extract_to=tmp_path / "cache")
    assert second.root == first.root and not marker.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        open_dataset(archive, extract_to=busy)
    assert (busy / "something.txt").read_text() == "mine"


def test_single_split_under_another_name_is_train(tiny_coco: Path, tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_default.json").write_text(
        (tiny_coco / "annotations" / "instances_train.json").read_text()
    )
    # copied, not symlinked: a symlink leading outside the dataset root is refused
    shutil.copytree(tiny_coco / "images" / "train", tmp_path / "images")
    _, _, info = build_loaders(DataSpec(path=str(tmp_path), image_size=64), seed=0)
    assert (info.train_images, info.val_images) == (8, 2)


def test_open_voc_folder_and_targz(tiny_voc: Path, tiny_coco: Path, tmp_path: Path) -> None:
    original = open_dataset(tiny_coco)
    source = open_dataset(tiny_voc)
    assert source.format == "voc"
    assert set(source.splits) == {"train", "val"}
    n_boxes = sum(len(s.coco["annotations"]) for s in original.splits.values())
    assert sum(len(s.coco["annotations"]) for s in source.splits.values()) == n_boxes
    # integer COCO boxes survive COCO -> VOC -> COCO exactly
    before = sorted(tuple(a["bbox"]) for a in original.splits["train"].coco["annotations"])
    after = sorted(tuple(a["bbox"]) for a in source.splits["train"].coco["annotations"])
    assert before == after
    archive = tmp_path / "voc.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tiny_voc, arcname="VOC2007")
    packed = open_dataset(archive, extract_to=tmp_path / "x")
    assert packed.format == "voc"
    assert len(packed.splits["val"].coco["images"]) == 2


def test_missing_val_is_carved_from_train(tiny_coco: Path, tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(
        (tiny_coco / "annotations" / "instances_train.json").read_text()
    )
    shutil.copytree(tiny_coco / "images", tmp_path / "images")
    spec = DataSpec(path=str(tmp_path), image_size=64, batch_size=2)
    train, val, info = build_loaders(spec, seed=0)
    assert (info.train_images, info.val_images) == (8, 2)
    train_ids = {i for b in train for i in b.image_ids}
    val_ids = {i for b in val for i in b.image_ids}
    assert not train_ids & val_ids
    _, val_again, _ = build_loaders(spec, seed=5)
    assert {i for b in val_again for i in b.image_ids} == val_ids


def test_loaders_yield_batches(tiny_data_spec: DataSpec) -> None:
    train, _val, info = build_loaders(tiny_data_spec, seed=0)
    assert info.num_classes == 6
    assert info.label_to_cat_id == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}
    batch = next(iter(train))
    assert isinstance(batch, Batch)
    assert batch.images.shape == (4, 3, 64, 64)
    assert batch.images.dtype == torch.float32
    assert float(batch.images.min()) >= 0.0 and float(batch.images.max()) <= 1.0
    assert len(batch.targets) == len(batch.image_ids) == len(batch.scales) == len(batch.pads) == 4
    for target in batch.targets:
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
        assert target["labels"].dtype == torch.int64
        assert bool(((target["labels"] >= 1) & (target["labels"] <= 5)).all())
        assert bool((target["boxes"] >= 0).all() and (target["boxes"] <= 64).all())
    assert sum(len(b.image_ids) for b in train) == 10


def test_val_gt_is_in_original_coordinates(tiny_coco: Path) -> None:
    spec = DataSpec(path=str(tiny_coco), image_size=48, batch_size=2)
    _, val, info = build_loaders(spec, seed=0)
    gt = {a["image_id"]: [] for a in info.val_gt["annotations"]}
    for a in info.val_gt["annotations"]:
        x, y, w, h = a["bbox"]
        gt[a["image_id"]].append([x, y, x + w, y + h])
    checked = 0
    for batch in val:
        for target, image_id, scale, pad in zip(
            batch.targets, batch.image_ids, batch.scales, batch.pads, strict=True
        ):
            back = unletterbox_boxes(target["boxes"].numpy(), scale, pad)
            expected = np.array(sorted(gt.get(image_id, [])), dtype=np.float32).reshape(-1, 4)
            np.testing.assert_allclose(np.array(sorted(back.tolist())), expected, atol=1e-3)
            checked += len(back)
    assert checked == len(info.val_gt["annotations"]) > 0


def test_max_images_caps_both_splits(tiny_coco: Path) -> None:
    spec = DataSpec(path=str(tiny_coco), image_size=64, max_train_images=3, max_val_images=1)
    train, _val, info = build_loaders(spec, seed=0)
    assert sum(len(b.image_ids) for b in train) == 3
    assert len(info.val_gt["images"]) == 1
    assert {a["image_id"] for a in info.val_gt["annotations"]} <= {info.val_gt["images"][0]["id"]}


def test_augmented_training_is_deterministic_per_seed(tiny_coco: Path) -> None:
    spec = DataSpec(
        path=str(tiny_coco),
        image_size=64,
        batch_size=5,
        augment={"hflip": True, "color_jitter": 0.4, "copy_paste": True, "copy_paste_prob": 1.0},
    )

    def first(seed: int) -> Batch:
        return next(iter(build_loaders(spec, seed=seed)[0]))

    a, b, c = first(1), first(1), first(2)
    assert torch.equal(a.images, b.images) and a.image_ids == b.image_ids
    assert not torch.equal(a.images, c.images)


def test_broken_dataset_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"instances_train\.json"):
        open_dataset(tmp_path)
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="annotations"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="neither COCO"):
        open_dataset(tmp_path / "annotations")


def test_copy_paste_boxes_stay_on_the_picture(tiny_coco: Path) -> None:
    augment = {"hflip": True, "copy_paste": True, "copy_paste_prob": 1.0}
    plain = DataSpec(path=str(tiny_coco), image_size=64, batch_size=10, augment={"hflip": False})
    pasted = DataSpec(path=str(tiny_coco), image_size=64, batch_size=10, augment=augment)
    before = next(iter(build_loaders(plain, seed=0)[0]))
    after = next(iter(build_loaders(pasted, seed=0)[0]))
    n_before = sum(len(t["boxes"]) for t in before.targets)
    n_after = sum(len(t["boxes"]) for t in after.targets)
    assert n_after > n_before
    for target, (left, top) in zip(after.targets, after.pads, strict=True):
        boxes = target["boxes"]
        assert bool((boxes[:, 0] >= left).all() and (boxes[:, 2] <= 64 - left).all())
        assert bool((boxes[:, 1] >= top).all() and (boxes[:, 3] <= 64 - top).all())


def test_distributed_train_loader_shards(tiny_coco: Path, tmp_path: Path) -> None:
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        spec = DataSpec(path=str(tiny_coco), image_size=64, batch_size=4)
        train, val, _ = build_loaders(spec, seed=0, distributed=True)
        assert isinstance(train.sampler, DistributedSampler)
        assert not isinstance(val.sampler, DistributedSampler)
        assert sorted(i for b in train for i in b.image_ids) == list(range(1, 11))
    finally:
        dist.destroy_process_group()
