"""One settings object for the platform (environment variables prefixed DISTILLERY_)."""

from __future__ import annotations

import difflib
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "development-only-secret"
"""The placeholder `secret_key`; production refuses it, development replaces it (see below)."""

SECRET_FILE = "secret.key"

ENV_PREFIX = "DISTILLERY_"

OTHER_ENV_NAMES = frozenset(
    {
        "DISTILLERY_SERVER",  # the CLI's server URL (cli/connection.py)
        "DISTILLERY_TOKEN",  # the CLI's API token
        "DISTILLERY_API_WORKERS",  # `distillery serve`'s API process count (cli/serve.py)
        "DISTILLERY_API",  # the dashboard's development proxy target (web/vite.config.ts)
    }
)
"""`DISTILLERY_*` variables read outside Settings; every other one must name a setting."""

log = logging.getLogger("distillery.settings")

_warned: set[str] = set()
"""Unknown variables already warned about by this process (each is named once)."""


class Settings(BaseSettings):
    """Platform configuration; the defaults are the embedded deployment on one machine."""

    model_config = SettingsConfigDict(env_prefix="DISTILLERY_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=lambda: Path.cwd() / ".distillery")
    database_url: str | None = None  # default: SQLite in data_dir
    broker_url: str | None = None  # default: kombu's SQLAlchemy transport on SQLite in data_dir
    blob_backend: Literal["local", "s3"] = "local"
    blob_root: Path | None = None  # default: data_dir / "blobs"
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None  # host browsers use for presigned downloads
    s3_bucket: str = "distillery"
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    secret_key: str = DEVELOPMENT_SECRET
    max_upload_bytes: int = 2 * 1024**3
    max_unpacked_bytes: int = 8 * 1024**3
    max_unpacked_files: int = 200_000
    lease_seconds: int = 60
    heartbeat_seconds: int = 10
    max_attempts: int = 3
    stale_queue_seconds: int = 1800  # a job queued this long is sent to the broker again
    validation_timeout_seconds: int = 1800  # an upload validating this long is marked invalid
    job_queue: str = "gpu"
    cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _warn_unknown_environment(self) -> Settings:
        warn_unknown_environment(os.environ)
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            if self.secret_key == DEVELOPMENT_SECRET:
                raise ValueError("DISTILLERY_SECRET_KEY must be set in production")
            if self.database_url is None or self.database_url.startswith("sqlite"):
                raise ValueError("production needs DISTILLERY_DATABASE_URL (PostgreSQL)")
        return self

    @property
    def resolved_secret_key(self) -> str:
        """The key that signs URL tickets: `secret_key`, or a random one kept in `data_dir`.

        With the placeholder (the embedded default) a known key would let anyone forge a
        ticket, so the first process to need one writes 32 random bytes to `data_dir/secret.key`
        (mode 0600) and every process on the same data folder (API, workers) reads it.
        """
        if self.secret_key != DEVELOPMENT_SECRET:
            return self.secret_key
        path = self.data_dir / SECRET_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then linked into place: a reader never sees half a key, and of
            # two processes starting at once the first link wins and both read its key.
            tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        key = path.read_text(encoding="ascii").strip()
        return key

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside data_dir."""
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'distillery.db'}"

    @property
    def resolved_broker_url(self) -> str:
        """The Celery broker URL, defaulting to a serverless SQLite broker inside data_dir."""
        return self.broker_url or f"sqla+sqlite:///{self.data_dir.resolve() / 'broker.db'}"

    @property
    def resolved_blob_root(self) -> Path:
        """The local blob folder."""
        return (self.blob_root or self.data_dir / "blobs").resolve()


def known_environment_names() -> frozenset[str]:
    """Every `DISTILLERY_*` variable something reads: one per setting, and OTHER_ENV_NAMES."""
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return frozenset(fields | OTHER_ENV_NAMES)


def unknown_environment(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, nearest known name) of each `DISTILLERY_*` variable that nothing reads."""
    known = sorted(known_environment_names())
    found = []
    for name in sorted(environ):
        upper = name.upper()  # pydantic-settings matches names case-insensitively
        if upper.startswith(ENV_PREFIX) and upper not in known:
            nearest = difflib.get_close_matches(upper, known, n=1, cutoff=0.0)
            found.append((name, nearest[0] if nearest else known[0]))
    return found


def warn_unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """Log a warning naming each unknown `DISTILLERY_*` variable (once per process) and the
    nearest known name; returns the messages logged now."""
    messages = []
    for name, nearest in unknown_environment(environ):
        if name in _warned:
            continue
        _warned.add(name)
        message = (
            f"environment variable {name} is not a Distillery setting and is ignored; "
            f"did you mean {nearest}?"
        )
        log.warning(message)
        messages.append(message)
    return messages
