"""Model metadata: what a job's safetensors says, read without torch; bad metadata named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.export.weights import decode_metadata, load_safetensors
from core.predict.errors import PredictError
from core.predict.metadata import (
    Category,
    decode_strings,
    load_meta_file,
    meta_from_dict,
    safetensors_metadata,
    safetensors_metadata_from_chunks,
)
from tests.core.predict.students import ExportedStudent


def test_a_jobs_safetensors_describes_the_student(student: ExportedStudent) -> None:
    meta = load_meta_file(student.safetensors)
    assert meta.arch == "retinanet_mobilenet_v2_fpn"
    assert meta.family == "retinanet"
    assert (meta.image_size, meta.num_classes, meta.fpn_channels) == (64, 3, 16)
    assert meta.categories == (Category(7, "car"), Category(9, "person"))
    assert meta.category(2) == Category(9, "person")
    assert meta.family_nms_threshold == 0.5
    with pytest.raises(PredictError, match=r"outside 1..2"):
        meta.category(3)


def test_the_header_is_read_as_safetensors_writes_it(student: ExportedStudent) -> None:
    _, expected = load_safetensors(student.safetensors)
    assert safetensors_metadata(student.safetensors) == expected
    data = student.safetensors.read_bytes()
    one_byte_chunks = (data[i : i + 1] for i in range(len(data)))
    assert safetensors_metadata_from_chunks(one_byte_chunks, source="s") == expected
    assert decode_strings(expected) == decode_metadata(expected)
    with pytest.raises(PredictError, match="not a safetensors file"):
        safetensors_metadata_from_chunks([b"\x01\x00"], source="s")
    with pytest.raises(PredictError, match="not a safetensors file"):
        safetensors_metadata_from_chunks([b"\xff" * 8 + b"{}"], source="s")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"image_size": 64, "num_classes": 3}, "no 'arch'"),
        ({"arch": "retinanet_mobilenet_v2_fpn", "num_classes": 3}, "no 'image_size'"),
        ({"arch": "yolo", "image_size": 64, "num_classes": 3}, "cannot be predicted"),
        (
            {"arch": "torchvision_fcos_resnet50_fpn", "image_size": 64, "num_classes": 3},
            "cannot be predicted",
        ),
        (
            {"arch": "fcos_mobilenet_v2_fpn", "image_size": 64, "num_classes": 3,
             "categories": [{"id": 1, "name": "a"}]},
            "num_classes - 1 = 2",
        ),
        (
            {"arch": "fcos_mobilenet_v2_fpn", "image_size": 64, "num_classes": "3"},
            "'num_classes' must be an integer",
        ),
        (
            {"arch": "fcos_mobilenet_v2_fpn", "family": "retinanet", "image_size": 64,
             "num_classes": 3},
            "does not match",
        ),
    ],
)  # fmt: skip
def test_bad_metadata_is_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(PredictError, match=message):
        meta_from_dict(raw, source="model.onnx")


def test_a_sidecar_json_round_trips_and_refuses_nan(
    student: ExportedStudent, tmp_path: Path
) -> None:
    meta = load_meta_file(student.safetensors)
    sidecar = tmp_path / "meta.json"
    sidecar.write_text(json.dumps(meta.to_dict()))
    assert load_meta_file(sidecar).to_dict() == meta.to_dict()
    sidecar.write_text('{"arch": "fcos_mobilenet_v2_fpn", "image_size": NaN}')
    with pytest.raises(PredictError, match="NaN is not valid JSON"):
        load_meta_file(sidecar)
    with pytest.raises(PredictError, match="no such metadata file"):
        load_meta_file(tmp_path / "missing.json")
