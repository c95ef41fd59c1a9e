"""Opening datasets (folder or archive, COCO or VOC) and the loaders that feed the models."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from core.data.archive import is_archive, safe_extract
from core.data.class_map import apply_class_map
from core.data.coco import read_coco
from core.data.dataset_warnings import dataset_warnings
from core.data.issues import DatasetError, DatasetWarning
from core.data.layout import detect_format
from core.data.paths import relative_name, scrub_paths
from core.data.source import CocoSplit, DatasetSource, carve_split
from core.data.tiles import chip_index, chip_of, choose_chip
from core.data.transforms import color_jitter, copy_paste_small, letterbox
from core.data.voc import VocCoordinates, read_voc
from core.predict.slicing import Window
from core.spec import AugmentSpec, DataSpec, TileSpec
from core.structures import Batch, Target

__all__ = [
    "CocoSplit",
    "DatasetInfo",
    "DatasetSource",
    "DetectionDataset",
    "build_loaders",
    "collate_batch",
    "detect_format",
    "open_dataset",
]

DatasetFormat = Literal["auto", "coco", "voc"]

DEFAULT_MAX_BYTES = 64 * 2**30
"""Cap on the unpacked size of an archive opened for a local run."""
DEFAULT_MAX_FILES = 2_000_000


def _extraction_folder(archive: Path) -> Path:
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return Path(tempfile.gettempdir()) / f"distillery-data-{key.hexdigest()[:16]}"


def unpack(
    archive: Path,
    *,
    dest: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> Path:
    """Safely unpack `archive` once (reused while the archive is unchanged); returns the folder."""
    dest = Path(dest or _extraction_folder(archive))
    dest.parent.mkdir(parents=True, exist_ok=True)
    marker = dest / ".distillery-unpacked"
    if marker.is_file():
        return dest
    # unpack beside `dest` and rename, so a concurrent reader never sees half an archive
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        safe_extract(archive, staging, max_bytes=max_bytes, max_files=max_files)
        (staging / marker.name).write_text(archive.name, encoding="utf-8")
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        try:
            staging.rename(dest)
        except OSError as exc:
            if not marker.is_file():  # not another process's finished copy: a real problem
                raise DatasetError(
                    f"{dest.name}: exists and is not empty; cannot unpack {archive.name} there"
                ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def open_dataset(
    path: Path,
    *,
    format: DatasetFormat = "auto",
    extract_to: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    voc_coordinates: VocCoordinates = "auto",
) -> DatasetSource:
    """Open a COCO or VOC dataset from a folder or a .zip/.tar(.gz) archive (VOC becomes COCO).

    Messages name files relative to the dataset root; no image outside it is ever opened.
    `voc_coordinates` is VOC's `<bndbox>` convention (core.data.voc.read_voc).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path.name}: no such file or folder")
    root = path
    if path.is_file():
        if not is_archive(path):
            raise DatasetError(f"{path.name}: not a folder, zip or tar archive")
        root = unpack(path, dest=extract_to, max_bytes=max_bytes, max_files=max_files)
    fmt = detect_format(root) if format == "auto" else format
    if fmt == "coco":
        splits = read_coco(root)
    elif fmt == "voc":
        splits = read_voc(root, coordinates=voc_coordinates)
    else:
        raise ValueError(f"unknown dataset format {format!r}; use auto, coco or voc")
    if not splits:
        raise DatasetError(f"{path.name}: the dataset has no split")
    return DatasetSource(root=root, format=fmt, splits=splits)


@dataclass
class DatasetInfo:
    """What the models and the evaluator need to know of a dataset."""

    categories: list[dict[str, Any]]  # COCO categories sorted by id; label i+1 is categories[i]
    num_classes: int  # K + 1 (index 0 = background)
    label_to_cat_id: dict[int, int]
    val_gt: dict[str, Any]  # COCO dict of the val split in ORIGINAL image coordinates
    train_images: int = 0
    val_images: int = 0
    class_names: list[str] = field(default_factory=list)
    # the dataset's warnings for this job's image_size and tile (core.data.dataset_warnings)
    warnings: list[DatasetWarning] = field(default_factory=list)
    # with data.tile: the val split's full-size images, which evaluation slices
    sliced_val: DetectionDataset | None = None

    @property
    def cat_id_to_label(self) -> dict[int, int]:
        """COCO category id -> contiguous label 1..K."""
        return {c: lab for lab, c in self.label_to_cat_id.items()}


@dataclass
class Sample:
    """One letterboxed image with its target, ready for `collate_batch`."""

    image: torch.Tensor  # (3, S, S) float32 in [0, 1]
    target: Target
    image_id: int
    scale: float
    pad: tuple[int, int]
    flipped: bool = False  # mirrored by the augmentation
    chip: Window | None = None  # with data.tile: the chip of the image, in its pixels


ChipMode = Literal["random", "grid"]
"""With a tile: one random chip per image and sample (training), or every chip (validation)."""


class DetectionDataset(Dataset[Sample]):
    """A COCO split as letterboxed `size` x `size` images with targets in model pixels.

    With `tile` the images are cut into chips first (core.data.tiles): `chips="random"` gives
    one random chip per image and sample, `"grid"` every chip of every image in order.
    """

    def __init__(
        self,
        split: CocoSplit,
        *,
        image_size: int,
        cat_id_to_label: dict[int, int],
        augment: AugmentSpec | None = None,
        seed: int = 0,
        tile: TileSpec | None = None,
        chips: ChipMode = "random",
    ) -> None:
        self.split = split
        self.image_size = image_size
        self.cat_id_to_label = cat_id_to_label
        self.augment = augment
        self.seed = seed
        self.tile = tile
        self.chips = chips
        self.images = sorted(split.coco.get("images", []), key=lambda im: im["id"])
        self._anns: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in self.images}
        for ann in split.coco.get("annotations", []):
            if ann.get("iscrowd", 0) or ann.get("image_id") not in self._anns:
                continue  # crowd regions are ignored in training, as in COCO practice
            if ann.get("category_id") in cat_id_to_label:
                self._anns[int(ann["image_id"])].append(ann)
        self._rng: np.random.Generator | None = None
        self._epoch = 0
        self._grid: list[tuple[int, Window]] = []
        if tile is not None and chips == "grid":
            sizes = [self._image_dimensions(index) for index in range(len(self.images))]
            self._grid = chip_index(sizes, tile)

    def set_epoch(self, epoch: int) -> None:
        """Restart the augmentation stream from (seed, epoch), so a resumed run sees the same."""
        self._epoch = epoch
        self._rng = None

    def __len__(self) -> int:
        if self.tile is not None and self.chips == "grid":
            return len(self._grid)
        return len(self.images)

    def _image_dimensions(self, index: int) -> tuple[int, int]:
        """(width, height) of image `index`: as declared, else of the decoded image."""
        record = self.images[index]
        declared = (int(record.get("width") or 0), int(record.get("height") or 0))
        if min(declared) > 0:
            return declared
        return self.load(index)[3]

    def full_images(self) -> Iterator[tuple[int, Image.Image]]:
        """(image id, image at its full size) of every image of the split, in id order."""
        for index, record in enumerate(self.images):
            yield int(record["id"]), self.load(index, full_size=True)[0]

    def _generator(self) -> np.random.Generator:
        # In a DataLoader worker, torch hands each worker a seed drawn from the loader's seeded
        # generator every epoch; in the main process the dataset's own stream continues.
        if self._rng is None:
            info = torch.utils.data.get_worker_info()
            worker_seed = info.seed % 2**32 if info else 0
            self._rng = np.random.default_rng([self.seed, self._epoch, worker_seed])
        return self._rng

    def load(
        self, index: int, *, full_size: bool = False
    ) -> tuple[Image.Image, np.ndarray, np.ndarray, tuple[int, int]]:
        """The image (maybe decoded smaller, never with `full_size` or a tile), boxes
        (x1 y1 x2 y2), labels and the original size."""
        record = self.images[index]
        path = self.split.image_path(record)  # DatasetError if it points outside the dataset
        declared = (int(record.get("width") or 0), int(record.get("height") or 0))
        try:
            with Image.open(path) as im:
                reduced = not full_size and self.tile is None  # chips need every pixel
                if reduced and min(declared) > 0 and im.size == declared:
                    # JPEG draft decoding at reduced scale: much faster for large photographs
                    im.draft("RGB", (self.image_size, self.image_size))
                else:
                    declared = im.size
                image = im.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            root = self.split.root or self.split.image_root
            raise DatasetError(
                f"{relative_name(path, root)}: cannot read image {record['id']} "
                f"({scrub_paths(str(exc), root)})"
            ) from exc
        anns = self._anns[int(record["id"])]
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        w, h = declared
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        labels = np.array([self.cat_id_to_label[a["category_id"]] for a in anns], dtype=np.int64)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return image, boxes[keep], labels[keep], declared

    def __getitem__(self, index: int) -> Sample:
        window: Window | None = None
        if self.tile is not None and self.chips == "grid":
            index, window = self._grid[index]
        image, boxes, labels, source_size = self.load(index)
        aug = self.augment
        rng = self._generator() if aug is not None or self.tile is not None else None
        if self.tile is not None:
            # the chip first, then the flip and the rest, within the chip
            if window is not None:
                chip = chip_of(boxes, labels, window, self.tile)
            else:
                assert rng is not None
                chip = choose_chip(*source_size, boxes, labels, self.tile, rng)
            window, boxes, labels, source_size = chip.window, chip.boxes, chip.labels, chip.size
            image = image.crop(window)
        flipped = bool(aug is not None and rng is not None and aug.hflip and rng.random() < 0.5)
        if flipped:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            boxes = boxes.copy()
            boxes[:, [0, 2]] = source_size[0] - boxes[:, [2, 0]]
        lb = letterbox(image, boxes, self.image_size, source_size=source_size)
        pixels, boxes = lb.image, lb.boxes
        if aug is not None and rng is not None:
            if aug.copy_paste and rng.random() < aug.copy_paste_prob:
                pixels, boxes, labels = copy_paste_small(
                    pixels,
                    boxes,
                    labels,
                    rng,
                    max_objects=aug.copy_paste_max_objects,
                    region=lb.content,
                )
            if aug.color_jitter > 0:
                pixels = color_jitter(pixels, aug.color_jitter, rng, region=lb.content)
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)  # (3, S, S)
        return Sample(
            image=tensor.float().div_(255.0),
            target=Target(
                boxes=torch.from_numpy(boxes.astype(np.float32)).reshape(-1, 4),
                labels=torch.from_numpy(labels.astype(np.int64)).reshape(-1),
            ),
            image_id=int(self.images[index]["id"]),
            scale=lb.scale,
            pad=lb.pad,
            flipped=flipped,
            chip=window,
        )


def collate_batch(samples: list[Sample]) -> Batch:
    """Stack samples into a `core.structures.Batch`."""
    return Batch(
        images=torch.stack([s.image for s in samples]),  # (N, 3, S, S)
        targets=[s.target for s in samples],
        image_ids=[s.image_id for s in samples],
        scales=[s.scale for s in samples],
        pads=[s.pad for s in samples],
        flipped=[s.flipped for s in samples],
    )


def _first_images(split: CocoSplit, limit: int | None) -> CocoSplit:
    if limit is None:
        return split
    ids = sorted(int(im["id"]) for im in split.coco.get("images", []))
    return split.subset(ids[:limit])


def resolve_splits(source: DatasetSource, data: DataSpec) -> tuple[CocoSplit, CocoSplit]:
    """(train, val) of `source` per the spec, carving val from train when the data has none."""
    if data.train_split in source.splits:
        train = source.splits[data.train_split]
    elif len(source.splits) == 1 and data.val_split not in source.splits:
        # a single split under another name (e.g. CVAT's instances_default.json) is the train set
        train = next(iter(source.splits.values()))
    else:
        raise DatasetError(
            f"the dataset has no split '{data.train_split}' (it has {sorted(source.splits)})"
        )
    if data.val_split in source.splits:
        val = source.splits[data.val_split]
    else:
        train, val = carve_split(train)
    train = _first_images(train, data.max_train_images)
    val = _first_images(val, data.max_val_images)
    return train, val


BatchLoader = DataLoader[Any]
"""A DataLoader whose iteration yields `core.structures.Batch` (collated by `collate_batch`)."""


def build_loaders(
    data: DataSpec, *, seed: int, distributed: bool = False
) -> tuple[BatchLoader, BatchLoader, DatasetInfo]:
    """(train loader, val loader, info) for a job's data section; loaders yield `Batch`.

    The classes are those of `data.classes` when it is set (core.data.class_map): training,
    the val ground truth, the warnings and `info.categories` all see the mapped ones.

    With `distributed`, the train loader shards with a DistributedSampler (call
    `loader.sampler.set_epoch(epoch)`); the val loader is never sharded, so any one rank can
    evaluate on the whole val split.
    """
    if data.path is None:
        raise ValueError("data.path is not set (the worker resolves data.dataset_id to a path)")
    source = open_dataset(Path(data.path), format=data.format, voc_coordinates=data.voc_coordinates)
    source = apply_class_map(source, data.classes)  # data.classes: merged, ignored categories
    train, val = resolve_splits(source, data)
    if not train.coco.get("images"):
        raise DatasetError(f"{Path(data.path).name}: the train split has no image")
    categories = source.categories
    label_to_cat_id = {i + 1: int(c["id"]) for i, c in enumerate(categories)}
    cat_id_to_label = {c: lab for lab, c in label_to_cat_id.items()}
    train_ds = DetectionDataset(
        train,
        image_size=data.image_size,
        cat_id_to_label=cat_id_to_label,
        augment=data.augment,
        seed=seed,
        tile=data.tile,
    )
    val_ds = DetectionDataset(
        val,
        image_size=data.image_size,
        cat_id_to_label=cat_id_to_label,
        tile=data.tile,
        chips="grid",
    )
    generator = torch.Generator().manual_seed(seed)
    common: dict[str, Any] = {
        "batch_size": data.batch_size,
        "num_workers": data.num_workers,
        "collate_fn": collate_batch,
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": False,
    }
    if distributed:
        sampler: DistributedSampler[Sample] = DistributedSampler(train_ds, shuffle=True, seed=seed)
        train_loader = DataLoader(train_ds, sampler=sampler, generator=generator, **common)
    else:
        train_loader = DataLoader(train_ds, shuffle=True, generator=generator, **common)
    val_loader = DataLoader(val_ds, shuffle=False, **common)
    val_gt = dict(val.coco)
    val_gt["categories"] = categories
    val_gt.setdefault("info", {})
    val_gt.setdefault("licenses", [])
    info = DatasetInfo(
        categories=categories,
        num_classes=len(categories) + 1,
        label_to_cat_id=label_to_cat_id,
        val_gt=val_gt,
        train_images=len(train.coco.get("images", [])),
        val_images=len(val.coco.get("images", [])),
        class_names=[str(c.get("name", c["id"])) for c in categories],
        warnings=job_warnings(train, val, data),
        sliced_val=val_ds if data.tile is not None else None,
    )
    return train_loader, val_loader, info


def job_warnings(train: CocoSplit, val: CocoSplit, data: DataSpec) -> list[DatasetWarning]:
    """The dataset's warnings (core.data.dataset_warnings) for the splits a job uses, at its
    own `data.image_size` and `data.tile.size` (upload-time validation only knows a default)."""
    cocos = {data.train_split: train.coco, data.val_split: val.coco}
    return dataset_warnings(
        cocos,
        image_size=data.image_size,
        train_split=data.train_split,
        tile_size=data.tile.size if data.tile is not None else None,
    )
