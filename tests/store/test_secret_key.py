"""The ticket-signing key: never the public placeholder, shared by every process of a folder."""

from __future__ import annotations

import stat
from pathlib import Path

from store.settings import DEVELOPMENT_SECRET, SECRET_FILE, Settings


def test_the_embedded_default_signs_with_a_random_key_kept_in_the_data_folder(
    tmp_path: Path,
) -> None:
    first = Settings(data_dir=tmp_path).resolved_secret_key
    assert first != DEVELOPMENT_SECRET and len(first) == 64
    # Another process on the same folder (the worker, a restarted API) gets the same key.
    assert Settings(data_dir=tmp_path).resolved_secret_key == first
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    # Another installation gets another key: a ticket of one never opens the other.
    assert Settings(data_dir=tmp_path / "other").resolved_secret_key != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", SECRET_FILE]


def test_a_configured_secret_key_is_used_as_it_is(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="s" * 40)
    assert settings.resolved_secret_key == "s" * 40
    assert not (tmp_path / SECRET_FILE).exists()
