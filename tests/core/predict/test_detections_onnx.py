"""A student exported with its post-processing inside (student_detections.onnx): predict
reads its boxes, scores and labels as they are, and they are the dense student's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.export.onnx import write_metadata
from core.predict.detections import Detections
from core.predict.errors import PredictError
from core.predict.loading import load_predictor
from core.predict.onnx_model import OnnxPredictor
from core.predict.slicing import SliceOptions
from tests.core.predict.students import ExportedStudent


def _assert_same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    assert np.array_equal(a.labels, b.labels)
    assert np.allclose(a.scores, b.scores, atol=1e-4)
    assert np.allclose(a.boxes, b.boxes, atol=0.05)


def _images(photo: Image.Image) -> list[Image.Image]:
    """The 90 x 70 photo and a larger, wider second picture."""
    rng = np.random.default_rng(5)
    return [photo, Image.fromarray(rng.integers(0, 256, size=(120, 200, 3), dtype=np.uint8))]


def test_the_detections_onnx_gives_the_students_detections(
    student: ExportedStudent, detections_onnx: Path, photo: Image.Image
) -> None:
    torch_model = load_predictor(student.safetensors)
    dense = load_predictor(student.onnx)
    inside = load_predictor(detections_onnx)  # metadata embedded, nothing beside it needed
    assert isinstance(inside, OnnxPredictor) and inside.detections_inside
    assert isinstance(dense, OnnxPredictor) and not dense.detections_inside
    assert inside.meta == torch_model.meta
    options = torch_model.options()
    for image in _images(photo):
        expected = torch_model.predict(image, options)
        assert len(expected) > 5
        _assert_same(inside.predict(image, options), expected)
        _assert_same(inside.predict(image, options), dense.predict(image, options))
    # A higher threshold and a lower cap than the export's are applied to its detections.
    everything = torch_model.predict(photo, options)
    threshold = float(np.median(everything.scores))
    got = inside.predict(photo, inside.options(score_threshold=threshold, max_detections=3))
    assert len(got) == 3 and (got.scores > threshold).all()
    _assert_same(got, everything.take(np.flatnonzero(everything.scores > threshold)).best(3))


def test_sliced_prediction_with_the_detections_onnx(
    student: ExportedStudent, detections_onnx: Path, photo: Image.Image
) -> None:
    torch_model = load_predictor(student.safetensors)
    inside = load_predictor(detections_onnx)
    image = _images(photo)[1]
    slicing = SliceOptions(size=64, overlap=0.2)
    options = inside.options()  # the export's own: 0.05, 100
    found = inside.detect(image, options, slicing)
    assert 0 < len(found) <= 100
    _assert_same(found, torch_model.detect(image, options, slicing))


def test_what_the_export_dropped_cannot_be_asked_for(detections_onnx: Path) -> None:
    inside = load_predictor(detections_onnx)
    with pytest.raises(PredictError, match=r"0.01 is below 0.05, the one student_detections"):
        inside.options(score_threshold=0.01)
    with pytest.raises(PredictError, match=r"max detections 500 is above 100"):
        inside.options(max_detections=500)


def test_detections_are_told_by_the_output_names(
    student: ExportedStudent, detections_onnx: Path, photo: Image.Image, tmp_path: Path
) -> None:
    # No metadata in the file: the outputs tell it has detections, the student's
    # safetensors beside it (student_detections.onnx -> student.safetensors) the classes.
    bare = tmp_path / "student_detections.onnx"
    shutil.copy(detections_onnx, bare)
    write_metadata(bare, {})
    with pytest.raises(PredictError, match="carries no metadata"):
        load_predictor(bare)
    shutil.copy(student.safetensors, tmp_path / "student.safetensors")
    predictor = load_predictor(bare)
    assert isinstance(predictor, OnnxPredictor) and predictor.detections_inside
    reference = load_predictor(detections_onnx)
    options = reference.options()
    _assert_same(predictor.predict(photo, options), reference.predict(photo, options))


def test_a_dense_onnx_that_claims_detections_is_refused(
    student: ExportedStudent, tmp_path: Path
) -> None:
    liar = tmp_path / "student.onnx"
    shutil.copy(student.onnx, liar)
    write_metadata(liar, {**student.metadata, "onnx_output_kind": "detections"})
    with pytest.raises(PredictError, match=r"onnx_output_kind 'detections' but the outputs"):
        load_predictor(liar)
