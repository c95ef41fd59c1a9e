"""Fixtures of the predict tests: one exported tiny student per test session, test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.core.predict.students import ExportedStudent, export_detections, export_student

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def student(tmp_path_factory: pytest.TempPathFactory) -> ExportedStudent:
    """A RetinaNet student exported like a job exports it (its own folder)."""
    return export_student(tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="session")
def detections_onnx(student: ExportedStudent) -> Path:
    """The same student's student_detections.onnx (post-processing inside), beside its files."""
    return export_detections(student)


@pytest.fixture
def photo() -> Image.Image:
    """A 90 x 70 random RGB picture (not square, not the model's size)."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    return Image.fromarray(pixels)
