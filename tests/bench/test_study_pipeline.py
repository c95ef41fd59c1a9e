"""The study end to end at the smoke scale: real jobs in two worker processes, then the val
tuning, which must score the teacher the test study trained instead of training another."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.study.__main__ import main, parse_args, scale_from_args
from bench.study.plan import (
    SCALES,
    TUNING,
    StudyRun,
    apply_changes,
    plan_runs,
    scale_distill,
    student_schedule,
    student_spec,
    teacher_spec,
    variant_distill,
)
from bench.study.runner import RunRecord, StudyRunner, training_hash
from bench.study.tuning import best_candidate
from core.spec import DistillSpec, JobSpec

SMOKE_ARGS = ["--scale", "smoke", "--threads", "1", "--no-pictures"]
TUNED = ("no_kd", "hierarchical", "tune_lambda_0.1", "tune_no_context")
"""The tuning runs the smoke study trains (every candidate's spec is checked without training)."""


def _records(root: Path) -> dict[str, RunRecord]:
    summary = json.loads((root / "summary.json").read_text())
    return {r["key"]: RunRecord(**r) for r in summary["records"]}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    report = out / "results.md"
    status = main([*SMOKE_ARGS, "--out", str(out), "--report", str(report), "--workers", "2"])
    assert status == 0, "a smoke-scale run failed"
    return out


def test_parallel_study_writes_every_run_and_the_report(study: Path) -> None:
    records = _records(study / "runs")
    expected = {
        "coco/teacher/seed0",
        "coco/no_kd/seed0",
        "coco/hierarchical/seed0",
        "coco/drop_p2/seed0",
        "voc/teacher/seed0",
        "voc/hierarchical/seed0",
    }
    assert expected <= set(records)
    assert all(r.ok and r.split == "test" for r in records.values())
    assert "AP_small" in records["coco/hierarchical/seed0"].scores()
    text = (study / "results.md").read_text()
    assert "## Main ablation" in text and "`coco/drop_context/seed0`" in text


def test_tuning_scores_the_trained_teacher_on_val(study: Path) -> None:
    report = study / "tuning.md"
    teacher_file = study / "runs/coco/teacher/seed0/job/teacher.safetensors"
    trained_at = teacher_file.stat().st_mtime
    status = main(
        [*SMOKE_ARGS, "--out", str(study), "--tune", "--report", str(report), "--only", *TUNED]
    )
    assert status == 0
    records = _records(study / "runs-val")
    teacher = records["coco/teacher/seed0"]
    assert teacher.split == "val" and teacher.metrics["kind"] == "evaluate"
    assert not (study / "runs-val/coco/teacher/seed0/job/teacher.safetensors").exists()
    assert teacher_file.stat().st_mtime == trained_at
    assert set(records) == {"coco/teacher/seed0", *(f"coco/{name}/seed0" for name in TUNED)}
    text = report.read_text()
    assert "**val** split" in text and "HKD, lambda_KD 0.1" in text
    assert best_candidate(list(records.values())) in TUNED[1:]


def test_every_tuning_candidate_changes_full_hkd() -> None:
    full = variant_distill(DistillSpec(), "hierarchical")
    changed = {name: variant_distill(DistillSpec(), name) for name in TUNING}
    assert all(spec != full for spec in changed.values())
    assert len({spec.model_dump_json() for spec in changed.values()}) == len(TUNING)


def test_tuning_changes_apply_to_every_variant() -> None:
    scale = dataclasses.replace(
        SCALES["cpu"], distill=(("lambda_kd", 0.2), ("level_terms", {"context": 0.5}))
    )
    base = scale_distill(scale)
    assert base.lambda_kd == 0.2 and base.levels["p4"].context == 0.5
    assert variant_distill(base, "single_level").lambda_kd == 0.2
    masks = apply_changes(DistillSpec(), {"spatial": {"scale_aware": False}})
    assert masks.spatial.scale_aware is False and masks.spatial.normalize is True
    assert variant_distill(base, "tune_lambda_0.1").lambda_kd == 0.1
    low = variant_distill(base, "tune_p2_p3")
    assert [n for n, w in low.levels.items() if w.spatial or w.semantic or w.context] == [
        "p2",
        "p3",
    ]
    assert low.levels["p3"].context == 0.5 and low.lambda_kd == 0.2


def test_a_scale_default_on_two_levels_trains_what_the_candidate_trained() -> None:
    # A candidate chosen on val becomes the scale's default; the test study's full HKD must
    # then have the candidate's training hash, so that it scores the val-trained model.
    scale = SCALES["cpu"]
    tuned = dataclasses.replace(scale, distill=(("off_levels", ("p4", "p5")),))
    assert variant_distill(scale_distill(tuned), "hierarchical") == variant_distill(
        scale_distill(scale), "tune_p2_p3"
    )
    # Its ablation drops only what the default uses: without P4 it would train full HKD again.
    ablated = {run.variant for run in plan_runs(tuned, voc=False) if run.group == "ablation"}
    assert {"drop_p2", "drop_p3", "drop_context"} <= ablated
    assert not ablated & {"drop_p4", "drop_p5"}


def test_val_study_scored_the_test_models_and_a_rerun_keeps_its_own(study: Path) -> None:
    # Runs after the tuning test. The test study trained first; the val tuning then scored
    # its no-KD and no-context students on val instead of training them again. A rerun of the
    # test study keeps its own models: a run that only scored another's is never a source.
    tune = ["--tune", "--report", str(study / "tuning.md"), "--only", *TUNED]
    main([*SMOKE_ARGS, "--out", str(study), *tune])
    status = main([*SMOKE_ARGS, "--out", str(study), "--report", str(study / "again.md")])
    assert status == 0
    val = _records(study / "runs-val")
    assert val["coco/no_kd/seed0"].trained_by == "test:coco/no_kd/seed0"
    assert val["coco/tune_no_context/seed0"].trained_by == "test:coco/drop_context/seed0"
    assert val["coco/tune_no_context/seed0"].metrics["kind"] == "evaluate"
    assert val["coco/tune_lambda_0.1/seed0"].trained_by is None  # no test run trains it
    records = _records(study / "runs")
    assert records["coco/no_kd/seed0"].trained_by is None
    assert records["coco/drop_context/seed0"].trained_by is None
    weights = study / "runs/coco/no_kd/seed0/job/student.safetensors"
    assert (
        weights.read_bytes()
        == (study / "runs-val/coco/no_kd/seed0/job/student.safetensors").read_bytes()
    )


def _fake_job(kinds: list[str]) -> Callable[..., object]:
    def run(spec: JobSpec, out: Path, **_: object) -> object:
        kinds.append(spec.kind)
        out.mkdir(parents=True, exist_ok=True)
        if spec.kind == "distill":
            (out / "student.safetensors").write_bytes(b"weights of " + out.parent.name.encode())
        return type("Result", (), {"metrics": {"student": {"AP_small": 0.1}}})()

    return run


def test_test_study_scores_a_val_trained_student_instead_of_retraining(tmp_path: Path) -> None:
    kinds: list[str] = []
    scale, data = SCALES["smoke"], {"coco": tmp_path / "data"}
    val = StudyRunner(scale, tmp_path, data, split="val", run_job=_fake_job(kinds))
    test = StudyRunner(scale, tmp_path, data, split="test", run_job=_fake_job(kinds))
    teacher = test.teacher_checkpoint("coco")
    teacher.parent.mkdir(parents=True)
    teacher.write_bytes(b"teacher")
    tuned = val.execute(StudyRun("coco", "tuning", "tune_no_context", 0))
    reported = test.execute(StudyRun("coco", "ablation", "drop_context", 0))
    assert kinds == ["distill", "evaluate"]
    assert tuned.trained_by is None
    assert reported.trained_by == "val:coco/tune_no_context/seed0"
    # The val run stays cached: the test copy of its model is not a source.
    assert val.execute(StudyRun("coco", "tuning", "tune_no_context", 0)).spec_hash == (
        tuned.spec_hash
    )
    assert kinds == ["distill", "evaluate"]


def test_dry_run_lists_only_the_selected_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scale", "cpu", "--only", "no_kd", "--no-voc", "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[:4] == [
        "coco/teacher/seed0 (teacher)",
        "coco/no_kd/seed0 (main)",
        "coco/no_kd/seed1 (main)",
        "coco/no_kd/seed2 (main)",
    ]
    assert main(["--scale", "cpu", "--teachers-only", "--dry-run"]) == 0
    assert "2 runs at scale cpu" in capsys.readouterr().out
    argv = ["--scale", "cpu", "--no-voc", "--no-ablation", "--seeds", "1", "--dry-run"]
    tune = ["--scale", "cpu", "--tune", "--tuning-seeds", "0", "1", "--dry-run"]
    assert main([*tune, "--only", "tune_p2_p3"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "coco/teacher/seed0 (teacher)",
        "coco/tune_p2_p3/seed0 (tuning)",
        "coco/tune_p2_p3/seed1 (tuning)",
        "3 runs at scale cpu",
    ]
    assert main([*argv, "--only", "pkd", "hierarchical"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "coco/teacher/seed0 (teacher)",
        "coco/pkd/seed1 (main)",
        "coco/hierarchical/seed1 (main)",
        "3 runs at scale cpu",
    ]


def test_teacher_lr_is_per_track() -> None:
    scale = SCALES["cpu"]
    runs = {r.key: r for r in plan_runs(scale)}
    data = Path("unused")
    coco = teacher_spec(scale, runs["coco/teacher/seed0"], data, eval_split="val")
    voc = teacher_spec(scale, runs["voc/teacher/seed0"], data, eval_split="val")
    assert coco.schedule.lr == dict(scale.teacher_lr)["coco"]
    assert voc.schedule.lr == scale.lr


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.is_file():
            found |= {int(c) for c in children.read_text().split()}
    return found


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.is_file() and stat.read_text().split(") ")[-1][:1] not in {"Z", "X"}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_killed_study_leaves_no_worker_behind(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = ["--out", str(tmp_path), "--report", str(tmp_path / "r.md")]
    study = subprocess.Popen(
        [sys.executable, "-m", "bench.study", *SMOKE_ARGS, "--workers", "2", "--no-voc", *out]
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while not workers and study.poll() is None and time.monotonic() < deadline:
        # A pool worker (the resource tracker is a child too, but not a spawn_main).
        workers = {p for p in _children(study.pid) if "spawn_main" in _cmdline(p)}
        time.sleep(0.05)
    assert workers, "the study started no worker process"
    study.send_signal(signal.SIGKILL)
    study.wait()
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "workers outlived the killed study"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_training_hash_follows_the_teacher_file_not_its_path(tmp_path: Path) -> None:
    scale = SCALES["smoke"]
    teacher = tmp_path / "teacher.safetensors"
    teacher.write_bytes(b"first teacher")
    run = next(r for r in plan_runs(scale) if r.variant == "hierarchical")
    spec = student_spec(scale, run, tmp_path, teacher, eval_split="val")
    before = training_hash(spec)
    assert training_hash(spec.model_copy(update={"name": "other"})) == before
    assert training_hash(student_spec(scale, run, tmp_path, teacher, eval_split="test")) == before
    teacher.write_bytes(b"retrained teacher")
    assert training_hash(spec) != before


def test_cached_student_is_retrained_after_its_teacher_changed(tmp_path: Path) -> None:
    calls: list[str] = []

    def fake_job(spec: object, out: Path, **_: object) -> object:
        calls.append(str(out))
        return type("Result", (), {"metrics": {"student": {"AP_small": 0.1}}})()

    scale = SCALES["smoke"]
    runner = StudyRunner(scale, tmp_path, {"coco": tmp_path / "data"}, run_job=fake_job)
    teacher = runner.teacher_checkpoint("coco")
    teacher.parent.mkdir(parents=True)
    teacher.write_bytes(b"teacher one")
    run = next(r for r in plan_runs(scale) if r.variant == "hierarchical")
    runner.execute(run)
    runner.execute(run)
    assert len(calls) == 1  # cached
    teacher.write_bytes(b"teacher two, retrained")
    runner.execute(run)
    assert len(calls) == 2


def test_a_variant_that_trains_like_an_earlier_one_scores_its_model(tmp_path: Path) -> None:
    # On a P2-P3 default, HKD without P2 is the P3-only variant: it is scored, not retrained,
    # and a rerun keeps both records cached (neither becomes the other's copy).
    kinds: list[str] = []

    def fake_job(spec: JobSpec, out: Path, **_: object) -> object:
        kinds.append(spec.kind)
        if spec.kind == "distill":
            out.mkdir(parents=True, exist_ok=True)
            (out / "student.safetensors").write_bytes(b"weights of " + out.parent.name.encode())
        return type("Result", (), {"metrics": {"student": {"AP_small": 0.1}}})()

    scale = dataclasses.replace(SCALES["smoke"], distill=(("off_levels", ("p4", "p5")),))
    runner = StudyRunner(scale, tmp_path, {"coco": tmp_path / "data"}, run_job=fake_job)
    teacher = runner.teacher_checkpoint("coco")
    teacher.parent.mkdir(parents=True)
    teacher.write_bytes(b"teacher")
    single = StudyRun("coco", "main", "single_level", 0)
    dropped = StudyRun("coco", "ablation", "drop_p2", 0)
    first = runner.execute(single)
    second = runner.execute(dropped)
    assert kinds == ["distill", "evaluate"]
    assert first.trained_by is None and second.trained_by == "test:coco/single_level/seed0"
    copied = tmp_path / "runs/coco/drop_p2/seed0/job/student.safetensors"
    assert copied.read_bytes() == b"weights of seed0"
    assert runner.execute(single).spec_hash == first.spec_hash
    assert runner.execute(dropped).spec_hash == second.spec_hash
    assert kinds == ["distill", "evaluate"]  # both cached


def test_student_epochs_override_the_scale_for_every_student_run() -> None:
    args = parse_args(["--scale", "cpu", "--schedule", "--student-epochs", "4", "--seeds", "5"])
    scale = scale_from_args(args)
    assert (scale.student_epochs, scale.seeds) == (4, (5,))
    assert student_schedule(scale, "sched_hkd_x3") == (12, 0)
    assert scale_from_args(parse_args(["--scale", "cpu"])) == SCALES["cpu"]
