"""Plain frozen values the Store returns: safe to hand to other threads, never tied to a session."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.models import ACTIVE_STATUSES, LOCAL_USER, TERMINAL_STATUSES


@dataclass(frozen=True)
class ConversationRecord:
    """A chat thread."""

    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    user_id: str = LOCAL_USER
    """The person it belongs to; only they may write to it."""
    shared: bool = False
    """True: every person may read it."""


@dataclass(frozen=True)
class MessageRecord:
    """One chat message; ``plan`` is the MotionPlan JSON after this turn, if the turn made one."""

    id: int
    conversation_id: int
    role: str
    text: str
    plan: dict[str, Any] | None
    meta: dict[str, Any] | None
    created_at: datetime
    user_id: str = LOCAL_USER
    """The person whose conversation it is."""


@dataclass(frozen=True)
class ImageRecord:
    """An uploaded source image, stored once per content hash; ``path`` is absolute."""

    id: int
    sha256: str
    media_key: str
    path: Path
    width: int
    height: int
    format: str
    size_bytes: int
    filename: str | None
    created_at: datetime


@dataclass(frozen=True)
class Progress:
    """The last progress report of a running generation."""

    stage: str
    step: int | None
    total: int | None
    eta_s: float | None
    updated_at: datetime | None


@dataclass(frozen=True)
class GenerationRecord:
    """One video generation: the plan it renders, its parameters, status, progress and outputs."""

    id: int
    conversation_id: int | None
    parent_id: int | None
    source_image_id: int | None
    plan: dict[str, Any]
    template: str | None
    seed: int | None
    steps: int | None
    guidance_scale: float | None
    guidance_scale_2: float | None
    duration_s: float | None
    num_frames: int | None
    fps: int | None
    width: int | None
    height: int | None
    prompt: str | None
    negative_prompt: str | None
    backend: str
    model_id: str
    status: str
    error: str | None
    attempts: int
    cancel_requested: bool
    progress: Progress | None
    timings: dict[str, Any] | None
    params: dict[str, Any] | None
    video_path: Path | None
    thumbnail_path: Path | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    owner: str | None
    """The process that holds (or last held) it, ``hostname:pid:start:nonce`` (storage.owner); None: unknown;
    ``storage.leases.SHARED_QUEUE``: queued for any worker."""
    heartbeat_at: datetime | None
    """When its worker last renewed its lease (jobs of the shared queue only)."""
    lease_expires_at: datetime | None
    """While it runs under a lease: when the lease runs out unless renewed."""
    lease_retries: int
    """How often it went back to the queue because its lease ran out."""
    user_id: str = LOCAL_USER
    """The person who asked for it (not ``owner``, the process that runs it)."""
    shared: bool = False
    """True: it shows in every person's gallery, not only its user's."""
    batch_id: str | None = None
    """The batch of variations it belongs to (records of one batch share it); None: a single clip."""

    @property
    def is_terminal(self) -> bool:
        """True once succeeded, failed or cancelled."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """True while queued or running."""
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class GalleryPage:
    """One page of the gallery (newest first) and the number of matches over all pages."""

    items: tuple[GenerationRecord, ...]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


@dataclass(frozen=True)
class Lineage:
    """A generation with its ancestors (root first, parent last) and its direct children (oldest first)."""

    generation: GenerationRecord
    ancestors: tuple[GenerationRecord, ...]
    children: tuple[GenerationRecord, ...]


@dataclass(frozen=True)
class StoreInfo:
    """What ``python -m storage info`` prints."""

    url: str
    database_path: Path | None
    media_root: Path
    schema_version: int
    latest_version: int
    counts: dict[str, int]
    generations_by_status: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["database_path"] = str(self.database_path) if self.database_path else None
        d["media_root"] = str(self.media_root)
        return d
