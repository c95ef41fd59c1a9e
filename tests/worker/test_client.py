"""The HTTP client commands offline: credentials, specs and presets, SSE parsing, what follow
says, AP in percent, download naming, cancel's confirmation, uploads and tables.

The HTTP side is an httpx.MockTransport answering like the API does (tests/e2e has the same
commands against the real API and worker)."""

from __future__ import annotations

import argparse
import io
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import client, compare, download, events, figures, jobs, logs, progress, uploads
from cli.connection import Connection
from cli.follow import ProgressView, summary_lines
from cli.main import main as distillery
from cli.tables import format_table

SERVER = ["--server", "http://api.test", "--token", "dst_test"]

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeApi:
    """Answers by (method, path under /api/v1); a list of answers is used in turn (the last
    one sticks). Every request is kept."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Answer `method path` with `answers` in turn."""
        self.routes[(method, path)] = list(answers)

    def json(self, method: str, path: str, *bodies: Any, status: int = 200) -> None:
        """Answer `method path` with JSON bodies in turn."""
        self.on(method, path, *[_json_answer(status, body) for body in bodies])

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path.removeprefix("/api/v1"))
        answers = self.routes.get(key)
        if not answers:
            return httpx.Response(404, json={"detail": f"no route {key}"})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request) if callable(answer) else answer

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        """The requests made to `method path`."""
        return [
            r
            for r in self.requests
            if r.method == method and r.url.path.removeprefix("/api/v1") == path
        ]


def _json_answer(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(status, json=body)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    """Every client command talks to a FakeApi."""
    fake = FakeApi()

    def mock_client(self: Connection, **kwargs: Any) -> httpx.Client:
        kwargs.pop("timeout", None)
        return httpx.Client(
            base_url=self.server.rstrip("/") + "/api/v1",
            headers=self.headers(),
            transport=httpx.MockTransport(fake.handle),
            **kwargs,
        )

    monkeypatch.setattr(Connection, "client", mock_client)
    monkeypatch.setattr("cli.uploads.time.sleep", lambda _s: None)
    monkeypatch.setattr("cli.logs.time.sleep", lambda _s: None)
    monkeypatch.setattr("cli.follow.time.sleep", lambda _s: None)
    return fake


class Terminal(io.StringIO):
    """A stdin that is a terminal, with the user's answer."""

    def isatty(self) -> bool:
        return True


# --- connection, specs, events ------------------------------------------------------------


def test_credentials_are_saved_private_and_used_after_flags_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("DISTILLERY_SERVER", raising=False)
    monkeypatch.delenv("DISTILLERY_TOKEN", raising=False)
    path = client.save_credentials("http://saved:1", "dst_saved")
    assert path == tmp_path / "distillery" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    args = argparse.Namespace(server=None, token=None, team=None)
    assert client.connection_from(args) == client.Connection("http://saved:1", "dst_saved")
    monkeypatch.setenv("DISTILLERY_TOKEN", "dst_env")
    assert client.connection_from(args).token == "dst_env"
    args.token = "dst_flag"
    assert client.connection_from(args).token == "dst_flag"


def test_submit_points_the_spec_at_platform_ids() -> None:
    spec = {"kind": "distill", "data": {"path": "/local/data"}, "teacher": {"checkpoint": "t.pt"}}
    out = jobs.apply_ids(spec, dataset=3, teacher=7)
    assert out["data"] == {"dataset_id": 3}
    assert out["teacher"] == {"teacher_id": 7}
    assert spec["data"] == {"path": "/local/data"}  # the caller's mapping is left alone


def test_server_sent_events_are_parsed() -> None:
    lines = [
        "retry: 2000",
        "",
        ": keep-alive",
        "",
        "event: progress",
        'data: {"step": 3}',
        "",
        "event: log",
        "data: line one",
        "data: line two",
        "",
        "event: state",
        'data: {"state": "succeeded"}',
        "",
    ]
    parsed = list(events.sse_events(iter(lines)))
    assert parsed == [
        ("progress", '{"step": 3}'),
        ("log", "line one\nline two"),
        ("state", '{"state": "succeeded"}'),
    ]
    assert events.state_of(events.event_data(parsed[2][1])) == "succeeded"


def test_server_errors_print_their_json_detail_and_exit_non_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    detail = [{"loc": ["body", "spec", "kind"], "msg": "Input should be 'teacher'"}]
    response = httpx.Response(422, json={"detail": detail})
    with pytest.raises(client.ClientError) as info:
        client.checked(response)
    assert "HTTP 422" in str(info.value) and '"kind"' in str(info.value)
    # Nothing listens on port 9 of loopback: a connection error is reported, not raised.
    status = distillery(["jobs", "--server", "http://127.0.0.1:9", "--token", "x"])
    assert status == 1
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


def test_tables_align_columns() -> None:
    table = format_table([["1", "a long name"], ["22", "b"]], ["ID", "NAME"])
    lines = table.splitlines()
    assert lines[0].index("NAME") == lines[1].index("a long name") == lines[2].index("b")


# --- one AP unit --------------------------------------------------------------------------


def test_every_ap_figure_is_percent_with_one_decimal_and_labelled() -> None:
    assert figures.ap_percent(0.046) == "4.6 %"
    assert figures.ap_percent(0.00267) == "0.3 %"
    assert figures.ap_percent(1) == "100.0 %"
    assert figures.ap_percent(-1.0) == "n/a"  # COCO's "no object of this size"
    assert figures.ap_percent(None) == figures.ap_percent(float("nan")) == "-"
    assert figures.ap_label("AP_small", 0.046) == "AP_small 4.6 %"
    assert figures.ap_label("AP_large", -1) == "AP_large n/a (no object of this size)"
    assert figures.ap_figures({"AP": 0.012, "AP_small": 0.004}) == "AP 1.2 %, AP_small 0.4 %"


def test_job_ap_reads_list_summaries_and_teacher_jobs() -> None:
    summary = {"id": 1, "metrics": {"student": {"AP": 0.2, "AP_small": 0.05}, "teacher": None}}
    teacher_job = {
        "id": 2,
        "kind": "teacher",
        "metrics": {"student": None, "teacher": {"AP_small": 0.1}},
    }
    assert figures.job_ap(summary, "AP_small") == 0.05
    assert figures.job_ap(teacher_job, "AP_small") == 0.1
    assert figures.job_ap({"id": 3}, "AP") is None
    assert figures.job_ap({"id": 4, "metrics": None}, "AP") is None


# --- follow: what the job is doing, how fast, and how it ended -----------------------------


def _record(
    step: int,
    total: int = 10,
    *,
    epoch: int = 1,
    epochs: int = 1,
    stage: str = "distill",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "stage": stage,
        "step": step,
        "total_steps": total,
        "epoch": epoch,
        "epochs": epochs,
        **extra,
    }


def test_no_absurd_rate_on_attach_only_steps_seen_while_following() -> None:
    now = [100.0]
    activity = progress.JobActivity({"id": 1, "kind": "distill", "state": "running"})
    view = ProgressView(activity, clock=lambda: now[0])
    # Attaching to a job at step 83409: the steps done before are not a rate.
    view.progress(_record(83409, 100000, images_per_sec=12.5, eta_seconds=600))
    shown = activity.postfix(view.rate)
    assert "step/s" not in shown.get("speed", "")
    assert shown["speed"] == "12.5 img/s"  # the record's own timing
    assert shown["eta"] == "10 min 00 s"
    now[0] += 10.0
    view.progress(_record(83419, 100000))
    assert activity.postfix(view.rate)["speed"] == "1.00 step/s"
    now[0] += 4.0
    view.progress(_record(1, 50, stage="finetune"))  # a new stage starts a new baseline
    assert view.rate.per_second() is None
    view.close()


def test_slow_steps_read_as_seconds_per_step() -> None:
    now = [0.0]
    rate = progress.StepRate(clock=lambda: now[0])
    rate.observe("teacher", 3)
    now[0] = 20.0
    rate.observe("teacher", 5)
    assert progress.rate_text(rate, {}) == "10.0 s/step"


def test_follow_says_training_then_evaluating_then_exporting() -> None:
    job = {
        "id": 9,
        "kind": "distill",
        "state": "running",
        "spec": {"schedule": {"epochs": 2, "eval_every": 2}},
    }
    activity = progress.JobActivity(job)
    assert activity.phase() == "starting"
    activity.see_progress(_record(0, 10, epoch=0, epochs=2))
    assert activity.describe() == "distill: training, epoch 1/2, step 0/10"
    activity.see_progress(_record(3, 10, epoch=1, epochs=2))
    assert activity.describe() == "distill: training, epoch 1/2, step 3/10"
    activity.see_progress(_record(5, 10, epoch=1, epochs=2))
    assert activity.phase() == "training"  # epoch 1 is not evaluated (eval_every 2)
    activity.see_progress(_record(10, 10, epoch=2, epochs=2))
    assert activity.phase() == "evaluating"  # 100 %, before the epoch's "done" line
    assert "evaluating on the val split after epoch 2/2" in activity.describe()
    assert activity.see_event({"id": 4, "message": "distill: epoch 2/2 done, loss 1.2"})
    assert not activity.see_event({"id": 4, "message": "distill: epoch 2/2 done, loss 1.2"})
    assert activity.phase() == "exporting"
    assert "exporting the student (ONNX" in activity.describe()
    activity.see_state("succeeded")
    assert activity.phase() == "succeeded"


def test_follow_knows_a_fine_tune_stage_follows_distillation() -> None:
    job = {
        "id": 9,
        "kind": "distill",
        "state": "running",
        "spec": {"schedule": {"finetune_epochs": 1}},
    }
    activity = progress.JobActivity(job)
    activity.see_progress(_record(4, 4))
    activity.see_event({"id": 1, "message": "distill: epoch 1/1 done, loss 0.5"})
    assert activity.phase() == "starting"
    assert activity.describe() == "distill done; the fine-tune stage starts"
    activity.see_progress(_record(4, 4, stage="finetune"))
    assert activity.phase() == "evaluating"
    activity.see_event({"id": 2, "message": "finetune: epoch 1/1 done, loss 0.4"})
    assert activity.phase() == "exporting"
    assert progress.JobActivity({"kind": "evaluate", "state": "running"}).phase() == "evaluating"


def test_follow_prints_the_stages_and_the_teacher_ap_at_the_end(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    running = {
        "id": 7,
        "kind": "distill",
        "state": "running",
        "spec": {},
        "progress": _record(2, 2),
    }
    done = {
        **running,
        "state": "succeeded",
        "metrics": {
            "student": {"AP": 0.0123, "AP_small": 0.0046},
            "teacher": {"AP": 0.034, "AP_small": 0.02},
        },
    }
    api.json("GET", "/jobs/7", running, done)
    api.json(
        "GET",
        "/jobs/7/logs",
        {"data": [{"id": 3, "message": "distill: training starts"}], "count": 1},
    )
    stream = (
        'event: log\ndata: {"id": 5, "message": "distill: epoch 1/1 done, loss 1.2"}\n\n'
        'event: state\ndata: {"state": "succeeded"}\n\n'
    )
    api.on("GET", "/jobs/7/events", httpx.Response(200, text=stream))
    assert distillery(["follow", "7", *SERVER]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "job 7: distill: evaluating on the val split after epoch 1/1" in out
    assert "distill: epoch 1/1 done, loss 1.2" in out
    assert any(line.startswith("job 7: distill: training done; exporting") for line in out)
    assert "distill: training starts" not in out  # the history read on attach is not reprinted
    assert out[-1] == (
        "job 7 succeeded: AP 1.2 %, AP_small 0.5 %; teacher AP 3.4 %, AP_small 2.0 %"
    )


def test_a_teacher_job_ends_with_its_ap_and_the_teacher_id_it_registered(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    job = {
        "id": 5,
        "kind": "teacher",
        "state": "succeeded",
        "metrics": {"student": None, "teacher": {"AP": 0.009, "AP_small": 0.003}},
    }
    api.json("GET", "/jobs/5", job)
    api.json(
        "GET",
        "/teachers",
        {"data": [{"id": 2, "source_job_id": 4}, {"id": 3, "source_job_id": 5}], "count": 2},
    )
    assert distillery(["follow", "5", *SERVER]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "job 5 succeeded: teacher AP 0.9 %, AP_small 0.3 %"
    assert "--teacher 3" in out[1]
    failed = {"id": 6, "state": "failed", "error": "boom"}
    assert summary_lines(failed) == ["job 6 failed: boom"]


# --- submit and presets -------------------------------------------------------------------


def _spec_file(tmp_path: Path, kind: str = "distill") -> Path:
    spec = {
        "kind": kind,
        "data": {"path": "x", "image_size": 64},
        "teacher": {"arch": "retinanet_resnet18_fpn"},
        "student": {"arch": "retinanet_mobilenet_v2_fpn"},
        "distill": {"lambda_kd": 0.5, "temperature": 3.0},
    }
    path = tmp_path / "hkd.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_submit_applies_a_preset_and_prints_the_ids_it_used(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def created(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(
            201,
            json={
                "id": 12,
                "state": "queued",
                "kind": "distill",
                "name": body["name"],
                "spec": body["spec"],
                "dataset_id": 3,
                "teacher_id": 7,
            },
        )

    api.on("POST", "/jobs", created)
    spec = _spec_file(tmp_path)
    argv = ["submit", str(spec), "--dataset", "3", "--teacher", "7", "--preset", "no_kd"]
    assert distillery([*argv, *SERVER]) == 0
    sent = json.loads(api.sent("POST", "/jobs")[0].content)
    assert sent["name"] == "hkd (no_kd)"
    distill = sent["spec"]["distill"]
    assert distill["lambda_kd"] == 0.0 and distill["temperature"] == 3.0
    assert all(not any(w.values()) for w in distill["levels"].values())
    assert sent["spec"]["data"] == {"image_size": 64, "dataset_id": 3}
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "job 12 queued: hkd (no_kd)"
    assert out[1] == "  dataset 3, teacher 7, preset no_kd"


def test_unknown_or_misplaced_presets_exit_2_with_the_list(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        distillery(["submit", str(_spec_file(tmp_path)), "--preset", "fancy", *SERVER])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "fancy" in err and "hierarchical" in err and "no_kd" in err
    teacher = _spec_file(tmp_path, kind="teacher")
    assert distillery(["submit", str(teacher), "--preset", "pkd", *SERVER]) == 2
    assert "not 'distill'" in capsys.readouterr().err
    assert not api.sent("POST", "/jobs")
    with pytest.raises(client.UsageError):
        jobs.apply_preset({"kind": "distill"}, "fancy")


# --- jobs, cancel -------------------------------------------------------------------------


def test_jobs_lists_summaries_with_who_ran_them_and_ap_small_in_percent(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {
            "id": 3,
            "name": "hkd",
            "kind": "distill",
            "state": "succeeded",
            "creator_email": "ana@example.test",
            "metrics": {"student": {"AP": 0.0123, "AP_small": 0.046}, "teacher": None},
            "progress": {"stage": "distill", "epoch": 2, "epochs": 2, "step": 8, "total_steps": 8},
            "spec_summary": {"preset": None},
        },
        {"id": 2, "name": "t", "kind": "teacher", "state": "running", "created_by": 4},
    ]
    api.json("GET", "/jobs", {"data": rows, "count": 2})
    assert distillery(["jobs", "--mine", "--state", "running,succeeded", *SERVER]) == 0
    params = api.sent("GET", "/jobs")[0].url.params
    assert params["created_by"] == "me" and params["state"] == "running,succeeded"
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "KIND",
        "STATE",
        "PROGRESS",
        "AP",
        "AP_SMALL",
        "BY",
        "CREATED",
    ]
    assert "1.2 %" in first and "4.6 %" in first and "ana@example.test" in first
    assert "distill ep 2/2 100%" in first
    assert "user 4" in second and "0.0" not in second
    with pytest.raises(SystemExit) as info:
        distillery(["jobs", "--state", "done", *SERVER])
    assert info.value.code == 2


def test_cancel_asks_on_a_terminal_and_refuses_without_yes_otherwise(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.json("GET", "/jobs/4", {"id": 4, "name": "long", "state": "running"})
    api.json("POST", "/jobs/4/cancel", {"id": 4, "state": "running", "cancel_requested": True})
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a terminal
    assert distillery(["cancel", "4", *SERVER]) == 2
    assert "--yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert distillery(["cancel", "4", *SERVER]) == 1
    assert "not canceled" in capsys.readouterr().out
    assert not api.sent("POST", "/jobs/4/cancel")
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert distillery(["cancel", "4", *SERVER]) == 0
    assert "cancel requested" in capsys.readouterr().out
    assert distillery(["cancel", "4", "--yes", *SERVER]) == 0
    assert len(api.sent("POST", "/jobs/4/cancel")) == 2
    api.json("GET", "/jobs/5", {"id": 5, "state": "succeeded"})
    assert distillery(["cancel", "5", "--yes", *SERVER]) == 1
    assert "already succeeded" in capsys.readouterr().err


# --- download -----------------------------------------------------------------------------


def test_download_names_files_by_job_and_never_overwrites_without_force(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifacts = [
        {"name": "student.safetensors", "kind": "student_safetensors"},
        {"name": "pictures/attention_p2.png", "kind": "picture"},
    ]
    api.json("GET", "/jobs/12/artifacts", {"data": artifacts, "count": 2})
    api.on("GET", "/jobs/12/artifacts/student.safetensors", httpx.Response(200, content=b"new"))
    api.on("GET", "/jobs/12/artifacts/pictures/attention_p2.png", httpx.Response(200, content=b"p"))
    out = tmp_path / "dl"
    assert distillery(["download", "12", "--out", str(out), *SERVER]) == 0
    target = out / "job-12-student.safetensors"
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_bytes() == b"new"
    target.write_bytes(b"mine")
    assert distillery(["download", "12", "--out", str(out), *SERVER]) == 1
    assert str(target) in capsys.readouterr().err
    assert target.read_bytes() == b"mine"
    assert distillery(["download", "12", "--out", str(out), "--force", *SERVER]) == 0
    assert target.read_bytes() == b"new"
    assert (
        distillery(["download", "12", "pictures/attention_p2.png", "--out", str(out), *SERVER]) == 0
    )
    assert (out / "job-12-pictures-attention_p2.png").read_bytes() == b"p"
    assert distillery(["download", "12", "report.md", "--out", str(out), *SERVER]) == 1
    assert "student.safetensors" in capsys.readouterr().err  # names what the job has
    assert sorted(p.name for p in out.iterdir()) == [
        "job-12-pictures-attention_p2.png",
        "job-12-student.safetensors",
    ]
    assert download.local_name(3, "../x/../y.png") == "job-3-x-y.png"


# --- uploads ------------------------------------------------------------------------------


def test_dataset_upload_waits_and_prints_the_issues_of_an_invalid_one(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "aerial.zip"
    archive.write_bytes(b"PK\x03\x04 not really")
    row = {"id": 8, "name": "aerial", "status": "validating", "size_bytes": 2048}
    invalid = {
        **row,
        "status": "invalid",
        "errors": [
            {
                "file": "annotations/instances_val.json",
                "image_id": 3,
                "annotation_id": None,
                "message": "box outside the image",
            },
        ],
    }
    api.json("POST", "/datasets", row, status=202)
    api.json("GET", "/datasets/8", row, invalid)
    argv = ["datasets", "upload", str(archive), "--name", "aerial", "--wait", *SERVER]
    assert distillery(argv) == 1
    sent = api.sent("POST", "/datasets")[0]
    assert b'name="name"\r\n\r\naerial' in sent.content and b"not really" in sent.content
    out = capsys.readouterr().out
    assert "dataset 8 'aerial' uploaded (2.0 kB): validating" in out
    assert "annotations/instances_val.json, image 3: box outside the image" in out
    assert len(api.sent("GET", "/datasets/8")) == 2  # polled until validated


def test_teacher_upload_and_lists_show_validation_state(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "t.safetensors"
    weights.write_bytes(b"{}")
    row = {
        "id": 2,
        "name": "t",
        "status": "validating",
        "arch": "retinanet_resnet18_fpn",
        "fpn_channels": 16,
        "size_bytes": 2,
    }
    bad = {
        **row,
        "status": "invalid",
        "errors": [
            {
                "file": "t.safetensors",
                "message": "does not match",
                "missing": [f"k{i}" for i in range(7)],
                "unexpected": ["head.x"],
            }
        ],
    }
    api.json("POST", "/teachers", row, status=202)
    api.json("GET", "/teachers/2", bad)
    argv = [
        "teachers",
        "upload",
        str(weights),
        "--arch",
        "retinanet_resnet18_fpn",
        "--fpn-channels",
        "16",
        "--wait",
        *SERVER,
    ]
    assert distillery(argv) == 1
    out = capsys.readouterr().out
    assert "missing keys (7): k0, k1, k2, k3, k4 and 2 more" in out
    assert "unexpected keys (1): head.x" in out
    trained = {
        "id": 3,
        "name": "job 4 (teacher)",
        "status": "ready",
        "arch": "fcos_resnet18_fpn",
        "num_classes": 4,
        "fpn_channels": 16,
        "source_job_id": 4,
        "info": {"metrics": {"teacher": {"AP": 0.0089, "AP_small": 0.0}}},
    }
    api.json("GET", "/teachers", {"data": [trained], "count": 1})
    assert distillery(["teachers", "list", *SERVER]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "ARCH", "CLASSES"]
    cells = line.split()
    assert "3" in cells and "job" in cells and "0.9" in cells and "0.0" in cells
    assert uploads.teacher_categories(trained) == "3"  # num_classes counts the background
    with pytest.raises(SystemExit):
        distillery(["teachers", "upload", str(weights), "--arch", "resnet9000", *SERVER])


# --- logs, compare ------------------------------------------------------------------------


def test_logs_pages_through_events_and_follows_until_the_job_ends(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs, "LOG_PAGE", 2)
    first = [
        {"id": 1, "level": "info", "message": "queued", "created_at": "2025-01-02T10:00:00"},
        {"id": 2, "level": "info", "message": "claimed"},
    ]
    later = [{"id": 3, "level": "warning", "message": "slow"}]
    api.on(
        "GET",
        "/jobs/6/logs",
        *[_json_answer(200, {"data": page, "count": len(page)}) for page in (first, later, [])],
    )
    api.json("GET", "/jobs/6", {"id": 6, "state": "running"}, {"id": 6, "state": "succeeded"})
    assert distillery(["logs", "6", "--follow", *SERVER]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2025-01-02 10:00:00  info     queued"
    assert [line.split()[-1] for line in out] == ["queued", "claimed", "slow"]
    since = [r.url.params.get("since_id") for r in api.sent("GET", "/jobs/6/logs")]
    assert since == [None, "2", "3"]


def test_compare_shows_metrics_in_their_units_and_the_spec_fields_that_differ() -> None:
    body = {
        "jobs": [
            {"id": 1, "name": "no kd", "kind": "distill", "state": "succeeded"},
            {"id": 2, "name": "hkd", "kind": "distill", "state": "succeeded"},
        ],
        "metrics": {
            "student/AP_small": [0.046, 0.051],
            "efficiency/student/params": [3.4e6, 3.4e6],
            "efficiency/student/latency_ms": [12.34, None],
            "efficiency/ratios/gflops": [0.25, 0.25],
        },
        "spec_diff": [{"path": "distill.lambda_kd", "values": [0.0, 0.001]}],
    }
    text = compare.compare_text(body)
    lines = text.splitlines()
    assert lines[0].split() == ["job", "1", "job", "2"]
    rows = {" ".join(line.split()[:2]): line.split()[2:] for line in lines}
    assert rows["student AP_small"] == ["4.6", "%", "5.1", "%"]
    assert rows["student params"] == ["3.40", "M", "3.40", "M"]
    assert rows["student latency,"] == ["PyTorch", "12.3", "ms", "-"]
    assert rows["student/teacher GFLOPs"] == ["0.25x", "0.25x"]
    assert rows["by -"] == ["-"]  # no creator e-mail in these rows
    assert "Spec fields that differ (1):" in text
    assert any(line.split() == ["distill.lambda_kd", "0.0", "0.001"] for line in lines)
    assert compare.spec_value(list(range(40))).endswith("...")
