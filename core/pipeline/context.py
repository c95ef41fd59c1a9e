"""What the stages of one job share: the run context, its results and files."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from core.data.loader import DatasetInfo
from core.engine.distributed import (
    DistributedContext,
)
from core.engine.hooks import HookBase
from core.evaluation.coco import CocoEvaluator
from core.evaluation.inference import evaluate_detector, evaluate_sliced
from core.models.detectors import Detector
from core.predict.slicing import SliceOptions
from core.spec import JobSpec

log = logging.getLogger("distillery.engine")

STUDENT_FORMAT = "distillery.student/1"
TEACHER_FORMAT = "distillery.teacher/1"


@dataclass(frozen=True)
class ArtifactFile:
    """A file a job produced; `kind` is one of store.models.ARTIFACT_KINDS."""

    kind: str
    path: Path


@dataclass
class JobResult:
    """What a finished job hands back: the metrics.json content and the files it wrote."""

    metrics: dict[str, Any]
    artifacts: list[ArtifactFile] = field(default_factory=list)


def resolve_device(choice: str) -> torch.device:
    """The device of ScheduleSpec.device: `auto` is CUDA when available, else CPU."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("schedule.device: 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


@dataclass
class RunContext:
    """What the stages of one job share: spec, folder, device, loaders, hooks, resume."""

    spec: JobSpec
    out: Path
    device: torch.device
    context: DistributedContext
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any]
    info: DatasetInfo
    hooks: Sequence[HookBase]
    progress: bool
    on_checkpoint: Callable[[Path], None] | None
    resume: dict[str, Any] | None
    last_eval: dict[str, Any] | None = None
    feature_cache_dir: Path | None = None

    def evaluator(self) -> CocoEvaluator:
        """A fresh COCO evaluator of the val split."""
        return CocoEvaluator(self.info.val_gt, self.info.label_to_cat_id)

    def evaluate(self, detector: nn.Module) -> dict[str, Any]:
        """`detector` scored on the val split: on its letterboxed images, or with data.tile
        by sliced inference on the full images (the figures of a sliced deployment)."""
        tile, data = self.spec.data.tile, self.spec.data
        if tile is None or self.info.sliced_val is None:
            return evaluate_detector(
                detector, self.val_loader, self.evaluator(), device=self.device
            )
        cap = None
        if isinstance(detector, Detector):
            cap = int(detector.postprocess_settings()["detections_per_image"])
        return evaluate_sliced(
            detector,
            self.info.sliced_val.full_images(),
            self.evaluator(),
            image_size=data.image_size,
            slicing=self.slice_options(),
            device=self.device,
            batch_size=data.batch_size,
            max_detections=cap,
        )

    def slice_options(self) -> SliceOptions:
        """The sliced inference of evaluation with data.tile: its grid, predict's merging."""
        tile = self.spec.data.tile
        assert tile is not None
        return SliceOptions(size=tile.size, overlap=tile.overlap, full_image=tile.full_image)

    def evaluation_mode(self) -> dict[str, Any]:
        """How the val figures were made (metrics.json `evaluation`): the split and how many
        of its images (after data.max_val_images), whole letterboxed images or sliced
        inference on the full images with the tile grid."""
        data = self.spec.data
        mode: dict[str, Any] = {
            "mode": "whole" if data.tile is None else "sliced",
            "split": data.val_split,
            "images": self.info.val_images,
            "image_size": data.image_size,
        }
        if data.tile is not None:
            options = self.slice_options()
            mode.update(
                tile_size=options.size,
                overlap=options.overlap,
                full_image=options.full_image,
                merge=f"{options.merge} ({options.metric} > {options.threshold})",
            )
        return mode
