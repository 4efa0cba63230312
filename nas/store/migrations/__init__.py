"""Alembic migrations of the store, configured in code (no alembic.ini).

Create a new revision after changing `nas.store.models`::

    python -c "from alembic import command; from nas.store.migrations import alembic_config; \
command.revision(alembic_config('sqlite:///.nas/nas.db'), 'what changed', autogenerate=True)"
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

SCRIPT_LOCATION = Path(__file__).parent
MIGRATION_LOCK = 0x6E61735F6D6967  # PostgreSQL advisory lock key ("nas_mig")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config whose scripts are this package; `url` is for the command line only."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind `engine` to `revision` in one transaction.

    Processes opening a new database at once take turns: SQLite's write lock (the engine's
    BEGIN IMMEDIATE) or PostgreSQL's advisory lock makes the later ones find it migrated.
    """
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class SchemaOutOfDate(ValueError):
    """The database is not at the newest schema and was opened without migrating it."""


def check_current(engine: Engine) -> None:
    """`SchemaOutOfDate` unless the database behind `engine` is at the newest revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        raise SchemaOutOfDate(f"the database is at schema revision {current or 'none'}, this "
                              f"version needs {head}: run `nas db upgrade`")
