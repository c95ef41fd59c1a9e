"""A dataset opened for reading: its splits as COCO dicts with the folder of their images."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.data.issues import NAME_LIMIT, DatasetError, brief_repr
from core.data.paths import OUTSIDE, contained

CARVE_FRACTION = 0.2
"""Share of train images moved to val when a dataset has no val split."""


@dataclass
class CocoSplit:
    """One split: a COCO detection dict and the folder its `file_name`s are relative to.

    `root` is the dataset root no image may lie outside of (default: `image_root`); `source`
    names the split's annotation file relative to it, for messages.
    """

    coco: dict[str, Any]
    image_root: Path
    root: Path | None = None
    source: str = ""

    def image_path(self, image: dict[str, Any]) -> Path:
        """Path of one image record; DatasetError if its `file_name` points outside the root.

        Checked at every read, so no path is opened that validation did not accept.
        """
        name = image.get("file_name")
        where = f"{self.source or 'annotations'}: image {brief_repr(image.get('id'))}"
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where}: 'file_name' must be a non-empty string")
        path = contained(self.root or self.image_root, self.image_root, name)
        if path is None:
            raise DatasetError(f"{where} file_name {brief_repr(name, NAME_LIMIT)} {OUTSIDE}")
        return path

    def subset(self, image_ids: list[int] | set[int]) -> CocoSplit:
        """The same split restricted to `image_ids` (and their annotations)."""
        keep = set(image_ids)
        coco = dict(self.coco)
        coco["images"] = [im for im in self.coco.get("images", []) if im["id"] in keep]
        coco["annotations"] = [
            a for a in self.coco.get("annotations", []) if a.get("image_id") in keep
        ]
        return replace(self, coco=coco)


@dataclass
class DatasetSource:
    """An opened dataset: where it lies, its original format and its splits."""

    root: Path
    format: str
    splits: dict[str, CocoSplit] = field(default_factory=dict)

    @property
    def categories(self) -> list[dict[str, Any]]:
        """Categories of all splits, unique by id, sorted by id."""
        by_id: dict[int, dict[str, Any]] = {}
        for split in self.splits.values():
            for cat in split.coco.get("categories", []):
                by_id.setdefault(int(cat["id"]), cat)
        return [by_id[k] for k in sorted(by_id)]


def carve_split(
    split: CocoSplit, *, fraction: float = CARVE_FRACTION, seed: int = 0
) -> tuple[CocoSplit, CocoSplit]:
    """Split `split` deterministically into (rest, carved) with `fraction` of its images carved."""
    ids = sorted(int(im["id"]) for im in split.coco.get("images", []))
    if len(ids) < 2:
        return split, split.subset([])
    n_carved = min(len(ids) - 1, max(1, round(len(ids) * fraction)))
    order = np.random.default_rng(seed).permutation(len(ids))
    carved = {ids[i] for i in order[:n_carved]}
    rest = [i for i in ids if i not in carved]
    return split.subset(rest), split.subset(carved)
