"""Running the study's jobs with core.engine.run_job; each job scores its model on one split.

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

from bench.study.plan import TEACHER, Scale, StudyRun, student_spec, teacher_spec
from core.spec import JobSpec

log = logging.getLogger("bench.study")


@dataclass
class RunRecord:
    """The outcome of one study run: the metrics.json of its job (scored on `split`)."""

    key: str
    track: str
    group: str
    variant: str
    seed: int
    split: str = "test"
    spec_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the job finished and wrote its metrics."""
        return self.error is None and bool(self.metrics)

    @property
    def role(self) -> str:
        """Which model of metrics.json this run trained: `teacher` or `student`."""
        return "teacher" if self.variant == TEACHER else "student"

    def scores(self) -> dict[str, Any]:
        """The trained model's COCO metrics on the run's split ({} when missing)."""
        return dict(self.metrics.get(self.role) or {})

    def efficiency(self) -> dict[str, Any]:
        """Params, GFLOPs and latency of the trained model."""
        return dict((self.metrics.get("efficiency") or {}).get(self.role) or {})

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """Read a record written by `save`."""
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        """Write the record as JSON."""
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True), encoding="utf-8")


def runs_root(out: Path, split: str) -> Path:
    """Folder of the runs scored on `split`: `out/runs` for test, `out/runs-val` for val."""
    return out / ("runs" if split == "test" else f"runs-{split}")


def run_folder(root: Path, run: StudyRun) -> Path:
    """Where one run's outputs live: `<root>/<track>/<variant>/seed<k>`."""
    return root / run.key


def student_weights(root: Path, track: str, variant: str, seed: int) -> Path:
    """The trained student of one run."""
    return root / track / variant / f"seed{seed}" / "job" / "student.safetensors"


def teacher_weights(root: Path, track: str, seed: int) -> Path:
    """The trained teacher of a track."""
    return root / track / TEACHER / f"seed{seed}" / "job" / "teacher.safetensors"


class StudyRunner:
    """Executes study runs in order, caching finished ones and sharing teacher evaluations."""

    def __init__(
        self,
        scale: Scale,
        out: Path,
        data: dict[str, Path],
        *,
        split: str = "test",
        run_job: Callable[..., Any] | None = None,
    ) -> None:
        if run_job is None:
            from core.engine.jobs import run_job as core_run_job

            run_job = core_run_job
        self.scale = scale
        self.root = runs_root(out, split)
        self.data = data
        self.split = split
        self._run_job = run_job
        # One cache per track: the teacher is evaluated on val once, not in every variant.
        self._teacher_cache: dict[str, dict[str, Any]] = {}

    def spec(self, run: StudyRun) -> JobSpec:
        """The job spec of a run."""
        data = self.data[run.track]
        if run.variant == TEACHER:
            return teacher_spec(self.scale, run, data, eval_split=self.split)
        weights = teacher_weights(self.root, run.track, self.scale.data_seed)
        return student_spec(self.scale, run, data, weights, eval_split=self.split)

    def execute(self, run: StudyRun) -> RunRecord:
        """Run one job, or return its cached record when its spec is unchanged."""
        folder = run_folder(self.root, run)
        spec = self.spec(run)
        record_path = folder / "record.json"
        if record_path.is_file():
            cached = RunRecord.load(record_path)
            if cached.ok and cached.spec_hash == spec.spec_hash():
                log.info("%s: cached", run.key)
                return cached
        record = RunRecord(
            key=run.key,
            track=run.track,
            group=run.group,
            variant=run.variant,
            seed=run.seed,
            split=self.split,
            spec_hash=spec.spec_hash(),
        )
        started = time.perf_counter()
        try:
            cache = self._teacher_cache.setdefault(run.track, {})
            kwargs: dict[str, Any] = {} if run.variant == TEACHER else {"teacher_cache": cache}
            result = self._run_job(spec, folder / "job", **kwargs)
            record.metrics = dict(result.metrics)
        except Exception as err:  # one failed run must not sink a 90-minute study
            record.error = f"{type(err).__name__}: {err}"
            log.error("%s failed:\n%s", run.key, traceback.format_exc())
        record.seconds = time.perf_counter() - started
        folder.mkdir(parents=True, exist_ok=True)
        record.save(record_path)
        return record
