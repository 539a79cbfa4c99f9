"""The shared queue: workers in any number of threads, processes and hosts claim jobs from one database.

A job submitted for any worker is queued with owner ``SHARED_QUEUE``. A worker claims the oldest one of the
backends it serves and becomes its owner under a lease of ``lease_s`` seconds, which it renews while it
works (``renew_lease``, every few seconds). PostgreSQL picks the job with ``SELECT … FOR UPDATE SKIP
LOCKED``, so claimers never wait for each other; SQLite has one writer at a time. A job whose lease ran
out (its worker died, hung or lost its host) goes back to the queue once (``lease_retries``) and fails
with the reason the next time (``expire_leases``, which every idle worker calls). On PostgreSQL, leases
are measured by the server's clock, so the hosts' clocks need not agree.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select

from storage.errors import InvalidFieldError
from storage.models import SHARED_QUEUE, Generation, utcnow
from storage.queue import QueueMixin
from storage.records import GenerationRecord
from storage.validation import check_float, check_owner, check_str

log = logging.getLogger(__name__)

MAX_LEASE_RETRIES = 1
"""How often a job whose lease ran out goes back to the queue before it fails."""
MIN_LEASE_S = 0.1


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

    def expire_leases(self) -> tuple[list[int], list[int]]:
        """Put running jobs whose lease ran out back in the shared queue, once; fail those that ran out
        before (cancel those whose cancel was asked). Returns (requeued ids, ended ids)."""
        requeued: list[int] = []
        ended: list[int] = []
        with self._write() as s:
            q = select(Generation).where(Generation.status == "running", Generation.lease_expires_at < self._clock())
            if self.is_postgres:
                q = q.with_for_update(skip_locked=True)  # another worker expiring them: leave them to it
            for row in s.scalars(q.order_by(Generation.id)):
                if row.cancel_requested:
                    row.status, row.finished_at = "cancelled", utcnow()
                    ended.append(row.id)
                elif row.lease_retries >= MAX_LEASE_RETRIES:
                    seen = f"{row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if row.heartbeat_at else "never"
                    row.status, row.finished_at = "failed", utcnow()
                    row.error = (
                        f"interrupted twice: its worker stopped renewing the lease (worker {row.owner}, last "
                        f"heartbeat {seen}); it had been put back in the queue once already"
                    )
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
            log.warning("generation(s) %s: lease ran out again (or cancel was asked); ended", ended)
        return requeued, ended


def _check_holder(owner: object) -> str:
    checked = check_owner(owner)
    if checked is None or checked == SHARED_QUEUE:
        raise InvalidFieldError(f"owner must name the worker process (storage.owner), got {owner!r}")
    return checked
