"""A distill job's explanation pictures: Grad-CAM and TP / FP / missed boxes, linked by the
report under their own headings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from core.engine.report import write_report
from core.pipeline.outputs import explanation_pictures
from core.spec import JobSpec
from core.structures import Batch, Target
from tests.core.predict.students import tiny_student


def _batch() -> Batch:
    small = torch.tensor([[4.0, 4.0, 12.0, 12.0], [20.0, 20.0, 30.0, 28.0]])
    large = torch.tensor([[0.0, 0.0, 60.0, 60.0]])
    return Batch(
        images=torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)),
        targets=[
            Target(boxes=large, labels=torch.ones(1, dtype=torch.int64)),
            Target(boxes=small, labels=torch.tensor([1, 2])),
        ],
        image_ids=[1, 2],
        scales=[1.0, 1.0],
        pads=[(0, 0), (0, 0)],
    )


def test_every_distill_job_writes_and_links_its_explanations(tmp_path: Path) -> None:
    run = SimpleNamespace(val_loader=[_batch()], out=tmp_path, device=torch.device("cpu"))
    teacher, student = tiny_student(seed=1), tiny_student(seed=2)
    files = explanation_pictures(run, teacher=teacher, student=student)  # type: ignore[arg-type]
    names = [f.path.name for f in files]
    assert names == ["gradcam_01.png", "gradcam_02.png", "boxes_01.png", "boxes_02.png"]
    assert {f.kind for f in files} == {"picture"}
    assert all(f.path.parent == tmp_path / "pictures" for f in files)
    spec = JobSpec.model_validate(
        {
            "kind": "distill",
            "data": {"path": "d", "image_size": 64},
            "teacher": {"arch": "retinanet_resnet18_fpn", "checkpoint": "t.safetensors"},
            "student": {},
        }
    )
    report = write_report(
        tmp_path / "report.md",
        spec=spec,
        metrics={"spec_hash": "x"},
        pictures=[tmp_path / "pictures" / "attention_01.png", *(f.path for f in files)],
    )
    text = report.read_text()
    assert "## Attention" in text and "## Grad-CAM" in text and "## Predicted boxes" in text
    assert text.index("## Grad-CAM") < text.index("![gradcam_01](pictures/gradcam_01.png)")
    assert text.index("## Predicted boxes") < text.index("![boxes_01](pictures/boxes_01.png)")
