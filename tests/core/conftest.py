"""Shared tiny datasets, images and targets for the core tests (generated offline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core.data.synthetic import generate_synthetic
from core.spec import DataSpec
from core.structures import Target

TINY_IMAGES = 12
TINY_SIZE = 64
IMAGE_SIZE = 64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: tiny models gain nothing from more, and a shared CPU loses a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def images() -> torch.Tensor:
    """Two 64 px images in [0, 1]."""
    return torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def targets() -> list[Target]:
    """One image with a small and a large box, one image without objects."""
    return [
        Target(
            boxes=torch.tensor([[4.0, 4.0, 14.0, 12.0], [20.0, 20.0, 50.0, 60.0]]),
            labels=torch.tensor([1, 2]),
        ),
        Target(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64)),
    ]


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic COCO-layout dataset: 12 images of 64 px (train 10 / val 2), 5 classes."""
    out = tmp_path_factory.mktemp("tiny_coco")
    return generate_synthetic(out, images=TINY_IMAGES, size=TINY_SIZE, seed=0, val_fraction=0.2)


@pytest.fixture(scope="session")
def tiny_voc(tiny_coco: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny COCO dataset written out in Pascal VOC layout."""
    from core.data.voc_export import write_voc

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
