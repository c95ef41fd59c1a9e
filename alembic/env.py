"""Alembic environment: migrates the database of DISTILLERY_DATABASE_URL (or a given URL)."""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import make_url

from alembic import context
from store.db import ensure_sqlite_folder
from store.models import Base
from store.repositories.sweeps import platform_name
from store.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    # store.migrate passes the URL as an attribute: configparser would mangle a '%' in it.
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return url or Settings().resolved_database_url


def _configure(connection: Connection | None, url: str) -> None:
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    context.configure(
        connection=connection,
        url=None if connection is not None else url,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=is_sqlite,
        compare_type=True,
        include_name=platform_name,  # Optuna's sweep tables share the database
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    """Emit the SQL of the migrations without a database connection."""
    _configure(None, _database_url())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection, str(connection.engine.url))
        with context.begin_transaction():
            context.run_migrations()
        return
    url = _database_url()
    ensure_sqlite_folder(url)
    # A plain engine on purpose: with SQLite's foreign_keys pragma on, batch mode's
    # table recreation would cascade deletes into child tables.
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn, url)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
