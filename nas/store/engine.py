"""Engines for the store: the default URL, and SQLite set up for several writing processes."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from nas.paths import nas_home

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_IDLE_TRANSACTION_TIMEOUT = "30s"  # a frozen process's open transaction ends, and
# with it the row lock it held (a claim would wait for it for ever otherwise)
WRITE_OPTION = "nas_store_write"  # execution option of write transactions: BEGIN IMMEDIATE


def default_url() -> str:
    """`$NAS_DATABASE_URL`, else a SQLite file `nas.db` in `$NAS_HOME` (default `./.nas`)."""
    if url := os.environ.get("NAS_DATABASE_URL"):
        return url
    return f"sqlite:///{nas_home() / 'nas.db'}"


def create_store_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout and real BEGINs."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(parsed, pool_pre_ping=True)
        if parsed.get_backend_name() == "postgresql":
            event.listen(engine, "connect", _configure_postgresql)
        return engine
    if parsed.database in (None, "", ":memory:"):
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, pool_pre_ping=True)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_postgresql(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET idle_in_transaction_session_timeout = "
                   f"'{POSTGRES_IDLE_TRANSACTION_TIMEOUT}'")
    cursor.close()
    dbapi_connection.commit()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver's own BEGINs are off: see _begin_sqlite
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _enable_wal(cursor: Any) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite answers "locked" at once
    # (no busy handler) when processes opening it together collide; so retry for a while.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _begin_sqlite(connection: Connection) -> None:
    # Writers take the write lock up front, so a busy database makes them wait (busy_timeout)
    # rather than fail when a read snapshot taken earlier in the transaction went stale.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
