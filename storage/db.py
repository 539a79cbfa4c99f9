"""Engine construction: SQLite pragmas (WAL, foreign keys, busy timeout) and write transactions.

SQLite's default deferred transactions deadlock when two connections read and then both try to
write (the second gets SQLITE_BUSY at once, without waiting). So every *write* transaction here
starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front and waits up to ``busy_timeout``),
while reads start with a plain ``BEGIN`` and, in WAL mode, never block writers.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "vividflow_write"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def is_memory_sqlite(url: str) -> bool:
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite with WAL, foreign keys on and BEGIN IMMEDIATE for writes."""
    if not is_sqlite(url):
        return create_engine(url, **kwargs)

    if is_memory_sqlite(url):
        # one shared connection, or every thread would see its own empty database
        kwargs.setdefault("poolclass", StaticPool)
    kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
    kwargs["connect_args"].setdefault("timeout", BUSY_TIMEOUT_MS / 1000)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # we emit BEGIN ourselves (see do_begin); sqlite3 still emits COMMIT/ROLLBACK
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            mode = _wal(cursor)
            if mode.lower() not in ("wal", "memory"):
                log.warning("SQLite journal_mode is %r, not WAL (file system without WAL support?)", mode)
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _wal(cursor: Any) -> str:
    """Switch a database to WAL (once per file: the mode is stored in it) and return the journal mode.

    Switching needs the file to itself and SQLite does not wait on the busy handler for it, so two processes
    opening a fresh database at once can get "database is locked": retry for up to the busy timeout.
    """
    mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while mode.lower() not in ("wal", "memory"):
        try:
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        else:
            break
    return mode


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take the write lock at BEGIN."""
    return engine.execution_options(**{WRITE_OPTION: True})
