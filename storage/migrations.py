"""Schema migrations: an ordered list of small numbered functions, applied ones recorded in a table.

Every open of the store calls :func:`migrate`, which applies the missing migrations in one write
transaction under a lock (two processes opening a fresh database at once migrate it once), so a crash
mid-way leaves the database at its old version. The schema version is the
number of the last applied migration. A database whose version is newer than the code knows is
refused with :class:`SchemaTooNewError`.

Migrations are history: never edit one that has shipped, append a new one. They are written with
SQLAlchemy Core (not the ORM models) so they keep meaning the same thing when ``models.py`` changes;
``tests/storage`` checks that the migrated schema matches the models column by column.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)

from storage.db import writer
from storage.errors import SchemaMismatchError, SchemaTooNewError
from storage.models import utcnow

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "schema_migrations"
MIGRATION_LOCK_KEY = 0x7669766964666C77  # "vividflw": the PostgreSQL advisory lock migrators take

_migrations_meta = MetaData()
schema_migrations = Table(
    MIGRATIONS_TABLE,
    _migrations_meta,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class Migration:
    """One schema step: ``apply`` runs inside the caller's transaction."""

    version: int
    name: str
    apply: Callable[[Connection], None]


def _m001_initial(conn: Connection) -> None:
    """conversations, messages, source_images, generations and the gallery indexes."""
    md = MetaData()
    Table(
        "conversations",
        md,
        Column("id", Integer, primary_key=True),
        Column("title", Text, nullable=False),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "messages",
        md,
        Column("id", Integer, primary_key=True),
        Column(
            "conversation_id",
            Integer,
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("role", String(16), nullable=False),
        Column("text", Text, nullable=False),
        Column("plan", JSON),
        Column("meta", JSON),
        Column("created_at", DateTime, nullable=False),
        CheckConstraint("role IN ('user', 'assistant', 'system')", name="ck_messages_role"),
        Index("ix_messages_conversation_id", "conversation_id"),
    )
    Table(
        "source_images",
        md,
        Column("id", Integer, primary_key=True),
        Column("sha256", String(64), nullable=False, unique=True),
        Column("media_key", Text, nullable=False),
        Column("width", Integer, nullable=False),
        Column("height", Integer, nullable=False),
        Column("format", String(16), nullable=False),
        Column("size_bytes", Integer, nullable=False),
        Column("filename", Text),
        Column("created_at", DateTime, nullable=False),
    )
    Table(
        "generations",
        md,
        Column("id", Integer, primary_key=True),
        Column("conversation_id", Integer, ForeignKey("conversations.id", ondelete="SET NULL")),
        Column("parent_id", Integer, ForeignKey("generations.id", ondelete="SET NULL")),
        Column("source_image_id", Integer, ForeignKey("source_images.id", ondelete="RESTRICT")),
        Column("plan", JSON, nullable=False),
        Column("template", String(64)),
        Column("seed", Integer),
        Column("steps", Integer),
        Column("guidance_scale", Float),
        Column("guidance_scale_2", Float),
        Column("duration_s", Float),
        Column("num_frames", Integer),
        Column("fps", Integer),
        Column("width", Integer),
        Column("height", Integer),
        Column("prompt", Text),
        Column("negative_prompt", Text),
        Column("backend", String(64), nullable=False),
        Column("model_id", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("error", Text),
        Column("attempts", Integer, nullable=False),
        Column("cancel_requested", Boolean, nullable=False),
        Column("progress_stage", Text),
        Column("progress_step", Integer),
        Column("progress_total", Integer),
        Column("progress_eta_s", Float),
        Column("progress_updated_at", DateTime),
        Column("timings", JSON),
        Column("params", JSON),
        Column("video_path", Text),
        Column("thumbnail_path", Text),
        Column("created_at", DateTime, nullable=False),
        Column("started_at", DateTime),
        Column("finished_at", DateTime),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_generations_status",
        ),
        Index("ix_generations_created_at", "created_at"),
        Index("ix_generations_status", "status", "created_at"),
        Index("ix_generations_template", "template", "created_at"),
        Index("ix_generations_backend", "backend", "created_at"),
        Index("ix_generations_seed", "seed"),
        Index("ix_generations_conversation_id", "conversation_id"),
        Index("ix_generations_parent_id", "parent_id"),
    )
    md.create_all(conn)


def _m002_generation_owner(conn: Connection) -> None:
    """generations.owner: the process holding a queued/running job (``hostname:pid:start:nonce``), so a
    starting runner fails only the jobs of dead processes. Existing rows get NULL (no known holder).

    No index: the one query on it (start-up recovery) selects ``status IN ('queued', 'running')``,
    which ``ix_generations_status`` already serves, and reads owner from those few rows.
    """
    conn.execute(text("ALTER TABLE generations ADD COLUMN owner TEXT"))


def _m003_timestamps_with_time_zone(conn: Connection) -> None:
    """PostgreSQL: every timestamp column becomes ``timestamp with time zone`` (the values were written as
    UTC), so times compare with the server's ``now()`` whatever its time zone. SQLite keeps no zone: nothing
    to do there."""
    if conn.dialect.name != "postgresql":
        return
    columns = {
        "conversations": ("created_at", "updated_at"),
        "messages": ("created_at",),
        "source_images": ("created_at",),
        "generations": ("progress_updated_at", "created_at", "started_at", "finished_at"),
    }
    for table, names in columns.items():
        changes = ", ".join(
            f"ALTER COLUMN {c} TYPE TIMESTAMP WITH TIME ZONE USING {c} AT TIME ZONE 'UTC'" for c in names
        )
        conn.execute(text(f"ALTER TABLE {table} {changes}"))


def _m004_generation_lease(conn: Connection) -> None:
    """generations.heartbeat_at, lease_expires_at, lease_retries: a job claimed from the shared queue is held
    under a lease its worker renews; when the lease runs out the job goes back to the queue once, then fails
    (storage.leases). Existing rows hold no lease."""
    timestamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE generations ADD COLUMN heartbeat_at {timestamp}"))
    conn.execute(text(f"ALTER TABLE generations ADD COLUMN lease_expires_at {timestamp}"))
    conn.execute(text("ALTER TABLE generations ADD COLUMN lease_retries INTEGER NOT NULL DEFAULT 0"))


def _m005_users(conn: Connection) -> None:
    """Many users: ``user_id`` (who it belongs to: the studio's login, or ``'local'``) on conversations, messages
    and generations, and a ``shared`` flag on conversations and generations (others may see a shared one).
    Existing rows belong to the local user and are not shared, so a one-person studio sees all it saw before.

    Not ``generations.owner``: that names the *process* holding a job (migration 2). Source images stay
    unowned: one row per content hash, whoever uploaded it; who may see one follows from its generations.
    """
    false = "FALSE" if conn.dialect.name == "postgresql" else "0"
    for table in ("conversations", "messages", "generations"):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN user_id TEXT NOT NULL DEFAULT 'local'"))
    for table in ("conversations", "generations"):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN shared BOOLEAN NOT NULL DEFAULT {false}"))
    conn.execute(text("CREATE INDEX ix_conversations_user_id ON conversations (user_id, updated_at)"))
    conn.execute(text("CREATE INDEX ix_generations_user_id ON generations (user_id, status)"))


def _m006_generation_batch(conn: Connection) -> None:
    """generations.batch_id: the batch of variations a generation belongs to (#12 §3: "give me 4 variations" is
    one batch of records with different seeds, rendered in one job); NULL for a single clip. Indexed: the
    gallery groups a batch and the worker finds the rest of a batch by it. Self-contained (Core SQL only)."""
    conn.execute(text("ALTER TABLE generations ADD COLUMN batch_id VARCHAR(64)"))
    conn.execute(text("CREATE INDEX ix_generations_batch_id ON generations (batch_id)"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "m001_initial", _m001_initial),
    Migration(2, "m002_generation_owner", _m002_generation_owner),
    Migration(3, "m003_timestamps_with_time_zone", _m003_timestamps_with_time_zone),
    Migration(4, "m004_generation_lease", _m004_generation_lease),
    Migration(5, "m005_users", _m005_users),
    Migration(6, "m006_generation_batch", _m006_generation_batch),
)
"""The real migrations, in order. Versions are 1, 2, 3 ... without gaps."""

LATEST_VERSION = MIGRATIONS[-1].version


def _check_list(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise ValueError(f"migration versions must be 1..{len(migrations)} in order, got {versions}")


def _applied(conn: Connection) -> dict[int, str]:
    if not inspect(conn).has_table(MIGRATIONS_TABLE):
        return {}
    rows = conn.execute(select(schema_migrations.c.version, schema_migrations.c.name))
    return {int(v): str(n) for v, n in rows}


def _check_not_newer(applied: dict[int, str], migrations: Sequence[Migration], where: str) -> None:
    known = {m.version: m.name for m in migrations}
    latest = max(known, default=0)
    newest = max(applied, default=0)
    if newest > latest:
        unknown = ", ".join(f"{v}:{applied[v]}" for v in sorted(applied) if v > latest)
        raise SchemaTooNewError(
            f"the database {where} has schema version {newest}, but this VividFlow knows only up to "
            f"version {latest} (unknown migrations: {unknown}). It was written by a newer VividFlow; "
            f"upgrade VividFlow, or point VIVIDFLOW_HOME / VIVIDFLOW_DB_URL at another database."
        )
    for version, name in applied.items():
        if known.get(version) != name:
            raise SchemaMismatchError(
                f"the database {where} records migration {version} as {name!r}, "
                f"but this code calls migration {version} {known.get(version)!r}"
            )


def _lock(conn: Connection) -> None:
    """Hold the migration lock until the transaction ends, so processes opening a fresh database at the same
    moment migrate it once: PostgreSQL's transaction-level advisory lock; SQLite's write transaction began
    with BEGIN IMMEDIATE (``storage.db``) and holds the database's write lock already."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def schema_version(engine: Engine) -> int:
    """The version of the last applied migration; 0 for a blank database."""
    with engine.connect() as conn:
        return max(_applied(conn), default=0)


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the missing migrations in one transaction and return the schema version.

    Raises SchemaTooNewError when the database is newer than ``migrations`` and
    SchemaMismatchError when a recorded migration has another name than ours.
    """
    _check_list(migrations)
    where = engine.url.render_as_string(hide_password=True)
    # cheap read first: a newer database is refused before we take any write lock
    with engine.connect() as conn:
        applied = _applied(conn)
    _check_not_newer(applied, migrations, where)
    if len(applied) == len(migrations):
        return len(migrations)

    with writer(engine).begin() as conn:
        _lock(conn)
        _migrations_meta.create_all(conn)
        applied = _applied(conn)  # again, under the lock: another process may have migrated meanwhile
        _check_not_newer(applied, migrations, where)
        for m in migrations:
            if m.version in applied:
                continue
            log.info("applying migration %d %s to %s", m.version, m.name, where)
            m.apply(conn)
            conn.execute(
                schema_migrations.insert().values(
                    version=m.version, name=m.name, applied_at=utcnow().replace(tzinfo=None)
                )
            )
    return len(migrations)
