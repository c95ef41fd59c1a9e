"""The HTTP client commands' offline parts: credentials, specs, SSE parsing, error output."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import httpx
import pytest

from cli import client
from cli.main import main as distillery


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
    out = client.apply_ids(spec, dataset=3, teacher=7)
    assert out["data"] == {"dataset_id": 3}
    assert out["teacher"] == {"teacher_id": 7}
    assert spec["data"] == {"path": "/local/data"}  # the caller's mapping is left alone


def test_server_sent_events_are_parsed() -> None:
    lines = [
        "retry: 2000", "", ": keep-alive", "", "event: progress", 'data: {"step": 3}', "",
        "event: log", "data: line one", "data: line two", "", "event: state",
        'data: {"state": "succeeded"}', "",
    ]
    events = list(client.sse_events(iter(lines)))
    assert events == [
        ("progress", '{"step": 3}'),
        ("log", "line one\nline two"),
        ("state", '{"state": "succeeded"}'),
    ]


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


def test_jobs_table_aligns_columns() -> None:
    table = client.format_table([["1", "a long name"], ["22", "b"]], ["ID", "NAME"])
    lines = table.splitlines()
    assert lines[0].index("NAME") == lines[1].index("a long name") == lines[2].index("b")
    assert json.dumps(lines)  # plain text only
