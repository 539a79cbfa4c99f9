"""Shared test setup: nothing touches the network or the user's data folder; a PostgreSQL server on demand."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # devtools/ (not installed with the product)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DATABASES = ("sqlite", "postgresql")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own VIVIDFLOW_HOME unless it sets one itself."""
    home = tmp_path_factory.mktemp("vividflow-home")
    monkeypatch.setenv("VIVIDFLOW_HOME", str(home))
    monkeypatch.delenv("VIVIDFLOW_DB_URL", raising=False)
    yield home


@pytest.fixture(autouse=True)
def _restore_logging():
    """A CLI run in-process (vividflow.boundary) sets up logging for the process: undo it after each test."""
    import logging
    import threading

    root = logging.getLogger()
    level, hook = root.level, threading.excepthook
    yield
    for handler in [h for h in root.handlers if getattr(h, "_vividflow", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    threading.excepthook = hook
    logging.captureWarnings(False)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (devtools.postgres), started on first use. Without server
    binaries or psycopg the tests that use it skip, unless VIVIDFLOW_REQUIRE_POSTGRES=1 (CI): then they fail."""
    from devtools.postgres import MISSING, TempPostgres, find_bin_dir

    problem = MISSING if find_bin_dir() is None else None
    if problem is None and importlib.util.find_spec("psycopg") is None:
        problem = "psycopg is not installed (pip install 'psycopg[binary]')"
    if problem is not None:
        if os.environ.get("VIVIDFLOW_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"VIVIDFLOW_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(f"{problem}: the postgresql variants of the storage and queue tests need a server")
    server = TempPostgres.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_migrated(postgres, tmp_path_factory):
    """The name of a database migrated to the latest schema, which `postgres_url` empties for each test."""
    from storage import open_store

    postgres.create_database("migrated")
    open_store(url=postgres.url("migrated"), home=tmp_path_factory.mktemp("migrated")).close()
    return "migrated"


@pytest.fixture
def postgres_url(postgres, postgres_migrated):
    """A migrated PostgreSQL database with no rows and ids starting at 1, for this test alone (the session's
    one, emptied: much faster than a new database per test)."""
    postgres.empty_database(postgres_migrated, keep=("schema_migrations",))
    return postgres.url(postgres_migrated)


@pytest.fixture(params=DATABASES)
def db_url(request):
    """The database of one test, over both dialects: None (SQLite in the home folder) or `postgres_url`."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
