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
from core.evaluation.inference import evaluate_detector
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
        """`detector` scored on the val split."""
        return evaluate_detector(detector, self.val_loader, self.evaluator(), device=self.device)
