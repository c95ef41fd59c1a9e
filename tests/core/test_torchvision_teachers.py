"""Teachers trained with torchvision distil as they are: torchvision's own model with random
weights, saved with torch.save, through the engine's job entry point (`core.pipeline.run`).

The platform path (upload, validation, a job on the worker) runs one of them in
tests/api/test_backbones.py; the others take this shorter path to keep the suite fast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from core.engine.hooks import ListSink, MetricSinkHook
from core.evaluation.efficiency import efficiency_report
from core.models.detectors import TORCHVISION_ARCHS
from core.pipeline import recipes
from core.pipeline.context import RunContext
from core.pipeline.run import run_job
from core.spec import LARGEST_STRIDES, JobSpec

CATEGORIES = 5  # tests/core/conftest.py's tiny_coco
VANISHING_FEATURES = {"torchvision_fasterrcnn_mobilenet_v3_large_fpn"}
"""Randomly initialised, torchvision's MobileNetV3 FPN gives features of about 1e-9 (measured):
standardised per channel they read as constant, and the feature term is 0."""


def torchvision_state_dict(arch: str, *, num_classes: int) -> dict[str, torch.Tensor]:
    """The state dict of torchvision's own builder for `arch`, randomly initialised."""
    builder = getattr(torchvision.models.detection, arch.removeprefix("torchvision_"))
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
    state: dict[str, torch.Tensor] = model.state_dict()
    return state


def tiny_distill_spec(data: str, arch: str, checkpoint: Path) -> dict[str, Any]:
    """One step on one image at the smallest size the teacher allows (64 px, or its stride),
    scored on one val image."""
    return {
        "kind": "distill",
        "data": {
            "path": data,
            "image_size": max(64, LARGEST_STRIDES[arch]),
            "batch_size": 1,
            "max_train_images": 1,
            "max_val_images": 1,
            "augment": {"hflip": False},
        },
        "teacher": {"arch": arch, "checkpoint": str(checkpoint)},
        "student": {"arch": "retinanet_mobilenet_v2_fpn", "fpn_channels": 16},
        "schedule": {
            "epochs": 1,
            "max_steps_per_epoch": 1,
            "warmup_steps": 0,
            "eval_every": 100,
            "log_every": 1,
            "device": "cpu",
            "amp": False,
        },
    }


@pytest.fixture
def quick_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Latency timed with 1 run instead of 10: a ResNet-50 teacher's timing is most of a job."""

    def efficiency_of(
        run: RunContext, model: torch.nn.Module, *, onnx_path: Path | None = None
    ) -> dict[str, Any]:
        return efficiency_report(
            model,
            image_size=run.spec.data.image_size,
            device=run.device,
            repeats=1,
            warmup=0,
            onnx_path=onnx_path,
        )

    monkeypatch.setattr(recipes, "efficiency_of", efficiency_of)


@pytest.mark.usefixtures("quick_latency")
@pytest.mark.parametrize("arch", sorted(TORCHVISION_ARCHS))
def test_a_torchvision_teacher_distils_as_saved(arch: str, tiny_coco: Path, tmp_path: Path) -> None:
    path = tmp_path / f"{arch}.pth"
    torch.save(torchvision_state_dict(arch, num_classes=CATEGORIES + 1), path)
    spec = JobSpec.model_validate(tiny_distill_spec(str(tiny_coco), arch, path))
    sink = ListSink()
    result = run_job(spec, tmp_path / "out", hooks=[MetricSinkHook(sink)])
    assert {"student_safetensors", "student_onnx"} <= {a.kind for a in result.artifacts}
    # Every student level is taught by a teacher level (two-stage teachers by features).
    pairs = result.metrics["distill/pairs"]
    assert set(pairs) == {"p2", "p3", "p4", "p5"}
    names = {name for _, _, values in sink.records for name in values}
    assert {"kd/spatial/p2", "kd/spatial/p5", "det/classification"} <= names
    # P2 (16 x 16 cells at 64 px) is taught by a resized coarser teacher level: a real term.
    kd = [v["kd/spatial/p2"] for _, _, v in sink.records if "kd/spatial/p2" in v]
    assert kd and all(math.isfinite(value) for value in kd)
    if arch not in VANISHING_FEATURES:
        assert all(value > 0 for value in kd)
    teacher = result.metrics["teacher"]
    assert set(teacher) >= {"AP", "AP_small"}
    assert result.metrics["efficiency"]["teacher"]["params"] > 1_000_000
