"""Tiny images and targets shared by the model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from core.structures import Target

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
