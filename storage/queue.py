"""The generation queue: enqueue, claim, progress, finish, cancel and requeue.

Generation lifecycle (anything else raises InvalidTransitionError)::

    queued ──claim──> running ──finish──> succeeded | failed | cancelled
    queued ──cancel_queued / finish(failed|cancelled) / mark_interrupted──> cancelled | failed
    failed | cancelled ──requeue──> queued   (the same record, same id: "#12" stays #12)

Every queued/running generation may name its ``owner``: the process that holds it (storage.owner), or
``SHARED_QUEUE`` for a job any worker may claim under a lease (storage.leases). A process holds its own
jobs under a lease too (``lease_s`` on create, claim and requeue; renewed with ``renew_leases``): when it
stops renewing, recovery in any process marks them interrupted (storage.recovery).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from storage.base import StoreBase
from storage.errors import ForbiddenError, InvalidFieldError, InvalidTransitionError, QuotaExceededError
from storage.models import (
    ACTIVE_STATUSES,
    LOCAL_USER,
    SHARED_QUEUE,
    TERMINAL_STATUSES,
    Conversation,
    Generation,
    SourceImage,
    utcnow,
)
from storage.records import GenerationRecord
from storage.validation import (
    check_choice,
    check_float,
    check_int,
    check_owner,
    check_str,
    check_user,
    json_dict,
    plan_columns,
)

log = logging.getLogger(__name__)

MAX_LEASE_RETRIES = 1
"""How often a job of the shared queue whose lease ran out goes back to the queue before it fails
(storage.leases)."""
MIN_LEASE_S = 0.1
QUOTA_LOCK_KEY = 0x7166  # first key of the per-person PostgreSQL advisory lock the quota check takes

# status -> statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "failed", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset({"queued"}),
    "cancelled": frozenset({"queued"}),
}


class QueueMixin(StoreBase):
    """The queue part of :class:`storage.Store`: every status change of a generation but recovery."""

    def create_generation(
        self,
        conversation_id: int | None,
        plan: dict[str, Any],
        source_image_id: int | None,
        backend: str,
        model_id: str,
        parent_id: int | None = None,
        params: dict[str, Any] | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
        owner: str | None = None,
        lease_s: float | None = None,
        user: str = LOCAL_USER,
        quota: int | None = None,
        batch_id: str | None = None,
        batch_size: int = 1,
    ) -> GenerationRecord:
        """Record a new generation, status ``queued``, for ``user`` (the person asking; ``'local'`` without a
        login).

        ``plan`` is the MotionPlan JSON dict; its filterable keys (PLAN_COLUMNS) are copied into
        columns. ``width``/``height`` (the render size, when the plan lacks it) override the plan's.
        ``params``: everything else needed to reproduce it (LoRA ids and scales, quantization, ...).
        ``owner``: the process that will run it (``storage.owner.current_owner()``) under a lease of
        ``lease_s`` seconds it renews; None, or no lease, means nobody known, and any process's recovery may
        then mark it interrupted.
        ``quota``: the most jobs ``user`` may have queued or running; one more raises QuotaExceededError
        (checked and inserted in one transaction, so two tabs submitting at once cannot both slip past it).
        ``conversation_id`` must be a conversation of ``user``.
        ``batch_id``: the batch of variations it belongs to (#12 §3), shared by the records of one batch.
        ``batch_size``: on the first record of a batch of N, N: the quota must have room for all N clips (a
        batch counts N jobs), so a batch that does not fit is refused whole, before any of it is written.
        """
        if not isinstance(plan, dict):
            raise InvalidFieldError(f"plan must be a dict, got {type(plan).__name__}")
        columns = plan_columns(plan)  # first: its errors name the field
        plan = json_dict("plan", plan)
        if width is not None:
            columns["width"] = check_int("width", width, 1)
        if height is not None:
            columns["height"] = check_int("height", height, 1)
        check_str("backend", backend, allow_empty=False)
        check_str("model_id", model_id)
        params = json_dict("params", params) if params is not None else None
        owner = check_owner(owner)
        lease = self._process_lease(owner, lease_s)
        user = check_user(user)
        if quota is not None:
            check_int("quota", quota, 0)
        check_int("batch_size", batch_size, 1)
        if batch_id is not None:
            check_str("batch_id", batch_id, allow_empty=False)
            if len(batch_id) > 64:
                raise InvalidFieldError(f"batch_id must be at most 64 characters, got {len(batch_id)}")
        with self._write() as s:
            if quota is not None:
                self._check_quota(s, user, quota, batch_size)
            if conversation_id is not None:
                conv = self._get(s, Conversation, conversation_id, "conversation")
                if conv.user_id != user:
                    raise ForbiddenError(
                        f"conversation {conversation_id} belongs to another person; {user} cannot render into it"
                    )
                conv.updated_at = utcnow()
            if source_image_id is not None:
                self._get(s, SourceImage, source_image_id, "source image")
            if parent_id is not None:
                self._get(s, Generation, parent_id, "parent generation")
            row = Generation(
                conversation_id=conversation_id,
                parent_id=parent_id,
                source_image_id=source_image_id,
                plan=plan,
                backend=backend,
                model_id=model_id,
                params=params,
                status="queued",
                attempts=0,
                cancel_requested=False,
                owner=owner,
                **lease,
                user_id=user,
                batch_id=batch_id,
                **columns,
            )
            s.add(row)
            s.flush()
            return self._generation(row)

    def _check_quota(self, s: Session, user: str, quota: int, needed: int = 1) -> None:
        """QuotaExceededError when ``user`` has ``quota`` jobs queued or running (with ``needed`` > 1, a batch:
        when ``needed`` more would pass ``quota``). PostgreSQL: a transaction lock per person first, so two
        submissions of one person are counted one after the other (SQLite's write transaction is the only
        writer already)."""
        if self.is_postgres:
            s.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:u))"), {"k": QUOTA_LOCK_KEY, "u": user})
        active = select(func.count()).where(Generation.user_id == user, Generation.status.in_(ACTIVE_STATUSES))
        n = int(s.scalar(active) or 0)
        if needed > 1 and n + needed > quota:
            raise QuotaExceededError(
                f"{user} already has {n} job(s) queued or running, and a batch of {needed} variations would pass "
                f"the limit per person of {quota} (VIVIDFLOW_QUEUE_QUOTA); ask for fewer variations, or wait for "
                f"a job to finish or cancel one, then submit again"
            )
        if n >= quota:
            raise QuotaExceededError(
                f"{user} already has {n} job(s) queued or running, and the limit per person is {quota} "
                f"(VIVIDFLOW_QUEUE_QUOTA); wait for one to finish or cancel one, then submit again"
            )

    def _transition(
        self, s: Session, generation_id: int, to: str, values: dict[str, Any], owner: str | None = None
    ) -> Generation:
        """Move ``generation_id`` to ``to`` iff its current status allows it (and, with ``owner``, iff that
        process still holds it), in one UPDATE … RETURNING."""
        sources = [st for st, targets in TRANSITIONS.items() if to in targets]
        conds = [Generation.id == generation_id, Generation.status.in_(sources)]
        if owner is not None:
            conds.append(Generation.owner == owner)
        row = self._update_generation(s, conds, {"status": to, **values})
        if row is None:
            row = self._get(s, Generation, generation_id, "generation")
            if owner is not None and row.status in sources:
                raise InvalidTransitionError(
                    f"generation {generation_id} is held by {row.owner}, not {owner}; it cannot become {to}"
                )
            raise InvalidTransitionError(
                f"generation {generation_id} is {row.status}; it cannot become {to} "
                f"(only from {' or '.join(sources) or 'nothing'})"
            )
        return row

    def claim_generation(
        self, generation_id: int, owner: str | None = None, lease_s: float | None = None
    ) -> GenerationRecord | None:
        """queued -> running, atomically, held by ``owner`` (None: nobody known) under a lease of ``lease_s``
        seconds, if given; None if it is not queued (someone else has it)."""
        owner = check_owner(owner)
        lease = self._process_lease(owner, lease_s)
        with self._write() as s:
            self._get(s, Generation, generation_id, "generation")
            values = self._claim_values(owner, None)
            values.update(lease)
            row = self._update_generation(s, [Generation.id == generation_id, Generation.status == "queued"], values)
            return self._generation(row) if row is not None else None

    def _process_lease(self, owner: str | None, lease_s: float | None) -> dict[str, Any]:
        """The lease columns of a job a process holds in its own queue: a lease of ``lease_s`` from now and no
        retry through the shared queue (nobody else serves that process's queue, so a lost lease fails the
        job: storage.leases)."""
        if lease_s is None:
            return {}
        check_float("lease_s", lease_s, MIN_LEASE_S)
        if owner is None or owner == SHARED_QUEUE:
            raise InvalidFieldError(f"a lease needs an owner that names a process, got {owner!r}")
        clock = self._clock()
        return {"heartbeat_at": clock, "lease_expires_at": clock + timedelta(seconds=lease_s),
                "lease_retries": MAX_LEASE_RETRIES}

    def record_outputs(
        self, generation_id: int, owner: str, video_path: str | os.PathLike[str],
        thumbnail_path: str | os.PathLike[str] | None = None,
    ) -> GenerationRecord:
        """Name the files a running job is about to publish, before it moves them into place: if its process
        dies before the job ends, recovery finds them and removes them (storage.recovery). Raises
        InvalidTransitionError when ``owner`` no longer holds the job."""
        video = self._store_path("video_path", video_path)
        thumb = self._store_path("thumbnail_path", thumbnail_path)
        owner = check_owner(owner)
        with self._write() as s:
            conds = [Generation.id == generation_id, Generation.status == "running", Generation.owner == owner]
            row = self._update_generation(s, conds, {"video_path": video, "thumbnail_path": thumb})
            if row is None:
                row = self._get(s, Generation, generation_id, "generation")
                raise InvalidTransitionError(
                    f"generation {generation_id} is {row.status}, held by {row.owner}; {owner} cannot publish it"
                )
            return self._generation(row)

    def _claim_values(self, owner: str | None, lease_s: float | None) -> dict[str, Any]:
        """The columns a claim sets; with ``lease_s``, a lease that runs out that many seconds from now."""
        now = utcnow()
        values: dict[str, Any] = {
            "status": "running",
            "owner": owner,
            "started_at": now,
            "attempts": Generation.attempts + 1,
            "progress_stage": "starting",
            "progress_step": None,
            "progress_total": None,
            "progress_eta_s": None,
            "progress_updated_at": now,
        }
        if lease_s is not None:
            clock = self._clock()
            values.update(heartbeat_at=clock, lease_expires_at=clock + timedelta(seconds=lease_s))
        return values

    def claim_next(self, backend: str | None = None, owner: str | None = None) -> GenerationRecord | None:
        """Claim the oldest queued generation (of ``backend``, if given) for ``owner``; None if the
        queue is empty."""
        owner = check_owner(owner)
        conds = [] if backend is None else [Generation.backend == backend]
        return self._claim_oldest(conds, owner, None)

    def _claim_oldest(self, conds: list[Any], owner: str | None, lease_s: float | None) -> GenerationRecord | None:
        """Claim the oldest queued generation matching ``conds`` in one UPDATE … RETURNING. PostgreSQL picks
        it with FOR UPDATE SKIP LOCKED, so concurrent claimers take different rows without waiting for each
        other; SQLite's write transaction makes the claimer the only writer."""
        for _ in range(3):
            with self._write() as s:
                pick = select(Generation.id).where(Generation.status == "queued", *conds)
                pick = pick.order_by(Generation.id).limit(1)
                if self.is_postgres:
                    pick = pick.with_for_update(skip_locked=True)
                row = self._update_generation(
                    s,
                    [Generation.id == pick.scalar_subquery(), Generation.status == "queued"],
                    self._claim_values(owner, lease_s),
                )
                if row is not None:
                    return self._generation(row)
                # PostgreSQL may skip a row another claimer took after this statement's snapshot: look again
                waiting = select(Generation.id).where(Generation.status == "queued", *conds).limit(1)
                if not self.is_postgres or s.scalars(waiting).first() is None:
                    return None
        return None

    def queue_position(self, generation_id: int) -> int | None:
        """How many queued generations are ahead of this one (0 = next); None if it is not queued."""
        with self._read() as s:
            row = self._get(s, Generation, generation_id, "generation")
            if row.status != "queued":
                return None
            q = select(func.count()).where(Generation.status == "queued", Generation.id < generation_id)
            return int(s.scalar(q) or 0)

    def update_progress(
        self,
        generation_id: int,
        stage: str,
        step: int | None = None,
        total: int | None = None,
        eta_s: float | None = None,
        *,
        owner: str | None = None,
    ) -> GenerationRecord:
        """Record progress of a running generation (held by ``owner``, if given); the returned record
        carries ``cancel_requested``."""
        check_str("stage", stage, allow_empty=False)
        if total is not None:
            check_int("total", total, 0)
        if step is not None:
            check_int("step", step, 0, total)
        if eta_s is not None:
            check_float("eta_s", eta_s, 0.0)
        conds = [Generation.id == generation_id, Generation.status == "running"]
        if owner is not None:
            conds.append(Generation.owner == check_owner(owner))
        with self._write() as s:
            row = self._update_generation(
                s,
                conds,
                {
                    "progress_stage": stage,
                    "progress_step": step,
                    "progress_total": total,
                    "progress_eta_s": eta_s,
                    "progress_updated_at": utcnow(),
                },
            )
            if row is None:
                row = self._get(s, Generation, generation_id, "generation")
                held = f", held by {row.owner}, not {owner}" if row.status == "running" else ""
                raise InvalidTransitionError(
                    f"generation {generation_id} is {row.status}{held}; progress is recorded only while "
                    f"running{' by its holder' if owner is not None else ''}"
                )
            return self._generation(row)

    def finish_generation(
        self,
        generation_id: int,
        status: str,
        error: str | None = None,
        video_path: str | os.PathLike[str] | None = None,
        thumbnail_path: str | os.PathLike[str] | None = None,
        timings: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        *,
        owner: str | None = None,
    ) -> GenerationRecord:
        """End a generation: ``succeeded`` (from running, needs video_path), ``failed`` (needs error)
        or ``cancelled`` (from queued or running). ``timings`` and ``params`` are merged into the
        stored dicts (new keys win). With ``owner``, only while that process holds it (a worker whose
        lease ran out must not end the job another worker now runs)."""
        check_choice("status", status, TERMINAL_STATUSES)
        if status == "failed" and not (isinstance(error, str) and error.strip()):
            raise InvalidFieldError("error must be a non-empty message when status is 'failed'")
        if error is not None:
            check_str("error", error)
        if status == "succeeded" and video_path is None:
            raise InvalidFieldError("video_path is required when status is 'succeeded'")
        video = self._store_path("video_path", video_path)
        thumb = self._store_path("thumbnail_path", thumbnail_path)
        timings = json_dict("timings", timings) if timings is not None else None
        params = json_dict("params", params) if params is not None else None
        owner = check_owner(owner)
        with self._write() as s:
            current = self._get(s, Generation, generation_id, "generation", for_update=True)
            values: dict[str, Any] = {"finished_at": utcnow(), "error": error, "lease_expires_at": None}
            if video is not None:
                values["video_path"] = video
            if thumb is not None:
                values["thumbnail_path"] = thumb
            if timings is not None:
                values["timings"] = {**(current.timings or {}), **timings}
            if params is not None:
                values["params"] = {**(current.params or {}), **params}
            return self._generation(self._transition(s, generation_id, status, values, owner))

    def cancel_queued(self, generation_id: int) -> bool:
        """queued -> cancelled; False (nothing changed) when it is not queued."""
        with self._write() as s:
            self._get(s, Generation, generation_id, "generation")
            result = s.execute(
                update(Generation)
                .where(Generation.id == generation_id, Generation.status == "queued")
                .values(status="cancelled", finished_at=utcnow(), error=None)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def request_cancel(self, generation_id: int) -> GenerationRecord:
        """Cancel from any process: a queued job is cancelled now; a running one gets
        ``cancel_requested`` set, which its runner sees in the record ``update_progress`` returns.
        A finished job is left as it is."""
        with self._write() as s:
            row = self._get(s, Generation, generation_id, "generation", for_update=True)
            if row.status == "queued":
                row.status = "cancelled"
                row.finished_at = utcnow()
            elif row.status == "running":
                row.cancel_requested = True
            s.flush()
            return self._generation(row)

    def requeue(self, generation_id: int, owner: str | None = None, lease_s: float | None = None) -> GenerationRecord:
        """A failed or cancelled generation back to queued, *in place* (same id, plan, params and
        lineage), held by ``owner`` (None: nobody known; ``SHARED_QUEUE``: any worker; a process: under a lease
        of ``lease_s``, if given); its error,
        progress, outputs, timings, start/finish times and lease are cleared (a person's requeue gives
        it a fresh lease retry), and ``attempts`` keeps counting. To render a variation
        instead, create a child generation."""
        owner = check_owner(owner)
        lease = self._process_lease(owner, lease_s)
        with self._write() as s:
            row = self._transition(
                s,
                generation_id,
                "queued",
                {
                    "error": None,
                    "cancel_requested": False,
                    "progress_stage": None,
                    "progress_step": None,
                    "progress_total": None,
                    "progress_eta_s": None,
                    "progress_updated_at": None,
                    "timings": None,
                    "video_path": None,
                    "thumbnail_path": None,
                    "started_at": None,
                    "finished_at": None,
                    "owner": owner,
                    "heartbeat_at": None,
                    "lease_expires_at": None,
                    "lease_retries": 0,
                    **lease,
                },
            )
            log.info("requeued generation %d (attempt %d so far)", generation_id, row.attempts)
            return self._generation(row)
