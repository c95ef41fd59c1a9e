"""report.md says above the accuracy table which split and how many images the AP comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.data.loader import build_loaders
from core.data.synthetic import generate_synthetic
from core.engine.distributed import DistributedContext
from core.engine.report import evaluated_images, evaluation_line, write_report
from core.pipeline.context import RunContext
from core.spec import JobSpec

SPEC = JobSpec.model_validate(
    {"kind": "teacher", "data": {"path": "d", "image_size": 128, "val_split": "test"},
     "teacher": {}}
)  # fmt: skip
FIGURES = {"AP": 0.1, "AP50": 0.2, "AP75": 0.05, "AP_small": 0.04, "AP_medium": 0.3,
           "AP_large": -1.0, "per_class": {}}  # fmt: skip


def _metrics(**extra: Any) -> dict[str, Any]:
    return {"kind": "teacher", "spec_hash": "abc", "student": None, "teacher": FIGURES,
            "efficiency": {}, **extra}  # fmt: skip


def test_the_line_above_the_table_names_the_split_the_count_and_the_letterbox(
    tmp_path: Path,
) -> None:
    evaluation = {"mode": "whole", "split": "test", "images": 40, "image_size": 128}
    metrics = _metrics(evaluation=evaluation, dataset={"val_images": 40})
    report = write_report(tmp_path / "report.md", spec=SPEC, metrics=metrics).read_text()
    lines = report.splitlines()
    line = "Evaluated on the `test` split: 40 images, letterboxed to 128 px."
    assert line in lines
    # above the table, in the accuracy section
    assert lines.index(line) < lines.index(next(ln for ln in lines if ln.startswith("| model |")))
    assert lines.index("## Accuracy (COCO, %; n/a: no such objects in the ground truth)") < (
        lines.index(line)
    )
    one = {**evaluation, "images": 1}
    assert evaluation_line(_metrics(evaluation=one), SPEC) == (
        "Evaluated on the `test` split: 1 image, letterboxed to 128 px."
    )


def test_sliced_evaluation_keeps_its_tile_sentence_and_adds_the_count() -> None:
    evaluation = {"mode": "sliced", "split": "val", "images": 4, "image_size": 64,
                  "tile_size": 64, "overlap": 0.25, "full_image": True,
                  "merge": "nmm (ios > 0.5)"}  # fmt: skip
    assert evaluation_line(_metrics(evaluation=evaluation), SPEC) == (
        "Evaluated on the `val` split: 4 full images by sliced inference: tiles of 64 px, "
        "overlap 0.25, merged nmm (ios > 0.5), with the whole image (data.tile)."
    )
    older = {k: v for k, v in evaluation.items() if k != "images"}
    older["full_image"] = False
    assert evaluation_line(_metrics(evaluation=older), SPEC) == (
        "Evaluated on the `val` split: the full images by sliced inference: tiles of 64 px, "
        "overlap 0.25, merged nmm (ios > 0.5) (data.tile)."
    )


def test_older_metrics_read_without_an_image_count_or_an_evaluation_record() -> None:
    # Written before `evaluation.images`: the dataset's val count (the same number) stands in.
    before = {"mode": "whole", "split": "val", "image_size": 96}
    metrics = _metrics(evaluation=before, dataset={"train_images": 8, "val_images": 12})
    assert evaluated_images(metrics) == 12
    assert evaluation_line(metrics, SPEC) == (
        "Evaluated on the `val` split: 12 images, letterboxed to 96 px."
    )
    # Neither count: the split and the letterbox only, no made-up number.
    assert evaluated_images(_metrics(evaluation=before)) is None
    assert evaluation_line(_metrics(evaluation=before), SPEC) == (
        "Evaluated on the `val` split, letterboxed to 96 px."
    )
    # No evaluation record at all: the job's spec says the split and the size.
    assert evaluation_line(_metrics(), SPEC) == (
        "Evaluated on the `test` split, letterboxed to 128 px."
    )
    assert evaluated_images(_metrics(evaluation={"images": True})) is None


def test_metrics_count_the_images_evaluated_after_max_val_images(tmp_path: Path) -> None:
    dataset = generate_synthetic(tmp_path / "data", images=10, size=64, seed=0)  # 2 val images
    spec = JobSpec.model_validate(
        {"kind": "teacher", "data": {"path": str(dataset), "image_size": 64,
                                     "max_val_images": 1}, "teacher": {}}
    )  # fmt: skip
    train, val, info = build_loaders(spec.data, seed=0)
    run = RunContext(spec=spec, out=tmp_path, device=torch.device("cpu"),
                     context=DistributedContext(), train_loader=train, val_loader=val, info=info,
                     hooks=[], progress=False, on_checkpoint=None, resume=None)  # fmt: skip
    mode = run.evaluation_mode()
    assert mode == {"mode": "whole", "split": "val", "images": 1, "image_size": 64}
    assert len(info.val_gt["images"]) == 1  # the count is that of the scored ground truth
    assert evaluation_line(_metrics(evaluation=mode), spec) == (
        "Evaluated on the `val` split: 1 image, letterboxed to 64 px."
    )
    uncapped = spec.data.model_copy(update={"max_val_images": None})
    assert build_loaders(uncapped, seed=0)[2].val_images == 2
