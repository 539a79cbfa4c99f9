"""Recovery of jobs whose holder is gone: lease expiry, start-up and periodic recovery, and the release of
queued jobs at close.

Every queued/running generation may name its ``owner`` (storage.owner: who holds it) and hold a lease
(``lease_expires_at``) that its holder renews while it lives (storage.leases). Liveness is the lease alone:
``recover`` — what a runner calls at start and every few seconds while it lives, and what
``python -m storage recover`` runs — ends the jobs whose lease ran out, whatever host or container they
came from, and never touches a job whose lease is current.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, not_, or_, select, update

from storage.leases import LeaseMixin
from storage.models import ACTIVE_STATUSES, SHARED_QUEUE, Generation, utcnow
from storage.sweep import SweepMixin
from storage.validation import check_int, check_owner, check_str

log = logging.getLogger(__name__)

DEFAULT_INTERRUPTED_MESSAGE = "interrupted (the app stopped during generation)"


@dataclass(frozen=True)
class Recovered:
    """What one recovery pass did."""

    interrupted: list[int] = field(default_factory=list)  # failed (or cancelled, when asked) as interrupted
    requeued: list[int] = field(default_factory=list)  # back in the shared queue after a lost lease
    removed: list[Path] = field(default_factory=list)  # staging folders and temporary files removed


class RecoveryMixin(LeaseMixin, SweepMixin):
    """The recovery part of :class:`storage.Store`: jobs left by holders that stopped renewing their lease."""

    def recover(self) -> Recovered:
        """One recovery pass: expired leases (storage.leases.expire_leases), jobs held by a process whose lease
        ran out or that hold none (``mark_interrupted(expired_only=True)``), then the staging folders and
        temporary files nobody is writing (storage.sweep). Safe to run from any process at any time."""
        requeued, ended = self.expire_leases()
        marked = self.mark_interrupted(expired_only=True)
        removed = self.sweep_temp()
        return Recovered(sorted(set(ended) | set(marked)), requeued, removed)

    def mark_interrupted(self, message: str = DEFAULT_INTERRUPTED_MESSAGE, *, expired_only: bool = False) -> list[int]:
        """Turn queued or running generations into failed with ``message``; return their ids. The files a
        job had named for publishing (``record_outputs``) are removed unless another row uses them.

        With ``expired_only``, only those held by a process (not waiting in the shared queue) whose lease ran
        out or that hold no lease (no known owner, or written by a VividFlow before leases); running jobs
        under a lease are left to ``expire_leases``, which knows whether they get a retry. Without it, every
        queued or running generation, for a caller that knows no VividFlow process runs.
        """
        check_str("message", message, allow_empty=False)
        conds = [Generation.status.in_(ACTIVE_STATUSES)]
        if expired_only:
            conds += [
                or_(Generation.owner.is_(None), Generation.owner != SHARED_QUEUE),
                or_(Generation.lease_expires_at.is_(None), Generation.lease_expires_at < self._clock()),
                not_(and_(Generation.status == "running", Generation.lease_expires_at.is_not(None))),
            ]
        with self._write() as s:
            q = select(Generation.id, Generation.video_path, Generation.thumbnail_path).where(*conds)
            if self.is_postgres:
                q = q.with_for_update(skip_locked=True)
            rows = s.execute(q.order_by(Generation.id)).all()
            ids = [r[0] for r in rows]
            if ids:
                s.execute(
                    update(Generation)
                    .where(Generation.id.in_(ids), Generation.status.in_(ACTIVE_STATUSES))
                    .values(status="failed", error=message, finished_at=utcnow(), lease_expires_at=None,
                            video_path=None, thumbnail_path=None)
                    .execution_options(synchronize_session=False)
                )
        outputs = [p for r in rows for p in r[1:] if p]
        if outputs:
            self.discard_media(outputs)
        if ids:
            log.warning("marked %d interrupted generation(s) as failed: %s", len(ids), ids)
        return ids

    def release_queued(self, generation_ids: Iterable[int], owner: str) -> list[int]:
        """Clear the owner and lease of those of ``generation_ids`` still queued and held by ``owner`` (a runner
        that closes and will not run them); the next recovery of any process marks them interrupted.
        Returns the ids released."""
        ids = [check_int("generation id", i) for i in generation_ids]
        check_owner(owner)
        if not ids:
            return []
        with self._write() as s:
            cond = (Generation.id.in_(ids), Generation.status == "queued", Generation.owner == owner)
            released = sorted(s.scalars(select(Generation.id).where(*cond)))
            if released:
                s.execute(
                    update(Generation)
                    .where(Generation.id.in_(released), *cond[1:])
                    .values(owner=None, lease_expires_at=None)
                    .execution_options(synchronize_session=False)
                )
        return released
