"""Many people, one store: sharing a record with everyone, and the queue as an admin sees it.

Every conversation, message and generation belongs to one person (``user_id``: the studio's login, or
``'local'``). Reads that take a ``viewer`` return only that person's records and shared ones; writes that
take a ``user`` refuse another person's records (storage.errors.ForbiddenError). The per-person quota of
queued jobs is checked where jobs are created (``storage.queue``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from storage.base import StoreBase
from storage.errors import ForbiddenError
from storage.models import ACTIVE_STATUSES, Conversation, Generation
from storage.records import ConversationRecord, GenerationRecord
from storage.validation import MAX_PAGE_SIZE, check_int, check_user


@dataclass(frozen=True)
class UserQueue:
    """How many jobs one person has waiting and running."""

    user_id: str
    queued: int
    running: int


class UsersMixin(StoreBase):
    """The many-users part of :class:`storage.Store`: sharing, per-person counts, the admin's queue."""

    def share_generation(self, generation_id: int, shared: bool = True, *, user: str | None = None) -> GenerationRecord:
        """Show a generation in every person's gallery (``shared=False``: only its own person's again). With
        ``user``, only their own may be shared (ForbiddenError)."""
        with self._write() as s:
            row = self._owned(s, Generation, generation_id, "generation", user)
            row.shared = bool(shared)
            s.flush()
            return self._generation(row)

    def share_conversation(
        self, conversation_id: int, shared: bool = True, *, user: str | None = None
    ) -> ConversationRecord:
        """Let every person read a conversation (its messages); it stays writable by its own person only."""
        with self._write() as s:
            row = self._owned(s, Conversation, conversation_id, "conversation", user)
            row.shared = bool(shared)
            s.flush()
            return self._conversation(row)

    def _owned(self, s: Any, model: type[Any], id: int, what: str, user: str | None) -> Any:
        row = self._get(s, model, id, what, for_update=True)
        if user is not None and row.user_id != check_user(user):
            raise ForbiddenError(f"{what} {id} belongs to another person; only they can share it")
        return row

    def active_jobs(self, user: str) -> int:
        """How many jobs ``user`` has queued or running (what the quota counts)."""
        q = select(func.count()).where(Generation.user_id == check_user(user), Generation.status.in_(ACTIVE_STATUSES))
        with self._read() as s:
            return int(s.scalar(q) or 0)

    def queue_overview(self, limit: int = 200) -> list[GenerationRecord]:
        """The queue as an admin sees it: every person's running jobs (oldest start first), then the queued
        ones in the order workers claim them (oldest first)."""
        check_int("limit", limit, 1, MAX_PAGE_SIZE)
        running_first = case((Generation.status == "running", 0), else_=1)
        q = (
            select(Generation)
            .where(Generation.status.in_(ACTIVE_STATUSES))
            .order_by(running_first, Generation.id)
            .limit(limit)
        )
        with self._read() as s:
            return [self._generation(r) for r in s.scalars(q)]

    def queue_by_user(self) -> list[UserQueue]:
        """Queued and running jobs per person, the busiest first."""
        queued = func.sum(case((Generation.status == "queued", 1), else_=0))
        running = func.sum(case((Generation.status == "running", 1), else_=0))
        q = (
            select(Generation.user_id, queued, running)
            .where(Generation.status.in_(ACTIVE_STATUSES))
            .group_by(Generation.user_id)
            .order_by(func.count().desc(), Generation.user_id)
        )
        with self._read() as s:
            return [UserQueue(u, int(nq or 0), int(nr or 0)) for u, nq, nr in s.execute(q)]
