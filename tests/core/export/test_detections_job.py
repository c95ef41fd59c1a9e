"""A job's student_detections.onnx: exported and checked on a val image, or, when the export
fails, the reason in metrics.json and no file (the job goes on)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from core.engine.report import export_lines
from core.pipeline import outputs
from core.pipeline.outputs import DETECTIONS_ONNX, export_detections
from core.predict.loading import load_predictor
from core.predict.onnx_model import OnnxPredictor
from tests.core.predict.students import job_metadata, tiny_student


def _run(out: Path) -> Any:
    """The parts of a RunContext the export reads: the folder, the spec's size, val batches."""
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    return SimpleNamespace(
        out=out,
        spec=SimpleNamespace(data=SimpleNamespace(image_size=64)),
        val_loader=[SimpleNamespace(images=images)],
    )


def test_the_detections_export_is_checked_on_a_val_image(tmp_path: Path) -> None:
    student = tiny_student()
    figures, files = export_detections(_run(tmp_path), student, job_metadata(student))
    assert [(f.kind, f.path) for f in files] == [
        ("student_onnx_detections", tmp_path / DETECTIONS_ONNX)
    ]
    assert figures["detections_max_abs_diff"] < 1e-3 and figures["detections_checked"] > 0
    assert figures["detections_seconds"] >= 0
    predictor = load_predictor(tmp_path / DETECTIONS_ONNX)  # the metadata is embedded
    assert isinstance(predictor, OnnxPredictor) and predictor.detections_inside
    assert [c.id for c in predictor.meta.categories] == [7, 9]
    lines = export_lines({"onnx_max_abs_diff": 1e-6, **figures})
    assert "`student_detections.onnx`" in lines[-1]
    assert f"over {figures['detections_checked']} detections" in lines[-1]


def test_a_failed_export_is_recorded_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def untraceable(detector: Any, path: Path, **_: Any) -> Any:
        path.write_bytes(b"half an onnx")
        raise RuntimeError("Exporting the operator 'aten::unique' to ONNX is not supported")

    monkeypatch.setattr(outputs, "export_onnx_detections", untraceable)
    student = tiny_student()
    figures, files = export_detections(_run(tmp_path), student, job_metadata(student))
    assert files == [] and not (tmp_path / DETECTIONS_ONNX).exists()
    assert figures == {
        "detections_error": "RuntimeError: Exporting the operator 'aten::unique' to ONNX is "
        "not supported"
    }
    lines = export_lines({"onnx_max_abs_diff": 1e-6, **figures})
    assert lines[-1].startswith("No ONNX export with post-processing: RuntimeError")
