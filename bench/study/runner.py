"""Running the study's jobs with core.engine.run_job; each job scores its model on one split.

Each run keeps `record.json` next to its outputs; a rerun of the study skips runs whose specs
did not change, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
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
    training_hash: str = ""  # what the job depended on, teacher file included (not the split)
    trained_by: str | None = None  # set when this run scored a model trained by another run

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


def training_hash(spec: JobSpec) -> str:
    """Hash of everything a job's training depends on: the spec less its name and eval split.

    A model is scored once, after its last step, so training does not depend on the split.
    """
    data = spec.data.model_copy(update={"val_split": ""})
    update: dict[str, Any] = {"name": None, "data": data}
    if spec.teacher is not None and spec.teacher.checkpoint:
        # The teacher file's content, not only its path: a retrained teacher is another one.
        checkpoint = Path(spec.teacher.checkpoint)
        digest = file_digest(checkpoint) if checkpoint.is_file() else "missing"
        update["teacher"] = spec.teacher.model_copy(update={"checkpoint": digest})
    return spec.model_copy(update=update).spec_hash()


@functools.lru_cache(maxsize=16)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """SHA-256 prefix of a file's bytes (cached per size and modification time)."""
    stat = path.stat()
    return _digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


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
            from core.pipeline.run import run_job as core_run_job

            run_job = core_run_job
        self.scale = scale
        self.out = out
        self.root = runs_root(out, split)
        self.data = data
        self.split = split
        self._run_job = run_job
        # One cache per track: the teacher is evaluated on val once, not in every variant.
        self._teacher_cache: dict[str, dict[str, Any]] = {}

    def teacher_checkpoint(self, track: str) -> Path:
        """The track's trained teacher: trained by this split's study, or by the test study's.

        Training a teacher does not depend on the split it is scored on (it is scored once,
        at the end), so a val study reuses the teacher that the test study trained.
        """
        own = teacher_weights(self.root, track, self.scale.data_seed)
        if own.is_file() or self.split == "test":
            return own
        return teacher_weights(runs_root(self.out, "test"), track, self.scale.data_seed)

    def spec(self, run: StudyRun) -> JobSpec:
        """The job spec of a run."""
        data = self.data[run.track]
        if run.variant == TEACHER:
            spec = teacher_spec(self.scale, run, data, eval_split=self.split)
            trained = self.teacher_checkpoint(run.track)
            if self.split != "test" and trained.is_file() and spec.teacher is not None:
                # Score the test study's teacher on this split instead of training it again.
                teacher = spec.teacher.model_copy(update={"checkpoint": str(trained)})
                return spec.model_copy(update={"kind": "evaluate", "teacher": teacher})
            return spec
        weights = self.teacher_checkpoint(run.track)
        return student_spec(self.scale, run, data, weights, eval_split=self.split)

    def trained_elsewhere(
        self, spec: JobSpec, wanted: str, own: Path | None = None
    ) -> tuple[Path, RunRecord] | None:
        """A student that another run trained with exactly this training (training hash
        `wanted`), if any: a run of the other split's study, or another run of this one.

        The test study scores a model the val study (tuning) trained on test instead of
        training it again: the same weights, chosen on val, reported on test. The val study
        scores a test-study model on val likewise (training never sees either split). Within
        one study two variants can train alike (without P2, a P2-P3 default is the P3-only
        variant): the later one scores the earlier one's model. Only a run that trained its
        model is a source (not one that scored another's), and `own`, the run's folder, never.
        """
        if spec.kind != "distill":
            return None
        other = "val" if self.split == "test" else "test"
        for root in (runs_root(self.out, other), self.root):
            for path in sorted(root.glob("*/*/seed*/record.json")):
                if own is not None and path.parent == own:
                    continue
                record = RunRecord.load(path)
                weights = path.parent / "job" / "student.safetensors"
                trained = record.ok and record.trained_by is None
                if trained and record.training_hash == wanted and weights.is_file():
                    return weights, record
        return None

    def execute(self, run: StudyRun) -> RunRecord:
        """Run one job, or return its cached record when its spec is unchanged."""
        folder = run_folder(self.root, run)
        planned = spec = self.spec(run)
        inputs = training_hash(planned)
        reused = self.trained_elsewhere(planned, inputs, own=folder)
        if reused is not None and planned.student is not None:
            student = planned.student.model_copy(update={"checkpoint": str(reused[0])})
            spec = planned.model_copy(
                update={"kind": "evaluate", "teacher": None, "student": student}
            )
        record_path = folder / "record.json"
        if record_path.is_file():
            cached = RunRecord.load(record_path)
            # The spec, and the teacher file's content: a retrained teacher invalidates.
            if (
                cached.ok
                and cached.spec_hash == spec.spec_hash()
                and cached.training_hash == inputs
            ):
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
            training_hash=inputs,
            trained_by=None if reused is None else f"{reused[1].split}:{reused[1].key}",
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
        if reused is not None and record.ok:
            # The scored weights live with the run, as if it had trained them (pictures).
            (folder / "job").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(reused[0], folder / "job" / "student.safetensors")
        record.save(record_path)
        return record


# ----------------------------------------------------------------------- parallel execution
_worker_runner: StudyRunner | None = None
_FAILED = RunRecord(key="", track="", group="", variant="", seed=0, error="not run")
"""Stands in for a teacher that did not run: its students are skipped."""


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel stop this worker when the study process dies (a killed study
    must not leave orphan trainings behind), and stop now if it already has."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the study died while this worker was starting
        os._exit(1)


def _init_worker(runner: StudyRunner, threads: int, parent: int) -> None:
    global _worker_runner
    from bench.machine import set_threads

    _die_with_parent(parent)
    set_threads(threads)
    _worker_runner = runner


def _execute_in_worker(run: StudyRun) -> RunRecord:
    if _worker_runner is None:
        raise RuntimeError("study worker process was not initialised")
    return _worker_runner.execute(run)


def execute_all(
    runner: StudyRunner,
    runs: list[StudyRun],
    *,
    workers: int = 1,
    threads_per_worker: int = 1,
    on_done: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Every run's record, in plan order: the teachers first, then the students.

    With `workers` > 1 the runs of a phase go to that many processes (each with
    `threads_per_worker` torch threads): on a small CPU two one-thread trainings finish
    sooner than one two-thread training after another. A student whose track's teacher
    failed is not run.
    """
    done: dict[str, RunRecord] = {}

    def finish(record: RunRecord) -> None:
        done[record.key] = record
        if on_done is not None:
            on_done(record)

    teachers = [r for r in runs if r.variant == TEACHER]
    students = [r for r in runs if r.variant != TEACHER]
    pool = None
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded torch
            initializer=_init_worker,
            initargs=(runner, threads_per_worker, os.getpid()),
        )
    try:
        for phase in (teachers, students):
            ready = [
                run
                for run in phase
                if run.variant == TEACHER
                or done.get(f"{run.track}/{TEACHER}/seed{runner.scale.data_seed}", _FAILED).ok
            ]
            for run in phase:
                if run not in ready:
                    log.error("%s skipped: the %s teacher failed", run.key, run.track)
            if pool is None:
                for run in ready:
                    finish(runner.execute(run))
            else:
                from concurrent.futures import as_completed

                futures = [pool.submit(_execute_in_worker, run) for run in ready]
                for future in as_completed(futures):
                    finish(future.result())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return [done[run.key] for run in runs if run.key in done]
