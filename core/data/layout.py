"""Which format a dataset folder holds: the one detection that loading and validation share."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from core.data.coco import COCO_LAYOUTS, find_coco_layout
from core.data.issues import DatasetError
from core.data.voc import VOC_LAYOUT, find_voc_root

ACCEPTED_LAYOUTS = f"COCO: {COCO_LAYOUTS}; Pascal VOC: {VOC_LAYOUT}"
"""Every accepted layout, as the message for a folder that matches none lists them."""

NO_LAYOUT = f"neither COCO nor Pascal VOC layout found; accepted layouts: {ACCEPTED_LAYOUTS}"


def detect_format(root: Path) -> Literal["coco", "voc"]:
    """'coco' or 'voc' from the folder's layout (COCO first); DatasetError if it is neither."""
    if find_coco_layout(root):
        return "coco"
    if find_voc_root(root) is not None:
        return "voc"
    raise DatasetError(f"{root.name}: {NO_LAYOUT}")
