"""The worker side of `generation.jobs.Runner`: one thread per device takes jobs, from the runner's own
FIFO queue or from the database's shared queue, runs them and records what happens.

A job runs in five stages: claim (queued → running, under a lease), inputs read back from the store,
backend (built once per device), generate into a staging folder inside the media root, publish (the
files' content addresses named on the record, the files moved there, then the record ends `succeeded`).
Any failure ends it `failed` with a readable message (the traceback goes to the log; a full disk says so);
the staging folder is removed first, so a full disk has room for the record. Cancel ends it `cancelled`,
with no video. Progress goes to the record (throttled) and to the listeners (every event). A runner
renews the lease of each job it holds (queued in its own queue or running) every `lease_s / 3`, and
recovers every `lease_s / 2` (storage.recovery); a process that dies stops renewing, and once the lease
has run out any runner's recovery ends the job (a shared-queue job goes back to the queue once). The
runner records every change as the job's holder, so a worker whose lease was lost cannot end or report
on a job another worker now runs.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation import segments
from generation.backend import Backend, BackendUnavailable
from generation.events import (
    Cancelled,
    CancelToken,
    Event,
    EventListener,
    Failed,
    Finished,
    GenerationCancelled,
    GenerationResult,
    Preview,
    Progress,
    Started,
)

if TYPE_CHECKING:
    from storage import GenerationRecord, Store

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Job:
    """A job a runner holds: queued in its own queue, or running on one of its workers."""

    id: int
    backend: str
    token: CancelToken
    done: threading.Event
    queued_at: float
    claimed: GenerationRecord | None = None  # claimed from the shared queue already


class WorkerMixin:
    """The worker threads' part of :class:`generation.jobs.Runner` (which sets these attributes)."""

    store: Store
    owner: str
    shared_queue: bool
    lease_s: float
    poll_s: float
    progress_interval_s: float
    _lock: threading.Condition
    _closed: bool
    _queue: deque[Job]
    _jobs: dict[int, Job]
    _running: dict[int, str]
    _serves: dict[str, frozenset[str]]
    _shared: dict[str, Backend]
    _built: dict[tuple[str, str], Backend]
    _build_lock: threading.Lock
    _factory: Callable[[str, str], Backend]
    _last_expiry: float
    _last_recovery: float
    recover: Callable[[], list[int]]
    _emit: Callable[[Event], None]
    _emit_positions: Callable[[], None]
    _batch_siblings: Callable[[Job, str], list[Job]]  # generation.batch_jobs (#12 §1, §3)
    _run_batch: Callable[[list[Job], str], None]
    end_picture_of: Callable[[Any], Any]

    def _backend(self, name: str, device: str) -> Backend:
        if name in self._shared:
            return self._shared[name]
        key = (name, device)
        with self._build_lock:  # several workers may share a device
            if key not in self._built:
                self._built[key] = self._factory(name, device)
            return self._built[key]

    def _next(self, device: str) -> Job | None:
        """The first queued job this device serves; blocks until there is one or the runner closes."""
        allowed = self._serves.get(device)
        if self.shared_queue:
            return self._claim_shared(device, allowed)
        with self._lock:
            while not self._closed:
                job = next((j for j in self._queue if allowed is None or j.backend in allowed), None)
                if job is not None:
                    self._queue.remove(job)
                    self._running[job.id] = device
                    self._emit_positions()
                    return job
                self._lock.wait()
        return None

    def _claim_shared(self, device: str, allowed: frozenset[str] | None) -> Job | None:
        """Claim the oldest job of the shared queue this device serves, under a lease; poll until there is
        one or the runner closes. Now and then first put back the jobs whose lease ran out."""
        while True:
            with self._lock:
                if self._closed:
                    return None
            record = None
            try:
                if time.monotonic() - self._last_expiry >= self.lease_s / 2:
                    self._last_expiry = time.monotonic()
                    self.store.expire_leases()
                record = self.store.claim_shared(self.owner, self.lease_s, allowed)
            except Exception:  # the database is away: log, wait, try again
                log.exception("worker %s: could not claim from the shared queue", device)
            with self._lock:
                if record is not None:
                    job = Job(record.id, record.backend, CancelToken(), threading.Event(), time.monotonic(), record)
                    self._jobs[job.id], self._running[job.id] = job, device
                    return job
                if not self._closed:
                    self._lock.wait(self.poll_s)

    def _keep_leases(self) -> None:
        """Every `lease_s / 3` until the runner has closed and its jobs have ended: renew the lease of every
        job this runner holds (queued here or running) in one statement; stop a job whose lease was lost (it
        ran out and recovery took it) or whose cancel was asked."""
        next_at = time.monotonic()
        while True:
            next_at += self.lease_s / 3
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self.lease_s / 3)  # after a stall: no burst of catch-ups
            with self._lock:
                if self._closed and not self._running:
                    return
                jobs = dict(self._jobs)
            try:
                held = self.store.renew_leases(jobs, self.owner, self.lease_s)
            except Exception:  # the database is away: the leases may run out; the jobs then end as interrupted
                log.exception("could not renew the leases of generations %s", sorted(jobs))
                continue
            for job_id, job in jobs.items():
                record = held.get(job_id)
                if record is None and not self._ended_here(job_id):
                    log.warning("generation %d: lease lost (it ran out); stopping it", job_id)
                if record is None or record.cancel_requested:
                    job.token.cancel()

    def _keep_recovering(self) -> None:
        """Every `lease_s / 2` while the runner lives, end the jobs of processes that stopped renewing their
        lease (a thread of its own, so a slow pass never delays this runner's own renewals)."""
        while True:
            time.sleep(max(0.0, self._last_recovery + self.lease_s / 2 - time.monotonic()))
            with self._lock:
                if self._closed:
                    return
            from storage.errors import StorageError

            try:
                self.recover()
            except StorageError as e:  # the database is away or busy (one sentence): try again next time
                log.warning("recovery of jobs whose lease ran out failed: %s; trying again later", e)
                self._last_recovery = time.monotonic()
            except Exception:  # a bug: its traceback goes to the log file
                log.exception("recovery of jobs whose lease ran out failed; trying again later")
                self._last_recovery = time.monotonic()

    def _ended_here(self, job_id: int) -> bool:
        """The job has just ended on this runner (its lease is gone because it is finished)."""
        try:
            record = self.store.get_generation(job_id)
        except Exception:
            return False
        return record.is_terminal and record.owner == self.owner

    def _work(self, device: str) -> None:
        while True:
            job = self._next(device)
            if job is None:
                return
            batch: list[Job] = []  # the other clips of its batch of variations, rendered with it (#12 §3)
            try:
                batch = self._batch_siblings(job, job.backend)
                if batch:
                    self._run_batch([job, *batch], device)
                else:
                    self._run(job, device)
            except Exception:  # a store error outside the job's own handling: keep the worker alive
                log.exception("worker %s: generation %d could not be run or recorded", device, job.id)
                for j in (job, *batch):
                    self._finish(j.id, "failed", error="internal error while running the job (see the log)")
                    self._emit(Failed(message="internal error while running the job (see the log)", job_id=j.id))
            finally:
                for j in (job, *batch):
                    with self._lock:
                        self._running.pop(j.id, None)
                        self._jobs.pop(j.id, None)
                        self._previews.pop(j.id, None)
                    j.done.set()

    def _run(self, job: Job, device: str) -> None:
        from agent.plan import MotionPlan
        from generation.image import load_image

        # 1. Claim: queued → running (None: cancelled or taken elsewhere meanwhile)
        if job.token.cancelled:
            if job.claimed is not None:
                self._finish(job.id, "cancelled")
            else:
                self.store.cancel_queued(job.id)
            self._emit(Cancelled(job_id=job.id))
            return
        record = job.claimed or self.store.claim_generation(job.id, owner=self.owner, lease_s=self.lease_s)
        if record is None:
            status = self.store.get_generation(job.id).status
            log.info("generation %d was not queued any more (%s); skipped", job.id, status)
            if status == "cancelled":
                self._emit(Cancelled(job_id=job.id))
            return
        self._emit(Started(job_id=job.id, backend=job.backend))
        on_event = self._listener(job)
        staging = self.store.media.staging_dir(job.id)
        t0 = time.perf_counter()
        wait_s = time.monotonic() - job.queued_at
        if job.claimed is not None and record.started_at is not None:  # queued in the database, maybe elsewhere
            wait_s = (record.started_at - record.created_at).total_seconds()
        try:
            # 2. Inputs: they were checked at submit; read them back from the store
            plan = MotionPlan.from_dict(record.plan)
            image_id = record.source_image_id  # None: from the words alone
            image = load_image(self.store.get_image(image_id).path) if image_id is not None else None
            # 3. Backend (loaded once per worker)
            on_event(Progress(stage="loading", step=0, total=1))
            backend = self._backend(job.backend, device)
            # 4. Generate into a staging folder inside the media root (same file system)
            staging.mkdir(parents=True, exist_ok=True)
            # (longer than one segment, story mode, interpolated or upscaled: chained segments, one MP4; the end
            # picture or loop (#12 §1) reaches a plain clip's `generate`, or a chained video's last segment)
            pictures = [load_image(segments.story_picture(self.store, key).path) for key in plan.story_images]
            end = self.end_picture_of(plan)  # the picture the clip ends on; None: none
            result = segments.generate(backend, plan, image, on_event, job.token, out_dir=staging, pictures=pictures,
                                       end_image=end)
            if job.token.cancelled:  # cancel arrived after the last step: the user asked for no video
                raise GenerationCancelled("cancelled after the last step")
            # 5. Publish: name the files on the record, move them to their content address, record success
            video, thumb = self._publish(job.id, result)
            preview_key = self.store.media.commit(result.preview_path).key if result.preview_path else None
        except GenerationCancelled:
            shutil.rmtree(staging, ignore_errors=True)
            self._finish(job.id, "cancelled", timings={"total_s": time.perf_counter() - t0, "queue_wait_s": wait_s})
            self._emit(Cancelled(job_id=job.id))
        except Exception as e:  # any failure of a job ends as `failed` with a readable message; traceback logged
            shutil.rmtree(staging, ignore_errors=True)  # first: a full disk needs the room to record the failure
            message = _readable(e, self.store.media.root)
            log.error("generation %d failed: %s", job.id, message, exc_info=True)
            self._finish(job.id, "failed", error=message,
                         timings={"total_s": time.perf_counter() - t0, "queue_wait_s": wait_s})
            self._emit(Failed(message=message, job_id=job.id))
        else:
            timings = {**result.timings, "total_s": time.perf_counter() - t0, "queue_wait_s": wait_s}
            params = {
                **result.params, "backend": result.backend, "model_id": result.model_id, "device": device,
                "width": result.width, "height": result.height, "num_frames": result.num_frames, "fps": result.fps,
            }
            if preview_key is not None:  # the gallery's hover preview: a media key, like the video's
                params["animated_preview"] = preview_key
            if self._finish(job.id, "succeeded", video_path=video, thumbnail_path=thumb, timings=timings, params=params):
                self._emit(Finished(video_path=str(video), thumbnail_path=str(thumb) if thumb else None, job_id=job.id))
            else:  # ended elsewhere, or the database failed: no file stays without its row
                preview = self.store.media.path_for(preview_key) if preview_key is not None else None
                self._discard(job.id, [video, thumb, preview])
                self._emit(Failed(message="the result could not be recorded (see the log)", job_id=job.id))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _publish(self, job_id: int, result: GenerationResult) -> tuple[Path, Path | None]:
        """Name the files' content addresses on the record (so recovery can find them if this process dies
        midway), then move them there. Raises InvalidTransitionError when this runner no longer holds the job."""
        media = self.store.media
        video_at = media.path_for(media.key_of_file(result.video_path))
        thumb_at = media.path_for(media.key_of_file(result.thumbnail_path)) if result.thumbnail_path else None
        self.store.record_outputs(job_id, self.owner, video_at, thumb_at)
        video = media.commit(result.video_path).path
        thumb = media.commit(result.thumbnail_path).path if result.thumbnail_path else None
        return video, thumb

    def _discard(self, job_id: int, paths: list[Path | None]) -> None:
        try:
            self.store.discard_media(paths)
        except Exception:  # the files stay until recovery or `python -m storage gc` removes them (logged)
            log.exception("generation %d: could not remove its unrecorded files %s", job_id, paths)

    def _finish(self, job_id: int, status: str, **kw: Any) -> bool:
        from storage import InvalidTransitionError

        try:
            self.store.finish_generation(job_id, status, owner=self.owner, **kw)
            return True
        except InvalidTransitionError as e:  # ended elsewhere (e.g. marked interrupted by another process)
            log.warning("generation %d could not be marked %s: %s", job_id, status, e)
            return False
        except Exception:  # the database itself failed; the job's record stays as it was (logged)
            log.exception("generation %d could not be marked %s", job_id, status)
            return False

    def _listener(self, job: Job) -> EventListener:
        """Tag backend events with the job id, push them, and write progress to the record (throttled)."""
        from storage import InvalidTransitionError

        last_write = [-1e9]
        last_stage = [None]

        def on_event(event: Event) -> None:
            if hasattr(event, "job_id") and getattr(event, "job_id") is None:
                event = dataclasses.replace(event, job_id=job.id)  # type: ignore[arg-type]
            if isinstance(event, Preview):
                with self._lock:
                    self._previews[job.id] = event
            if isinstance(event, Progress):
                now = time.monotonic()
                final = event.total is not None and event.step >= event.total
                if now - last_write[0] >= self.progress_interval_s or final or event.stage != last_stage[0]:
                    last_write[0], last_stage[0] = now, event.stage
                    try:
                        rec = self.store.update_progress(
                            job.id, event.stage, max(0, min(event.step, event.total)), event.total,
                            max(0.0, event.eta_s) if event.eta_s is not None else None, owner=self.owner,
                        )
                    except InvalidTransitionError as e:  # ended elsewhere: stop working on it
                        log.warning("generation %d: %s; stopping it", job.id, e)
                        job.token.cancel()
                    else:
                        if rec.cancel_requested:  # cancel asked by another process or page, via the record
                            job.token.cancel()
            self._emit(event)

        return on_event


def _readable(e: BaseException, media_root: Path | None = None) -> str:
    """An error message a person can read: the exception's own text, with its kind when it is not obvious; a
    full disk or a read-only folder in words (storage.errors.os_error)."""
    from storage.errors import StorageError, os_error

    text = str(e).strip() or repr(e)
    where = f"the media folder {media_root}" if media_root is not None else "the media folder"
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return str(os_error(e, where))
    if "no space left on device" in text.lower():  # ffmpeg's words, inside an export error
        return f"no space left on the disk holding {where} ({type(e).__name__}); free some space and try again"
    if isinstance(e, (ValueError, BackendUnavailable, StorageError)) and text:
        return text
    return f"{type(e).__name__}: {text}"
