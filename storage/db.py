"""Engine construction: SQLite pragmas (WAL, foreign keys, busy timeout) and write transactions; database
errors turned into one sentence for a person (``storage_error``).

SQLite's default deferred transactions deadlock when two connections read and then both try to
write (the second gets SQLITE_BUSY at once, without waiting). So every *write* transaction here
starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front and waits up to ``busy_timeout``),
while reads start with a plain ``BEGIN`` and, in WAL mode, never block writers.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from storage.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseUnavailableError,
    ReadOnlyStorageError,
    StorageError,
    StorageFullError,
    os_error,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
BUSY_TIMEOUT_MS = int(BUSY_TIMEOUT_S * 1000)
CONNECT_TIMEOUT_S = 5
WRITE_OPTION = "vividflow_write"
BUSY_MESSAGE = "the database is busy (another process is writing); try again"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def is_memory_sqlite(url: str) -> bool:
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def make_engine(url: str, *, busy_timeout_s: float = BUSY_TIMEOUT_S, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite with WAL, foreign keys on, BEGIN IMMEDIATE for writes and a write lock
    waited for up to ``busy_timeout_s``; for a server, a connect timeout of CONNECT_TIMEOUT_S."""
    busy_ms = max(0, int(busy_timeout_s * 1000))
    if not is_sqlite(url):
        if make_url(url).get_backend_name() == "postgresql":
            args = kwargs.setdefault("connect_args", {})
            args.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
            # a row or advisory lock another transaction holds is waited for as long as SQLite's busy timeout
            # (0 would mean forever there, so at least 1 ms)
            args.setdefault("options", f"-c lock_timeout={max(1, busy_ms)}")
        return create_engine(url, **kwargs)

    if is_memory_sqlite(url):
        # one shared connection, or every thread would see its own empty database
        kwargs.setdefault("poolclass", StaticPool)
    kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
    kwargs["connect_args"].setdefault("timeout", busy_ms / 1000)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # we emit BEGIN ourselves (see do_begin); sqlite3 still emits COMMIT/ROLLBACK
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            mode = _wal(cursor, busy_ms / 1000)
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


def _wal(cursor: Any, timeout_s: float = BUSY_TIMEOUT_S) -> str:
    """Switch a database to WAL (once per file: the mode is stored in it) and return the journal mode.

    Switching needs the file to itself and SQLite does not wait on the busy handler for it, so two processes
    opening a fresh database at once can get "database is locked": retry for up to the busy timeout.
    """
    mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    deadline = time.monotonic() + timeout_s
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


# --- errors for a person ----------------------------------------------------------------------------

_BUSY = ("database is locked", "database table is locked", "database is busy", "lock timeout",
         "could not obtain lock", "canceling statement due to lock timeout")
_CORRUPT = ("file is not a database", "malformed", "file is encrypted", "not a database", "database corrupt",
            "disk image")
_FULL = ("database or disk is full", "no space left", "disk full", "could not extend file", "quota exceeded")
_READ_ONLY = ("readonly database", "read-only file system", "read only", "readonly")
_CANNOT_OPEN = ("unable to open database file", "disk i/o error")
_CONNECT = ("could not connect", "connection refused", "connection failed", "timeout expired", "could not translate",
            "name or service not known", "no route to host", "network is unreachable", "server closed the connection",
            "connection timed out", "password authentication failed", "does not exist", "role ")


def _disk_full(url: Any) -> bool:
    """Whether the disk holding a SQLite file has (almost) no room left: SQLite then says only "disk I/O error"
    or "unable to open" when it cannot size its shared-memory index."""
    u = make_url(url) if isinstance(url, str) else url
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return False
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(u.database))).free < 64 * 1024
    except OSError:
        return False


def where(url: Any) -> str:
    """How an error names the database: the SQLite file, else the URL with the password hidden."""
    u = make_url(url) if isinstance(url, str) else url
    if u.get_backend_name() == "sqlite":
        return f"file {u.database}" if u.database not in (None, "", ":memory:") else "in memory"
    return f"at {u.render_as_string(hide_password=True)}"


def storage_error(e: BaseException, url: Any) -> StorageError | None:
    """The StorageError (one sentence, naming the database and what to do) for a database or OS error, or None
    when ``e`` is not one this layer knows how to explain (a bug: let it travel as it is)."""
    if isinstance(e, StorageError):
        return e
    if isinstance(e, OSError):
        return os_error(e, f"the database {where(url)}")
    if isinstance(e, exc.IntegrityError | exc.ProgrammingError | exc.DataError):
        return None
    if not isinstance(e, exc.DBAPIError | sqlite3.DatabaseError):
        return None
    orig = getattr(e, "orig", None) or e
    detail = " ".join(str(orig).split())[:200]
    low = detail.lower()
    db = f"the database {where(url)}"
    if any(m in low for m in _BUSY):
        return DatabaseBusyError(f"{BUSY_MESSAGE} ({db})")
    if any(m in low for m in _FULL) or (any(m in low for m in _CANNOT_OPEN) and _disk_full(url)):
        return StorageFullError(f"the disk holding {db} is full ({detail}); free some space and try again")
    if any(m in low for m in _CORRUPT):
        return DatabaseCorruptError(
            f"{db} is damaged or is not a VividFlow database ({detail}); restore it from a backup, or move it "
            f"away and VividFlow starts a new one"
        )
    if any(m in low for m in _READ_ONLY):
        return ReadOnlyStorageError(
            f"{db} cannot be written: its folder or file is read-only ({detail}); make them writable, or set "
            f"VIVIDFLOW_HOME to a writable folder"
        )
    if any(m in low for m in _CANNOT_OPEN):
        return DatabaseUnavailableError(
            f"cannot open {db} ({detail}); check that its folder exists and is writable, or set VIVIDFLOW_HOME "
            f"to another folder"
        )
    if any(m in low for m in _CONNECT) or isinstance(e, exc.OperationalError):
        first = detail.split(" (Background")[0]
        return DatabaseUnavailableError(
            f"cannot use {db} ({first}); check that the server is running and VIVIDFLOW_DB_URL is right"
        )
    return None
