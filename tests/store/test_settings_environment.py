"""Unknown DISTILLERY_* environment variables are named at start, with the nearest known name."""

from __future__ import annotations

import logging

import pytest

from store.settings import (
    Settings,
    known_environment_names,
    unknown_environment,
    warn_unknown_environment,
)


def test_a_misspelt_setting_is_matched_to_the_nearest_name() -> None:
    environ = {
        "DISTILLERY_DATABSE_URL": "postgresql://x",  # typo of DATABASE_URL
        "distillery_lease_second": "30",  # case-insensitive, like pydantic-settings
        "DISTILLERY_DATA_DIR": "/tmp/d",  # a setting
        "DISTILLERY_TOKEN": "dst_x",  # read by the CLI, not by Settings
        "PATH": "/usr/bin",
    }
    assert unknown_environment(environ) == [
        ("DISTILLERY_DATABSE_URL", "DISTILLERY_DATABASE_URL"),
        ("distillery_lease_second", "DISTILLERY_LEASE_SECONDS"),
    ]
    known = known_environment_names()
    assert "DISTILLERY_SECRET_KEY" in known and "DISTILLERY_SERVER" in known


def test_settings_warn_once_per_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DISTILLERY_BLOB_BAKEND", "s3")
    with caplog.at_level(logging.WARNING, logger="distillery.settings"):
        Settings()
        Settings()
    warned = [r.getMessage() for r in caplog.records if "DISTILLERY_BLOB_BAKEND" in r.getMessage()]
    assert warned == [
        "environment variable DISTILLERY_BLOB_BAKEND is not a Distillery setting and is "
        "ignored; did you mean DISTILLERY_BLOB_BACKEND?"
    ]
    assert warn_unknown_environment({"DISTILLERY_BLOB_BAKEND": "s3"}) == []  # already named
