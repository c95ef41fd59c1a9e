"""Sliced evaluation (data.tile): the tiles of the full images through the detector, boxes
merged across tiles and scored against the full images' ground truth; a tiny tiled job
through the engine whose metrics and report say they are sliced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from core.data.synthetic import generate_synthetic
from core.evaluation.coco import CocoEvaluator
from core.evaluation.inference import evaluate_sliced
from core.pipeline import context as pipeline_context
from core.pipeline.run import run_job
from core.predict.slicing import SliceOptions
from core.spec import JobSpec


class BrightBoxes(nn.Module):
    """A toy detector: in each image, the bounding box of its near-white pixels (label 1),
    scored by how many it sees (a box cut by a tile border scores below the whole one)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        self.seen.append(tuple(images.shape))
        out = []
        for image in images:
            ys, xs = torch.nonzero(image.min(dim=0).values > 0.9, as_tuple=True)
            if len(xs) == 0:
                boxes, scores = torch.zeros(0, 4), torch.zeros(0)
            else:
                box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                boxes = torch.stack(box).float()[None]
                scores = torch.tensor([min(1.0, len(xs) / 400)])
            out.append({"boxes": boxes, "scores": scores,
                        "labels": torch.ones(len(scores), dtype=torch.int64)})  # fmt: skip
        return out


def _ground_truth(box: list[float]) -> dict[str, Any]:
    ann = {"id": 1, "image_id": 7, "category_id": 5, "bbox": box, "area": box[2] * box[3]}
    return {
        "images": [{"id": 7, "width": 128, "height": 128, "file_name": "a.png"}],
        "annotations": [{**ann, "iscrowd": 0}],
        "categories": [{"id": 5, "name": "car"}],
    }


def test_a_box_cut_by_a_tile_border_comes_back_once_from_sliced_evaluation() -> None:
    pixels = np.zeros((128, 128, 3), dtype=np.uint8)
    pixels[20:36, 56:72] = 255  # x 56..72 straddles the border x = 64 of the first tile
    image = Image.fromarray(pixels)
    detector = BrightBoxes()
    evaluator = CocoEvaluator(_ground_truth([56, 20, 16, 16]), {1: 5})
    options = SliceOptions(size=64, overlap=0.25)  # tiles at x 0, 48, 64: cut, whole, cut
    cpu = torch.device("cpu")
    metrics = evaluate_sliced(
        detector, [(7, image)], evaluator, image_size=64, slicing=options, device=cpu, batch_size=4
    )
    # 9 tiles and the whole image, letterboxed to 64 px, in batches of at most 4
    assert [shape[0] for shape in detector.seen] == [4, 4, 2]
    assert all(shape[1:] == (3, 64, 64) for shape in detector.seen)
    assert len(evaluator.results) == 1  # the two halves merged into the whole box
    assert evaluator.results[0]["bbox"] == [56.0, 20.0, 16.0, 16.0]  # full-image pixels
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)
    # Merged by IoU instead, the cut halves stay as false positives.
    evaluator = CocoEvaluator(_ground_truth([56, 20, 16, 16]), {1: 5})
    by_iou = SliceOptions(size=64, overlap=0.25, merge="nms", metric="iou")
    evaluate_sliced(detector, [(7, image)], evaluator, image_size=64, slicing=by_iou, device=cpu)
    assert len(evaluator.results) == 3


def test_a_tiny_tiled_job_is_evaluated_sliced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = generate_synthetic(tmp_path / "data", images=4, size=128, seed=0)
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs["image_size"])
        return evaluate_sliced(*args, **kwargs)

    monkeypatch.setattr(pipeline_context, "evaluate_sliced", counting)
    spec = JobSpec.model_validate({
        "kind": "teacher",
        "data": {"path": str(dataset), "image_size": 64, "batch_size": 2,
                 "augment": {"hflip": False}, "tile": {"size": 64, "overlap": 0.25}},
        "teacher": {"arch": "retinanet_resnet18_fpn", "fpn_channels": 8},
        "schedule": {"epochs": 1, "max_steps_per_epoch": 1, "warmup_steps": 1, "device": "cpu",
                     "eval_every": 1},
    })  # fmt: skip
    result = run_job(spec, tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert metrics["evaluation"] == {
        "mode": "sliced", "split": "val", "images": 1, "image_size": 64, "tile_size": 64,
        "overlap": 0.25, "full_image": True, "merge": "nmm (ios > 0.5)",
    }  # fmt: skip
    assert calls and set(calls) == {64}  # the figures came from sliced inference
    assert set(metrics["teacher"]) >= {"AP", "AP_small", "per_class"}
    assert isinstance(metrics["dataset"]["warnings"], list)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "`val` split: 1 full image by sliced inference: tiles of 64 px, overlap 0.25" in report

    # Distilling on chips: the teacher-feature cache, keyed by (image id, flipped), is off.
    distill = spec.model_copy(update={"kind": "distill"}).model_dump()
    distill["teacher"]["checkpoint"] = str(tmp_path / "out" / "teacher.safetensors")
    distill["student"] = {"arch": "retinanet_mobilenet_v2_fpn", "fpn_channels": 8}
    distill["data"]["augment"]["hflip"] = True
    distill["distill"]["diagnose_every"] = 0
    metrics = run_job(JobSpec.model_validate(distill), tmp_path / "student").metrics
    assert metrics["distill/teacher_cache"]["enabled"] is False
    assert "data.tile" in metrics["distill/teacher_cache"]["reason"]
    assert metrics["evaluation"]["mode"] == "sliced" and metrics["student"] is not None
