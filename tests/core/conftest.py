"""Shared tiny datasets for the core tests (generated once per session, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data.synthetic import generate_synthetic
from core.spec import DataSpec

TINY_IMAGES = 12
TINY_SIZE = 64


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic COCO-layout dataset: 12 images of 64 px (train 10 / val 2), 5 classes."""
    out = tmp_path_factory.mktemp("tiny_coco")
    return generate_synthetic(out, images=TINY_IMAGES, size=TINY_SIZE, seed=0, val_fraction=0.2)


@pytest.fixture(scope="session")
def tiny_voc(tiny_coco: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny COCO dataset written out in Pascal VOC layout."""
    from core.data.voc import write_voc

    return write_voc(tiny_coco, tmp_path_factory.mktemp("tiny_voc"))


@pytest.fixture()
def tiny_data_spec(tiny_coco: Path) -> DataSpec:
    """A DataSpec on the tiny dataset: 64 px letterbox, batches of 4, no augmentation."""
    return DataSpec(
        path=str(tiny_coco),
        image_size=TINY_SIZE,
        batch_size=4,
        augment={"hflip": False},
    )
