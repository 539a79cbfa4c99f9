"""Recovery of jobs whose process is gone: start-up recovery and the release of queued jobs at close.

Every queued/running generation may name its ``owner``: the process that holds it (storage.owner).
``mark_interrupted(is_alive=owner_alive)`` fails only the jobs whose owner is gone (or unknown), so a
process starting up never fails the live jobs of another process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy import or_, select, update

from storage.base import StoreBase
from storage.models import ACTIVE_STATUSES, SHARED_QUEUE, Generation, utcnow
from storage.validation import check_int, check_owner, check_str

log = logging.getLogger(__name__)

DEFAULT_INTERRUPTED_MESSAGE = "interrupted (the app stopped during generation)"


class RecoveryMixin(StoreBase):
    """The recovery part of :class:`storage.Store`: queued/running jobs left by dead processes."""

    def mark_interrupted(
        self,
        message: str = DEFAULT_INTERRUPTED_MESSAGE,
        *,
        is_alive: Callable[[str], bool] | None = None,
    ) -> list[int]:
        """Turn queued or running generations into failed with ``message``; return their ids.

        With ``is_alive`` (e.g. ``storage.owner.owner_alive``), only those whose owner is None or for
        which ``is_alive(owner)`` is False: the jobs of processes that are gone; the jobs of the shared
        queue and those running under a lease are left to lease expiry (``storage.leases``). Without
        it, every queued or running generation, for a caller that knows no other process runs.
        """
        check_str("message", message, allow_empty=False)
        active = Generation.status.in_(ACTIVE_STATUSES)
        if is_alive is None:
            with self._write() as s:
                ids = list(s.scalars(select(Generation.id).where(active).order_by(Generation.id)))
                if ids:
                    s.execute(
                        update(Generation)
                        .where(Generation.id.in_(ids), active)
                        .values(status="failed", error=message, finished_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
        else:
            # 1. Who holds what, read without the write lock (is_alive may look at other processes)
            held_by_a_process = (
                Generation.lease_expires_at.is_(None),
                or_(Generation.owner.is_(None), Generation.owner != SHARED_QUEUE),
            )
            with self._read() as s:
                rows = s.execute(select(Generation.id, Generation.owner).where(active, *held_by_a_process))
                held: dict[str | None, list[int]] = {}
                for gen_id, owner in rows:
                    held.setdefault(owner, []).append(gen_id)
            dead = {owner: gids for owner, gids in held.items() if owner is None or not is_alive(owner)}
            # 2. Fail those still active and still held by the same dead owner (not claimed or requeued
            #    by a live process meanwhile)
            ids = []
            if dead:
                with self._write() as s:
                    for owner, gids in dead.items():
                        same = Generation.owner.is_(None) if owner is None else Generation.owner == owner
                        cond = (Generation.id.in_(gids), active, same)
                        now_ids = list(s.scalars(select(Generation.id).where(*cond)))
                        if now_ids:
                            s.execute(
                                update(Generation)
                                .where(Generation.id.in_(now_ids), *cond[1:])
                                .values(status="failed", error=message, finished_at=utcnow())
                                .execution_options(synchronize_session=False)
                            )
                            ids += now_ids
                ids.sort()
            skipped = sum(len(g) for g in held.values()) - sum(len(g) for g in dead.values())
            if skipped:
                log.info("left %d queued/running generation(s) of live processes alone", skipped)
        if ids:
            log.warning("marked %d interrupted generation(s) as failed: %s", len(ids), ids)
        return ids

    def release_queued(self, generation_ids: Iterable[int], owner: str) -> list[int]:
        """Clear the owner of those of ``generation_ids`` still queued and held by ``owner`` (a runner that
        closes and will not run them); the next start-up recovery of any process marks them
        interrupted. Returns the ids released."""
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
                    .values(owner=None)
                    .execution_options(synchronize_session=False)
                )
        return released
