"""The exported ONNX describes itself (metadata_props, read back by core.predict), and the
optional export with the post-processing inside (boxes, scores, labels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from core.export.metadata import detector_metadata
from core.export.onnx import DETECTION_OUTPUTS, export_onnx, export_onnx_detections
from core.export.weights import save_safetensors
from core.predict.metadata import Category, load_meta_file
from core.predict.onnx_model import OnnxPredictor
from tests.core.predict.students import job_metadata, tiny_student

REQUIRED = {
    "format",
    "arch",
    "family",
    "num_classes",
    "image_size",
    "fpn_channels",
    "categories",
    "pad_value",
    "input",
    "background_column",
    "anchor_sizes",
    "anchor_aspect_ratios",
    "box_coding",
    "score",
    "score_threshold",
    "topk_candidates",
    "nms_threshold",
    "detections_per_image",
}


def _value(raw: str) -> object:
    """A metadata value as JSON where it is JSON (a hash like '2a01...' stays a string)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _props(path: Path) -> dict[str, object]:
    model = onnx.load(str(path))
    return {p.key: _value(p.value) for p in model.metadata_props}


def test_a_jobs_onnx_carries_what_predict_reads(tmp_path: Path) -> None:
    detector = tiny_student()
    detector.set_postprocess(score_threshold=0.07, detections_per_image=30)
    metadata = job_metadata(detector)  # the pipeline's provenance, as a distill job writes it
    onnx_path = tmp_path / "alone" / "student.onnx"
    export_onnx(detector, onnx_path, image_size=64, metadata=metadata)
    props = _props(onnx_path)
    assert set(props) >= REQUIRED
    assert props["categories"] == [{"id": 7, "name": "car"}, {"id": 9, "name": "person"}]
    assert (props["pad_value"], props["background_column"]) == (114, 0)
    assert props["input"]["range"] == [0.0, 1.0] and props["input"]["color"] == "RGB"  # type: ignore[index]
    assert props["anchor_sizes"][0] == [16.0, 20.0, 25.0] and len(props["anchor_sizes"]) == 4  # type: ignore[index]
    assert props["box_coding"]["type"] == "deltas"  # type: ignore[index]
    assert props["score"] == "sigmoid(cls_logits)"
    assert (props["score_threshold"], props["detections_per_image"]) == (0.07, 30)
    assert (props["topk_candidates"], props["nms_threshold"]) == (1000, 0.5)
    assert props["onnx_outputs"] == ["bbox_regression", "cls_logits"]
    assert props["onnx_output_kind"] == "dense"
    # Read back by the predictor from the ONNX alone (no sidecar beside it) ...
    predictor = OnnxPredictor(onnx_path)
    meta = predictor.meta
    assert meta.categories == (Category(7, "car"), Category(9, "person"))
    assert (meta.score_threshold, meta.detections_per_image) == (0.07, 30)
    # ... exactly as from the safetensors the job writes beside it.
    weights = save_safetensors(
        tmp_path / "student.safetensors", detector.state_dict(), metadata=metadata
    )
    assert meta == load_meta_file(weights)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    found = predictor.predict(photo, predictor.options())
    assert 0 < len(found) <= 30 and float(found.scores.min()) > 0.07


@pytest.mark.parametrize(
    ("arch", "score", "coding"),
    [("fcos_mobilenet_v2_fpn", "sqrt(sigmoid(cls_logits) * sigmoid(bbox_ctrness))", "ltrb")],
)
def test_the_description_follows_the_family(arch: str, score: str, coding: str) -> None:
    metadata = detector_metadata(tiny_student(arch))
    assert metadata["score"] == score and metadata["box_coding"]["type"] == coding
    assert metadata["anchor_sizes"] == [[4.0], [8.0], [16.0], [32.0]]
    assert metadata["nms_threshold"] == 0.6 and metadata["strides"] == [4, 8, 16, 32]


def test_the_export_with_post_processing_gives_the_detections(tmp_path: Path) -> None:
    detector = tiny_student()
    path = tmp_path / "student_detections.onnx"
    parity = export_onnx_detections(detector, path, image_size=64, metadata={"format": "x"})
    assert parity.max_abs_diff < 1e-3 and parity.detections > 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(DETECTION_OUTPUTS)
    assert _props(path)["onnx_outputs"] == list(DETECTION_OUTPUTS)
    assert _props(path)["onnx_output_kind"] == "detections"
    # Another image: the number of detections follows the image, as in PyTorch.
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        expected = detector.eval()(image).detections[0]  # type: ignore[index]
    boxes, scores, labels = session.run(None, {"images": image.numpy()})
    assert len(scores) == len(expected["scores"]) > 0
    assert np.allclose(boxes, expected["boxes"].numpy(), atol=1e-3)
    assert np.allclose(scores, expected["scores"].numpy(), atol=1e-4)
    assert np.array_equal(labels, expected["labels"].numpy())
