"""The `distillery` client commands end to end, on the real API and a real worker process.

Uploads (datasets, teachers), submit with an ablation preset, follow (what the job is doing,
AP in percent, a teacher job's teacher), logs, download naming, compare, cancel and the job
list; parametrised over the embedded and the team deployment like test_platform.py. Every job
is 1 epoch of 2 steps.
"""

from __future__ import annotations

import io
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from cli.compare import spec_value
from tests.e2e.live import Platform
from tests.worker.harness import (
    IMAGE_SIZE,
    STUDENT_ARCH,
    STUDENT_FPN,
    TEACHER_ARCH,
    TEACHER_FPN,
    dataset_categories,
    dataset_zip,
    teacher_file,
)

AP_FIGURE = re.compile(r"\bAP \d+\.\d %, AP_small (\d+\.\d %|n/a)")


@dataclass
class Uploaded:
    """The dataset and teacher the CLI uploaded, with what it printed."""

    dataset: int
    teacher: int
    dataset_out: str
    teacher_out: str


def _ok(platform: Platform, *args: str) -> str:
    status, out = platform.cli(*args)
    assert status == 0, out
    return out


def _spec_file(folder: Path, kind: str = "distill", *, epochs: int = 1) -> Path:
    spec: dict[str, object] = {
        "kind": kind,
        "data": {"image_size": IMAGE_SIZE, "batch_size": 2},
        "teacher": {"arch": TEACHER_ARCH, "fpn_channels": TEACHER_FPN},
        "schedule": {
            "epochs": epochs,
            "max_steps_per_epoch": 2,
            "warmup_steps": 0,
            "eval_every": 100,
            "device": "cpu",
            "amp": False,
        },
    }
    if kind == "distill":
        spec["student"] = {"arch": STUDENT_ARCH, "fpn_channels": STUDENT_FPN}
    path = folder / f"{kind}-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _job_id(out: str) -> int:
    first = out.splitlines()[0].split()
    assert first[0] == "job", out
    return int(first[1])


@pytest.fixture(scope="module")
def uploaded(platform: Platform) -> Uploaded:
    """A dataset and a teacher uploaded with `datasets upload` / `teachers upload --wait`."""
    folder = platform.tmp / "cli-uploads"
    folder.mkdir()
    archive = dataset_zip(folder)
    dataset_out = _ok(platform, "datasets", "upload", str(archive), "--name", "cli tiny", "--wait")
    weights = teacher_file(
        folder / "teacher.safetensors", num_classes=dataset_categories(archive) + 1
    )
    teacher_out = _ok(
        platform,
        "teachers",
        "upload",
        str(weights),
        "--arch",
        TEACHER_ARCH,
        "--fpn-channels",
        str(TEACHER_FPN),
        "--name",
        "cli teacher",
        "--wait",
    )
    return Uploaded(
        dataset=int(dataset_out.split()[1]),
        teacher=int(teacher_out.split()[1]),
        dataset_out=dataset_out,
        teacher_out=teacher_out,
    )


@pytest.fixture(scope="module")
def distilled(platform: Platform, uploaded: Uploaded) -> dict[str, tuple[int, str]]:
    """Two finished distillations (presets no_kd and hierarchical), submitted with --follow:
    preset -> (job id, what `submit --follow` printed)."""
    runs = {}
    for preset in ("no_kd", "hierarchical"):
        status, out = platform.cli(
            "submit",
            str(_spec_file(platform.tmp)),
            "--dataset",
            str(uploaded.dataset),
            "--teacher",
            str(uploaded.teacher),
            "--preset",
            preset,
            "--follow",
        )
        assert status == 0, out
        runs[preset] = (_job_id(out), out)
    return runs


def test_uploads_wait_for_their_validation_and_are_listed(
    platform: Platform, uploaded: Uploaded
) -> None:
    dataset_lines = uploaded.dataset_out.splitlines()
    assert dataset_lines[0].endswith(": validating")
    assert dataset_lines[1].startswith(f"dataset {uploaded.dataset} 'cli tiny' ready: ")
    images = platform.get(f"/datasets/{uploaded.dataset}")["statistics"]["images"]
    assert f"{images} images" in dataset_lines[1]
    assert f"teacher {uploaded.teacher} 'cli teacher' ready: {TEACHER_ARCH}" in uploaded.teacher_out

    rows = _ok(platform, "datasets", "list", "--status", "ready").splitlines()
    row = next(line.split() for line in rows if line.split()[0] == str(uploaded.dataset))
    assert "ready" in row and str(images) in row
    rows = _ok(platform, "teachers", "list").splitlines()
    row = next(line.split() for line in rows if line.split()[0] == str(uploaded.teacher))
    assert TEACHER_ARCH in row and "ready" in row and "upload" in row

    good = (platform.tmp / "cli-uploads" / "dataset.zip").read_bytes()
    corrupt = platform.tmp / "cli-uploads" / "corrupt.zip"
    corrupt.write_bytes(good[: len(good) // 2])
    status, out = platform.cli("datasets", "upload", str(corrupt), "--wait")
    assert status == 1, out
    assert " invalid:" in out and "  - " in out  # the issues, one per line


def test_submit_applies_the_preset_and_follow_says_what_the_job_does(
    platform: Platform, uploaded: Uploaded, distilled: dict[str, tuple[int, str]]
) -> None:
    job_id, out = distilled["no_kd"]
    lines = out.splitlines()
    assert lines[1] == f"  dataset {uploaded.dataset}, teacher {uploaded.teacher}, preset no_kd"
    spec = platform.get(f"/jobs/{job_id}")["spec"]
    assert spec["distill"]["lambda_kd"] == 0.0
    assert not any(any(w.values()) for w in spec["distill"]["levels"].values())
    hkd = platform.get(f"/jobs/{distilled['hierarchical'][0]}")["spec"]["distill"]
    assert hkd["lambda_kd"] > 0

    # Followed from its submission: every activity line, the export before the end.
    activity = [line for line in lines if line.startswith(f"job {job_id}: ")]
    assert activity, out
    exporting = [i for i, line in enumerate(lines) if "training done; exporting" in line]
    assert exporting and exporting[0] < len(lines) - 1, out
    assert "step/s" not in out  # no bar and no rate without a terminal
    last = lines[-1]
    assert last.startswith(f"job {job_id} succeeded: AP "), out
    assert "; teacher AP " in last and AP_FIGURE.search(last), last
    assert "0.0" not in re.sub(r"\d+\.\d %", "", last)  # no raw fraction anywhere


def test_a_teacher_job_ends_with_its_teacher_ap_and_its_teacher_id(
    platform: Platform, uploaded: Uploaded
) -> None:
    spec = _spec_file(platform.tmp, "teacher")
    status, out = platform.cli("submit", str(spec), "--dataset", str(uploaded.dataset))
    assert status == 0, out
    job_id = _job_id(out)
    assert "trains a teacher" in out.splitlines()[1]
    out = _ok(platform, "follow", str(job_id))
    summary, registered = out.splitlines()[-2:]
    assert summary.startswith(f"job {job_id} succeeded: teacher AP "), out
    assert AP_FIGURE.search(summary)
    teacher_id = int(re.findall(r"--teacher (\d+)", registered)[0])
    assert platform.get(f"/teachers/{teacher_id}")["source_job_id"] == job_id


def test_logs_print_the_job_events(
    platform: Platform, distilled: dict[str, tuple[int, str]]
) -> None:
    job_id = distilled["no_kd"][0]
    out = _ok(platform, "logs", str(job_id))
    messages = [e["message"] for e in platform.get(f"/jobs/{job_id}/logs")["data"]]
    assert len(out.splitlines()) == len(messages) > 0
    assert "distill: epoch 1/1 done" in out
    followed = _ok(platform, "logs", str(job_id), "--follow")  # ended: prints and returns
    assert followed == out


def test_download_names_files_by_job_and_keeps_existing_ones(
    platform: Platform, distilled: dict[str, tuple[int, str]]
) -> None:
    first, second = distilled["no_kd"][0], distilled["hierarchical"][0]
    out_dir = platform.tmp / "cli-downloads"
    for job_id in (first, second):
        out = _ok(platform, "download", str(job_id), "--out", str(out_dir))
        assert out.strip() == str(out_dir / f"job-{job_id}-student.safetensors")
    mine = out_dir / f"job-{first}-student.safetensors"
    weights = load_file(str(mine))
    assert weights and load_file(str(out_dir / f"job-{second}-student.safetensors"))
    mine.write_bytes(b"my notes")
    status, out = platform.cli("download", str(first), "--out", str(out_dir))
    assert status == 1 and mine.read_bytes() == b"my notes"
    _ok(platform, "download", str(first), "--out", str(out_dir), "--force")
    assert set(load_file(str(mine))) == set(weights)
    report = _ok(platform, "download", str(first), "report.md", "--out", str(out_dir))
    assert Path(report.strip()).name == f"job-{first}-report.md"
    shutil.rmtree(out_dir)


def test_compare_shows_metrics_in_percent_and_the_preset_differences(
    platform: Platform, distilled: dict[str, tuple[int, str]]
) -> None:
    first, second = distilled["no_kd"][0], distilled["hierarchical"][0]
    out = _ok(platform, "compare", str(first), str(second))
    lines = out.splitlines()
    assert lines[0].split() == ["job", str(first), "job", str(second)]
    ap_row = next(line for line in lines if line.startswith("student AP_small "))
    assert re.fullmatch(r"student AP_small(\s+(\d+\.\d %|n/a)){2}", ap_row), ap_row
    body = platform.get(f"/compare?jobs={first},{second}")
    lambdas = next(d["values"] for d in body["spec_diff"] if d["path"] == "distill.lambda_kd")
    assert lambdas[0] == 0.0 and lambdas[1] > 0
    diff_row = next(line for line in lines if line.startswith("distill.lambda_kd "))
    assert diff_row.split()[1:] == [spec_value(v) for v in lambdas]
    status, _ = platform.cli("compare", str(first))
    assert status == 2


def test_jobs_show_who_ran_them_and_filter_mine_and_state(
    platform: Platform, distilled: dict[str, tuple[int, str]]
) -> None:
    first = distilled["no_kd"][0]
    out = _ok(platform, "jobs", "--mine", "--state", "succeeded,failed")
    header, *rows = out.splitlines()
    assert header.split()[-3:-1] == ["AP_SMALL", "BY"]
    row = next(line for line in rows if line.split()[0] == str(first))
    assert platform.email in row and re.search(r"\d+\.\d %", row), row
    states = {platform.get(f"/jobs/{line.split()[0]}")["state"] for line in rows}
    assert states <= {"succeeded", "failed"}


def test_cancel_asks_for_yes_without_a_terminal_then_cancels(
    platform: Platform, uploaded: Uploaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec_file(platform.tmp, epochs=200)
    out = _ok(
        platform,
        "submit",
        str(spec),
        "--dataset",
        str(uploaded.dataset),
        "--teacher",
        str(uploaded.teacher),
    )
    job_id = _job_id(out)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped: not a terminal
    status, _ = platform.cli("cancel", str(job_id))
    assert status == 2
    assert platform.get(f"/jobs/{job_id}")["cancel_requested"] is False
    out = _ok(platform, "cancel", str(job_id), "--yes")
    assert out.startswith(f"job {job_id} ")
    job = platform.wait_job(job_id, states=("canceled", "failed", "succeeded"))
    assert job["state"] == "canceled", job
    status, _ = platform.cli("cancel", str(job_id), "--yes")
    assert status == 1  # already canceled
