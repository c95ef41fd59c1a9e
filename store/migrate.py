"""Run the Alembic migrations programmatically, from any working directory."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command

# alembic/ sits next to the store package at the repository root.
_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = _ROOT / "alembic.ini"
SCRIPT_LOCATION = _ROOT / "alembic"


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` whose script location does not depend on the cwd."""
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["database_url"] = url
    # Callers (CLI, tests, the server) own logging; alembic.ini's fileConfig would replace it.
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` back to `revision`."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None when it was never migrated)."""
    from alembic.runtime.migration import MigrationContext

    from store.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision of the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
