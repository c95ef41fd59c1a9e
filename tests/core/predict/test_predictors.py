"""Predictors from a job's safetensors and ONNX: they agree, and bad files are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.transforms import letterbox as training_letterbox
from core.data.transforms import unletterbox_boxes
from core.export.weights import save_safetensors
from core.models.checkpoints import CheckpointMismatchError
from core.predict.detections import Detections
from core.predict.errors import PredictError
from core.predict.loading import load_predictor
from core.predict.metadata import load_meta_file
from core.predict.onnx_model import OnnxPredictor
from core.predict.torch_model import TorchPredictor
from tests.core.predict.students import ExportedStudent


def _assert_same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    assert np.array_equal(a.labels, b.labels)
    assert np.allclose(a.scores, b.scores, atol=1e-4)
    assert np.allclose(a.boxes, b.boxes, atol=0.05)


def test_safetensors_and_onnx_predict_the_same(
    student: ExportedStudent, photo: Image.Image
) -> None:
    torch_model = load_predictor(student.safetensors)
    onnx_model = load_predictor(student.onnx)  # metadata from the safetensors beside it
    assert isinstance(torch_model, TorchPredictor)
    assert isinstance(onnx_model, OnnxPredictor)
    assert onnx_model.meta == torch_model.meta
    options = torch_model.options(score_threshold=0.01)
    from_torch = torch_model.predict(photo, options)
    from_onnx = onnx_model.predict(photo, options)
    assert len(from_torch) > 5
    _assert_same(from_torch, from_onnx)
    # Boxes are in the photo's pixels.
    assert from_torch.boxes[:, [0, 2]].max() <= photo.width
    assert from_torch.boxes[:, [1, 3]].max() <= photo.height


def test_the_torch_predictor_is_the_detector_on_the_training_letterbox(
    student: ExportedStudent, photo: Image.Image
) -> None:
    boxed = training_letterbox(photo, np.zeros((0, 4)), 64)
    images = torch.from_numpy(boxed.image).permute(2, 0, 1).float().div(255)[None]
    with torch.no_grad():
        expected = student.detector(images).detections[0]  # type: ignore[index]
    boxes = unletterbox_boxes(expected["boxes"].numpy(), boxed.scale, boxed.pad)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, photo.width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, photo.height)
    predictor = load_predictor(student.safetensors)
    got = predictor.predict(photo, predictor.options())
    assert len(expected["scores"]) > 0
    _assert_same(
        got,
        Detections(
            boxes=boxes, scores=expected["scores"].numpy(), labels=expected["labels"].numpy()
        ),
    )


def test_an_onnx_without_metadata_asks_for_meta(
    student: ExportedStudent, photo: Image.Image, tmp_path: Path
) -> None:
    alone = tmp_path / "model.onnx"
    shutil.copy(student.onnx, alone)
    with pytest.raises(PredictError, match=r"carries no metadata.*--meta"):
        load_predictor(alone)
    sidecar = tmp_path / "meta.json"
    sidecar.write_text(json.dumps(load_meta_file(student.safetensors).to_dict()))
    from_json = load_predictor(alone, meta=sidecar)
    from_weights = load_predictor(alone, meta=student.safetensors)
    options = from_json.options(score_threshold=0.01)
    _assert_same(from_json.predict(photo, options), from_weights.predict(photo, options))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        json.dumps({**load_meta_file(student.safetensors).to_dict(), "image_size": 96})
    )
    with pytest.raises(PredictError, match="does not take 96 px images"):
        load_predictor(alone, meta=wrong)


def test_weights_that_do_not_fit_name_their_keys(student: ExportedStudent, tmp_path: Path) -> None:
    state = dict(student.detector.state_dict())
    dropped = "head.classification_head.cls_logits.weight"
    del state[dropped]
    state["head.extra.weight"] = torch.zeros(1)
    broken = save_safetensors(tmp_path / "broken.safetensors", state, metadata=student.metadata)
    with pytest.raises(CheckpointMismatchError, match=rf"missing keys: {dropped}") as err:
        TorchPredictor.from_safetensors(broken, device=torch.device("cpu"))
    assert "unexpected keys: head.extra.weight" in str(err.value)


def test_model_files_that_cannot_be_used_are_named(tmp_path: Path) -> None:
    with pytest.raises(PredictError, match=r"a model is a .safetensors or .onnx file"):
        load_predictor(tmp_path / "model.pt")
    with pytest.raises(PredictError, match="no such file"):
        load_predictor(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(PredictError, match=r"garbage.onnx: not a readable ONNX model"):
        load_predictor(garbage, meta=None)
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x00" * 16)
    with pytest.raises(PredictError, match=r"fake.safetensors: not a readable safetensors"):
        load_predictor(fake)
