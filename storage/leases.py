"""The shared queue: workers in any number of threads, processes and hosts claim jobs from one database.

A job submitted for any worker is queued with owner ``SHARED_QUEUE``. A worker claims the oldest one of the
backends it serves and becomes its owner under a lease of ``lease_s`` seconds, which it renews while it
works (``renew_lease``, every few seconds). PostgreSQL picks the job with ``SELECT … FOR UPDATE SKIP
LOCKED``, so claimers never wait for each other; SQLite has one writer at a time. A job whose lease ran
out (its worker died, hung or lost its host) goes back to the queue once (``lease_retries``) and fails
with the reason the next time (``expire_leases``, which every idle worker calls). On PostgreSQL, leases
are measured by the server's clock, so the hosts' clocks need not agree.

A process's own jobs (a runner's in-process queue) are held under a lease as well, renewed with
``renew_leases`` while they wait and run; they are claimed with no retry left, because nobody else serves
that process's queue: when the lease runs out they fail as interrupted. Liveness is the lease alone,
whatever host or container the holder runs in (storage.owner's id only says who holds a job).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select, update

from storage.errors import InvalidFieldError
from storage.models import SHARED_QUEUE, Generation, utcnow
from storage.queue import MAX_LEASE_RETRIES, MIN_LEASE_S, QueueMixin
from storage.records import GenerationRecord
from storage.validation import check_float, check_int, check_owner, check_str

log = logging.getLogger(__name__)

__all__ = ["MAX_LEASE_RETRIES", "MIN_LEASE_S", "LeaseMixin"]



class LeaseMixin(QueueMixin):
    """The shared-queue part of :class:`storage.Store`: claims under a lease, renewal and expiry."""

    def claim_shared(
        self, owner: str, lease_s: float, backends: Iterable[str] | None = None
    ) -> GenerationRecord | None:
        """Claim the oldest job of the shared queue (of ``backends``, if given) for ``owner``, under a lease
        of ``lease_s`` seconds; None when there is none."""
        owner = _check_holder(owner)
        check_float("lease_s", lease_s, MIN_LEASE_S)
        conds = [Generation.owner == SHARED_QUEUE]
        if backends is not None:
            names = [check_str("backend", b, allow_empty=False) for b in backends]
            conds.append(Generation.backend.in_(names))
        return self._claim_oldest(conds, owner, lease_s)

    def renew_lease(self, generation_id: int, owner: str, lease_s: float) -> GenerationRecord | None:
        """Extend ``owner``'s lease on a running job to ``lease_s`` seconds from now. None when ``owner`` no
        longer holds it: it ended, or its lease ran out and it went back to the queue; the worker should
        stop working on it. The record carries ``cancel_requested``."""
        owner = _check_holder(owner)
        check_float("lease_s", lease_s, MIN_LEASE_S)
        clock = self._clock()
        with self._write() as s:
            row = self._update_generation(
                s,
                [Generation.id == generation_id, Generation.status == "running", Generation.owner == owner],
                {"heartbeat_at": clock, "lease_expires_at": clock + timedelta(seconds=lease_s)},
            )
            return self._generation(row) if row is not None else None

    def renew_leases(self, generation_ids: Iterable[int], owner: str, lease_s: float) -> dict[int, GenerationRecord]:
        """Extend ``owner``'s lease on those of its queued or running jobs in ``generation_ids`` to ``lease_s``
        seconds from now, in one statement. Returns the records renewed (with ``cancel_requested``); a job
        missing from it is no longer held by ``owner`` (it ended, or recovery took it after the lease ran out)."""
        ids = [check_int("generation id", i) for i in generation_ids]
        owner = _check_holder(owner)
        check_float("lease_s", lease_s, MIN_LEASE_S)
        if not ids:
            return {}
        clock = self._clock()
        with self._write() as s:
            rows = s.scalars(
                update(Generation)
                .where(Generation.id.in_(ids), Generation.status.in_(("queued", "running")), Generation.owner == owner)
                .values(heartbeat_at=clock, lease_expires_at=clock + timedelta(seconds=lease_s))
                .returning(Generation)
                .execution_options(synchronize_session=False, populate_existing=True)
            ).all()
            return {row.id: self._generation(row) for row in rows}

    def expire_leases(self) -> tuple[list[int], list[int]]:
        """Put running jobs whose lease ran out back in the shared queue, once; fail those that ran out
        before, and the jobs of a process's own queue (cancel those whose cancel was asked); the files a job
        had named for publishing are removed. Returns (requeued ids, ended ids)."""
        requeued: list[int] = []
        ended: list[int] = []
        outputs: list[str] = []
        with self._write() as s:
            q = select(Generation).where(Generation.status == "running", Generation.lease_expires_at < self._clock())
            if self.is_postgres:
                q = q.with_for_update(skip_locked=True)  # another worker expiring them: leave them to it
            for row in s.scalars(q.order_by(Generation.id)):
                outputs += [p for p in (row.video_path, row.thumbnail_path) if p]
                row.video_path = row.thumbnail_path = None
                if row.cancel_requested:
                    row.status, row.finished_at = "cancelled", utcnow()
                    ended.append(row.id)
                elif row.lease_retries >= MAX_LEASE_RETRIES:
                    row.status, row.finished_at, row.error = "failed", utcnow(), _lost_lease_message(row)
                    ended.append(row.id)
                else:
                    row.status, row.owner, row.lease_retries = "queued", SHARED_QUEUE, row.lease_retries + 1
                    row.started_at = row.progress_stage = row.progress_step = row.progress_total = None
                    row.progress_eta_s = row.progress_updated_at = None
                    requeued.append(row.id)
                row.lease_expires_at = None
        if requeued:
            log.warning("generation(s) %s: lease ran out; back in the shared queue", requeued)
        if ended:
            log.warning("generation(s) %s: lease ran out (no retry left, or cancel was asked); ended", ended)
        if outputs:
            self.discard_media(outputs)  # type: ignore[attr-defined]  # storage.sweep, on the Store
        return requeued, ended


def _lost_lease_message(row: Generation) -> str:
    seen = f"{row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if row.heartbeat_at else "never"
    attempt = f", attempt {row.attempts}" if row.attempts > 1 else ""
    return f"interrupted: its worker stopped renewing its lease (worker {row.owner}, last heartbeat {seen}{attempt})"


def _check_holder(owner: object) -> str:
    checked = check_owner(owner)
    if checked is None or checked == SHARED_QUEUE:
        raise InvalidFieldError(f"owner must name the worker process (storage.owner), got {owner!r}")
    return checked
