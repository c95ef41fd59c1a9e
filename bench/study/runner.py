"""Running the study's jobs with core.engine.run_job: train, then score on the test split.

Each run keeps `record.json` next to its outputs; a rerun of the study skips runs whose specs
did not change, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.study.plan import (
    TEACHER,
    Scale,
    StudyRun,
    evaluation_spec,
    student_spec,
    teacher_spec,
)
from core.spec import JobSpec

log = logging.getLogger("bench.study")


@dataclass
class RunRecord:
    """The outcome of one study run: its metrics on val (end of training) and on test."""

    key: str
    track: str
    group: str
    variant: str
    seed: int
    spec_hash: str = ""
    test_spec_hash: str = ""
    train_metrics: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when both the training and the test evaluation finished."""
        return self.error is None and bool(self.test_metrics)

    def test_scores(self) -> dict[str, Any]:
        """The evaluated model's COCO metrics on the test split ({} when missing)."""
        role = "teacher" if self.variant == TEACHER else "student"
        return dict(self.test_metrics.get(role) or {})

    def efficiency(self) -> dict[str, Any]:
        """Params, GFLOPs and latency of the trained model (from the training job)."""
        role = "teacher" if self.variant == TEACHER else "student"
        return dict((self.train_metrics.get("efficiency") or {}).get(role) or {})

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """Read a record written by `save`."""
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        """Write the record as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True), encoding="utf-8")


def run_folder(out: Path, run: StudyRun) -> Path:
    """Where one run's outputs live: `out/runs/<track>/<variant>/seed<k>`."""
    return out / "runs" / run.key


def teacher_weights(out: Path, track: str, seed: int) -> Path:
    """The trained teacher of a track."""
    return out / "runs" / track / TEACHER / f"seed{seed}" / "train" / "teacher.safetensors"


class StudyRunner:
    """Executes study runs in order, caching finished ones and sharing teacher evaluations."""

    def __init__(
        self,
        scale: Scale,
        out: Path,
        data: dict[str, Path],
        *,
        run_job: Callable[..., Any] | None = None,
    ) -> None:
        if run_job is None:
            from core.engine.jobs import run_job as core_run_job

            run_job = core_run_job
        self.scale = scale
        self.out = out
        self.data = data
        self._run_job = run_job
        # One cache per track: the teacher is evaluated on val once, not in every variant.
        self._teacher_cache: dict[str, dict[str, Any]] = {}

    def specs(self, run: StudyRun) -> tuple[JobSpec, JobSpec]:
        """(training spec, test-evaluation spec) of a run."""
        data = self.data[run.track]
        folder = run_folder(self.out, run) / "train"
        if run.variant == TEACHER:
            train = teacher_spec(self.scale, run, data)
            test = evaluation_spec(
                self.scale, run, data, teacher=folder / "teacher.safetensors", student=None
            )
        else:
            weights = teacher_weights(self.out, run.track, self.scale.data_seed)
            train = student_spec(self.scale, run, data, weights)
            test = evaluation_spec(
                self.scale, run, data, teacher=None, student=folder / "student.safetensors"
            )
        return train, test

    def execute(self, run: StudyRun) -> RunRecord:
        """Train and test one run, or return its cached record when the specs are unchanged."""
        folder = run_folder(self.out, run)
        train_spec, test_spec = self.specs(run)
        record_path = folder / "record.json"
        if record_path.is_file():
            cached = RunRecord.load(record_path)
            if (
                cached.ok
                and cached.spec_hash == train_spec.spec_hash()
                and cached.test_spec_hash == test_spec.spec_hash()
            ):
                log.info("%s: cached", run.key)
                return cached
        record = RunRecord(
            key=run.key,
            track=run.track,
            group=run.group,
            variant=run.variant,
            seed=run.seed,
            spec_hash=train_spec.spec_hash(),
            test_spec_hash=test_spec.spec_hash(),
        )
        started = time.perf_counter()
        try:
            cache = self._teacher_cache.setdefault(run.track, {})
            kwargs: dict[str, Any] = {} if run.variant == TEACHER else {"teacher_cache": cache}
            trained = self._run_job(train_spec, folder / "train", **kwargs)
            record.train_metrics = dict(trained.metrics)
            tested = self._run_job(test_spec, folder / "test")
            record.test_metrics = dict(tested.metrics)
        except Exception as err:  # one failed run must not sink a 90-minute study
            record.error = f"{type(err).__name__}: {err}"
            log.error("%s failed:\n%s", run.key, traceback.format_exc())
        record.seconds = time.perf_counter() - started
        folder.mkdir(parents=True, exist_ok=True)
        record.save(record_path)
        return record
