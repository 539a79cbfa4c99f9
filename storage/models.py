"""The ORM tables: conversations, messages, source images, generations.

These classes describe the *current* schema for queries. The schema itself is created and upgraded
by the frozen functions in ``storage.migrations``; a test checks that both agree column by column.
Nothing outside ``storage/`` sees these classes: the Store returns plain dataclasses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
"""Every generation status, in lifecycle order."""

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
ROLES = ("user", "assistant", "system")
SHARED_QUEUE = "shared-queue"
"""The owner of a queued generation that any worker may claim (storage.leases)."""
LOCAL_USER = "local"
"""The person a record belongs to when nobody logged in (and every row written before migration 5)."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A UTC datetime, read back timezone-aware: ``timestamp with time zone`` on PostgreSQL, naive UTC on
    SQLite (which keeps no zone). Naive input is taken to be UTC already; aware input is converted to UTC.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(DateTime(timezone=dialect.name == "postgresql"))

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        str: Text,
    }


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_id", "user_id", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the person it belongs to, and whether others may read it (migration 5)
    user_id: Mapped[str] = mapped_column(Text, default=LOCAL_USER)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="ck_messages_role"),
        Index("ix_messages_conversation_id", "conversation_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[str] = mapped_column(Text, default=LOCAL_USER)  # its conversation's person (migration 5)


class SourceImage(Base):
    __tablename__ = "source_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    media_key: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Generation(Base):
    __tablename__ = "generations"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="ck_generations_status"),
        Index("ix_generations_created_at", "created_at"),
        Index("ix_generations_status", "status", "created_at"),
        Index("ix_generations_template", "template", "created_at"),
        Index("ix_generations_backend", "backend", "created_at"),
        Index("ix_generations_seed", "seed"),
        Index("ix_generations_conversation_id", "conversation_id"),
        Index("ix_generations_parent_id", "parent_id"),
        Index("ix_generations_user_id", "user_id", "status"),
        Index("ix_generations_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id", ondelete="SET NULL"))
    source_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("source_images.id", ondelete="RESTRICT")
    )
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    # plan fields copied into columns for the gallery filters
    template: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    steps: Mapped[int | None] = mapped_column(Integer)
    guidance_scale: Mapped[float | None] = mapped_column(Float)
    guidance_scale_2: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    num_frames: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    prompt: Mapped[str | None] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    # who renders it
    backend: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str] = mapped_column(Text)
    # lifecycle
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress_stage: Mapped[str | None] = mapped_column(Text)
    progress_step: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    progress_eta_s: Mapped[float | None] = mapped_column(Float)
    progress_updated_at: Mapped[datetime | None] = mapped_column()
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # outputs
    video_path: Mapped[str | None] = mapped_column(Text)
    thumbnail_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    # the process holding a queued/running job (storage.owner); None: nobody we can check (migration 2)
    owner: Mapped[str | None] = mapped_column(Text)
    # the lease of a job claimed from the shared queue (storage.leases, migration 4)
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    lease_retries: Mapped[int] = mapped_column(Integer, default=0)
    # the person who asked for it, and whether others see it in their gallery (migration 5)
    user_id: Mapped[str] = mapped_column(Text, default=LOCAL_USER)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # the batch of variations it belongs to (#12 §3, migration 6); None: a single clip
    batch_id: Mapped[str | None] = mapped_column(String(64))
