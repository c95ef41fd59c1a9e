"""Exports: ONNX with onnxruntime parity, safetensors with provenance metadata."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from core.export.onnx import OnnxParityError, export_onnx
from core.export.weights import decode_metadata, load_safetensors, save_safetensors
from core.models.checkpoints import load_state_dict, load_weights
from core.models.detectors import build_student


def _student() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=64, fpn_channels=16
    )


def test_onnx_export_matches_pytorch(tmp_path: Path) -> None:
    student = _student()
    path = tmp_path / "student.onnx"
    diff = export_onnx(student, path, image_size=64)
    assert 0.0 <= diff < 1e-3
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["images"]
    assert {o.name for o in model.graph.output} == set(
        student.raw_outputs(torch.rand(1, 3, 64, 64))
    )
    assert student.training  # the caller's model keeps its mode
    with pytest.raises(OnnxParityError):
        export_onnx(student, tmp_path / "again.onnx", image_size=64, tolerance=-1.0)


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path: Path) -> None:
    student = _student()
    metadata = {
        "arch": "retinanet_mobilenet_v2_fpn",
        "metrics": {"AP": 0.25},
        "categories": [{"id": 1, "name": "a"}],
    }
    path = save_safetensors(
        tmp_path / "student.safetensors", student.state_dict(), metadata=metadata
    )
    tensors, raw = load_safetensors(path)
    assert raw["arch"] == "retinanet_mobilenet_v2_fpn"
    assert decode_metadata(raw) == metadata
    assert all(torch.equal(tensors[k], v) for k, v in student.state_dict().items())
    # The platform's safe loader reads it back into a fresh student strictly.
    fresh = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=64, fpn_channels=16
    )
    load_weights(fresh, load_state_dict(path), source=str(path))
    assert torch.equal(
        fresh.state_dict()["head.classification_head.cls_logits.weight"],
        student.state_dict()["head.classification_head.cls_logits.weight"],
    )
