"""Migrations: a blank database gets the exact schema; older ones upgrade; newer ones are refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import DateTime, inspect, text
from sqlalchemy.exc import IntegrityError

from storage import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    SchemaMismatchError,
    SchemaTooNewError,
    migrate,
    open_store,
    schema_version,
)
from storage.db import make_engine
from storage.models import Base

DATABASES = ("sqlite", "postgresql")
REPO = Path(__file__).resolve().parents[2]

EXPECTED_COLUMNS = {
    "schema_migrations": ["version", "name", "applied_at"],
    "conversations": ["id", "title", "created_at", "updated_at", "user_id", "shared"],  # migration 5
    "messages": ["id", "conversation_id", "role", "text", "plan", "meta", "created_at", "user_id"],
    "source_images": [
        "id", "sha256", "media_key", "width", "height", "format", "size_bytes", "filename", "created_at",
    ],
    "generations": [
        "id", "conversation_id", "parent_id", "source_image_id", "plan",
        "template", "seed", "steps", "guidance_scale", "guidance_scale_2", "duration_s", "num_frames",
        "fps", "width", "height", "prompt", "negative_prompt",
        "backend", "model_id", "status", "error", "attempts", "cancel_requested",
        "progress_stage", "progress_step", "progress_total", "progress_eta_s", "progress_updated_at",
        "timings", "params", "video_path", "thumbnail_path", "created_at", "started_at", "finished_at",
        "owner",  # migration 2
        "heartbeat_at", "lease_expires_at", "lease_retries",  # migration 4
        "user_id", "shared",  # migration 5
        "batch_id",  # migration 6 (#12 §3)
    ],
}

EXPECTED_GENERATION_INDEXES = {
    "ix_generations_created_at": ["created_at"],
    "ix_generations_status": ["status", "created_at"],
    "ix_generations_template": ["template", "created_at"],
    "ix_generations_backend": ["backend", "created_at"],
    "ix_generations_seed": ["seed"],
    "ix_generations_conversation_id": ["conversation_id"],
    "ix_generations_parent_id": ["parent_id"],
    "ix_generations_user_id": ["user_id", "status"],
    "ix_generations_batch_id": ["batch_id"],
}


@pytest.fixture(params=DATABASES)
def engine(request, tmp_path):
    """A blank database on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    e = make_engine(url)
    yield e
    e.dispose()


def test_blank_database_gets_exact_columns(engine):
    assert schema_version(engine) == 0
    assert migrate(engine) == LATEST_VERSION == len(MIGRATIONS)
    insp = inspect(engine)
    assert sorted(insp.get_table_names()) == sorted(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        assert [c["name"] for c in insp.get_columns(table)] == columns, table
    indexes = {i["name"]: i["column_names"] for i in insp.get_indexes("generations")}
    assert indexes == EXPECTED_GENERATION_INDEXES
    assert [u["column_names"] for u in insp.get_unique_constraints("source_images")] == [["sha256"]]
    fks = {(f["constrained_columns"][0], f["referred_table"]) for f in insp.get_foreign_keys("generations")}
    assert fks == {("conversation_id", "conversations"), ("parent_id", "generations"),
                   ("source_image_id", "source_images")}


def test_migrated_schema_matches_the_orm_models(engine):
    """models.py (used for queries) and the migrations (which build the schema) must agree."""
    migrate(engine)
    insp = inspect(engine)
    for table in Base.metadata.sorted_tables:
        db_cols = {c["name"]: c for c in insp.get_columns(table.name)}
        assert list(db_cols) == [c.name for c in table.columns], table.name
        for col in table.columns:
            assert db_cols[col.name]["nullable"] == col.nullable, f"{table.name}.{col.name}"
            if engine.dialect.name == "postgresql" and isinstance(db_cols[col.name]["type"], DateTime):
                assert db_cols[col.name]["type"].timezone, f"{table.name}.{col.name} keeps no time zone"
        db_idx = {i["name"]: i["column_names"] for i in insp.get_indexes(table.name)
                  if not i.get("duplicates_constraint")}  # PostgreSQL: the index behind a UNIQUE
        orm_idx = {i.name: [c.name for c in i.columns] for i in table.indexes}
        assert db_idx == orm_idx, table.name


def test_migrate_is_idempotent_and_recorded(engine):
    migrate(engine)
    migrate(engine)
    with engine.connect() as c:
        rows = c.execute(text("SELECT version, name FROM schema_migrations ORDER BY version")).all()
    assert [tuple(r) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_foreign_keys_are_enforced(store):
    with pytest.raises(IntegrityError, match="FOREIGN KEY constraint failed|violates foreign key constraint"):
        with store._write() as s:
            s.execute(text("INSERT INTO messages (conversation_id, role, text, created_at) "
                           "VALUES (999, 'user', 'x', '2026-01-01')"))


def _m002_add_rating(conn):
    conn.execute(text("ALTER TABLE generations ADD COLUMN rating INTEGER"))


TEST_MIGRATIONS = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "m_test_add_rating", _m002_add_rating))


def test_older_database_is_upgraded_and_keeps_its_rows(tmp_path, make_plan):
    home = tmp_path / "home"
    with open_store(home=home) as old:  # a database at the current real version
        conv = old.create_conversation("kept")
        gen = old.create_generation(conv.id, make_plan(), None, "preview", "m")
        assert old.info().schema_version == len(MIGRATIONS)
    with open_store(home=home, migrations=TEST_MIGRATIONS) as new:  # "newer code" opens it
        assert schema_version(new._engine) == len(TEST_MIGRATIONS)
        cols = [c["name"] for c in inspect(new._engine).get_columns("generations")]
        assert cols[-1] == "rating"
        assert new.get_generation(gen.id).plan == make_plan() and new.get_conversation(conv.id).title == "kept"


def test_a_real_version_1_database_gets_the_owner_column_and_keeps_its_rows(tmp_path, make_plan):
    """A database as VividFlow 1 left it (only migration 1 applied, rows written with plain SQL)."""
    home = tmp_path / "home"
    home.mkdir()
    engine = make_engine(f"sqlite:///{home / 'vividflow.db'}")
    assert migrate(engine, MIGRATIONS[:1]) == 1
    assert "owner" not in [c["name"] for c in inspect(engine).get_columns("generations")]
    with engine.begin() as c:
        c.execute(text("INSERT INTO conversations (id, title, created_at, updated_at) "
                       "VALUES (1, 'old', '2026-01-01 10:00:00', '2026-01-01 10:00:00')"))
        for gid, status in ((1, "succeeded"), (2, "running"), (3, "queued")):
            c.execute(text("INSERT INTO generations (id, conversation_id, plan, template, seed, backend, model_id, "
                           "status, attempts, cancel_requested, video_path, created_at) VALUES (:id, 1, :plan, "
                           "'landscape', 42, 'preview', 'm', :status, 1, 0, :video, '2026-01-01 10:00:00')"),
                      {"id": gid, "plan": json.dumps(make_plan()), "status": status,
                       "video": "ab/cd.mp4" if status == "succeeded" else None})
    engine.dispose()

    with open_store(home=home) as store:
        assert store.info().schema_version == LATEST_VERSION
        cols = [c["name"] for c in inspect(store._engine).get_columns("generations")]
        assert cols == EXPECTED_COLUMNS["generations"]
        old = [store.get_generation(i) for i in (1, 2, 3)]
        assert [g.status for g in old] == ["succeeded", "running", "queued"]
        assert all(g.owner is None and g.plan == make_plan() and g.conversation_id == 1 for g in old)
        assert old[0].video_path == store.media.root / "ab" / "cd.mp4"
        assert store.get_conversation(1).title == "old"
        # version-1 jobs have no owner and no lease: recovery treats them as left by a dead process
        assert store.recover().interrupted == [2, 3]
        assert store.requeue(2, owner="h:1:2:a").owner == "h:1:2:a"
    with engine.connect() as c:
        rows = c.execute(text("SELECT version, name FROM schema_migrations ORDER BY version")).all()
    assert [tuple(r) for r in rows][:2] == [(1, "m001_initial"), (2, "m002_generation_owner")]
    assert [tuple(r) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    engine.dispose()


def test_newer_database_is_refused_with_a_clear_message(tmp_path):
    home = tmp_path / "home"
    open_store(home=home, migrations=TEST_MIGRATIONS).close()
    with pytest.raises(SchemaTooNewError) as err:
        open_store(home=home)
    msg = str(err.value)
    assert f"schema version {len(TEST_MIGRATIONS)}" in msg and f"only up to version {len(MIGRATIONS)}" in msg
    assert "m_test_add_rating" in msg and "upgrade VividFlow" in msg
    # and nothing was touched
    con = sqlite3.connect(home / "vividflow.db")
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == len(TEST_MIGRATIONS)
    con.close()


def test_recorded_migration_with_another_name_is_refused(engine):
    migrate(engine)
    renamed = (Migration(1, "m001_something_else", MIGRATIONS[0].apply), *MIGRATIONS[1:])
    with pytest.raises(SchemaMismatchError, match="records migration 1 as 'm001_initial'"):
        migrate(engine, renamed)


def test_failed_migration_rolls_back_entirely(engine):
    def broken(conn):
        conn.execute(text("CREATE TABLE half_done (id INTEGER)"))
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        migrate(engine, (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "m_broken", broken)))
    # the real migrations and the broken one were one transaction: nothing remains
    assert schema_version(engine) == 0
    assert "half_done" not in inspect(engine).get_table_names()


def test_migration_list_must_be_numbered_in_order(engine):
    with pytest.raises(ValueError, match="migration versions must be 1..2 in order"):
        migrate(engine, (MIGRATIONS[0], Migration(3, "gap", _m002_add_rating)))




MIGRATE_SCRIPT = """
import os, sys, time
from sqlalchemy import text
from storage import MIGRATIONS, Migration, open_store

def slow(conn):  # takes a while, and counts how often it ran
    conn.execute(text("CREATE TABLE IF NOT EXISTS migration_runs (pid INTEGER)"))
    time.sleep(0.5)
    conn.execute(text("INSERT INTO migration_runs VALUES (:pid)"), {"pid": os.getpid()})

time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # both start at the same moment
migrations = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "m_test_slow", slow))
open_store(url=sys.argv[1], home=sys.argv[2], migrations=migrations).close()
"""


def test_two_processes_opening_a_fresh_database_at_once_migrate_it_once(engine, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    start_at = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_SCRIPT, url, str(tmp_path / f"h{i}"), str(start_at)],
                              cwd=REPO, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    with engine.connect() as c:
        versions = c.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all()
        runs = c.execute(text("SELECT count(*) FROM migration_runs")).scalar()
    assert versions == list(range(1, len(MIGRATIONS) + 2)) and runs == 1


def test_a_version_5_database_gets_the_batch_column_and_keeps_its_rows(tmp_path, make_plan):
    """Migration 6 (#12 §3) on a database with a generation in it: the row keeps everything (its user and shared
    flag from migration 5 included), batch_id is NULL, and new rows of one batch are found together."""
    from storage import open_store

    url = f"sqlite:///{tmp_path / 'v5.db'}"
    engine = make_engine(url)
    migrate(engine, MIGRATIONS[:5])
    with engine.begin() as c:
        c.execute(text("INSERT INTO generations (plan, backend, model_id, status, attempts, cancel_requested, "
                       "lease_retries, created_at, user_id, shared) "
                       "VALUES ('{}', 'preview', 'm', 'failed', 0, 0, 0, '2026-01-01', 'ann', 1)"))
    engine.dispose()
    with open_store(url=url, home=tmp_path) as store:
        assert store.info().schema_version == LATEST_VERSION
        old = store.get_generation(1)
        assert old.batch_id is None and old.status == "failed" and old.user_id == "ann" and old.shared
        made = [store.create_generation(None, make_plan(seed=s), None, "preview", "m", batch_id="b1") for s in (1, 2)]
        store.create_generation(None, make_plan(seed=3), None, "preview", "m")
        assert [r.id for r in store.list_batch("b1")] == [r.id for r in made]
        assert [r.seed for r in store.list_batch("b1")] == [1, 2]
