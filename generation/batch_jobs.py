"""Variations as one job (#12 §3) and the end picture of a job (#12 §1), on the runner's side.

"give me 4 variations" is a plan with `variations` = 4: `submit_batch` records one generation per clip (its own
seed, `variations` = 1 in its stored plan, so each reruns alone), all sharing a `batch_id`. A worker that takes
the first clip of a batch from its own queue takes the other queued clips of that batch with it and renders
them in one backend call (`render_batch`: one Wan call with a generator per seed; the preview renders them in
turn), so a batch is one job. Each clip still ends as its own record (succeeded, failed or cancelled);
cancelling any clip of a running batch stops the whole call, and every clip in it ends cancelled. In the shared
queue (several processes) each clip is claimed on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation.events import (
    Cancelled, CancelToken, EventListener, Failed, Finished, GenerationCancelled, GenerationResult, Progress, Started,
)

if TYPE_CHECKING:
    from PIL import Image

    from agent.plan import MotionPlan
    from generation.workers import Job
    from storage import GenerationRecord

log = logging.getLogger(__name__)


class AnyCancel(CancelToken):
    """Cancelled as soon as any of the batch's own tokens is (one call renders them all)."""

    def __init__(self, tokens: Sequence[CancelToken]) -> None:
        super().__init__()
        self.tokens = list(tokens)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or any(t.cancelled for t in self.tokens)


def render_batch(backend: Any, plans: Sequence[MotionPlan], image: Image.Image | None, on_event: EventListener,
                 cancel: CancelToken, *, out_dir: Path, end_image: Image.Image | None = None,
                 pictures: Sequence[Image.Image] = ()) -> list[GenerationResult]:
    """Render the clips of a batch: in one call when the backend has `generate_batch` and each clip is one
    plain clip, else one after another with one progress bar across them (a batch of longer videos, stories,
    interpolated or upscaled ones: each clip through `generation.segments`, #12 §2 §4 §5)."""
    from generation import segments

    kw: dict[str, Any] = {"end_image": end_image} if end_image is not None else {}
    chained = any(segments.needs_segments(p) for p in plans)
    if hasattr(backend, "generate_batch") and not chained:
        return list(backend.generate_batch(list(plans), image, on_event, cancel, out_dir=out_dir, **kw))
    results = []
    n = len(plans)
    for k, plan in enumerate(plans):
        def scaled(event: Any, k: int = k) -> None:
            if isinstance(event, Progress) and event.stage.startswith("rendering"):
                event = dataclasses.replace(event, step=k * event.total + event.step, total=n * event.total)
            on_event(event)

        folder = out_dir / f"clip-{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        if chained:
            results.append(segments.generate(backend, plan, image, scaled, cancel, out_dir=folder,
                                             pictures=pictures, **kw))
        else:
            results.append(backend.generate(plan, image, scaled, cancel, out_dir=folder, **kw))
    return results


class BatchMixin:
    """The batch and end-picture part of :class:`generation.jobs.Runner` (which sets these attributes)."""

    store: Any
    owner: str
    lease_s: float
    shared_queue: bool
    _lock: threading.Condition
    _queue: Any
    _jobs: dict[int, Job]
    _running: dict[int, str]

    def end_picture_of(self, plan: MotionPlan) -> Image.Image | None:
        """The end picture a plan names, read from the store (None when it names none)."""
        from generation.image import load_image

        if plan.end_image is None:
            return None
        record = self.store.find_image(plan.end_image)
        if record is None:
            raise ValueError(f"the end picture {plan.end_image[:12]}… is no longer in the media store")
        return load_image(record.path)

    # --- running ---------------------------------------------------------------------------------

    def _batch_siblings(self, job: Job, backend: str) -> list[Job]:
        """The other queued clips of `job`'s batch in this runner's own queue, taken out of it (they run with
        `job` in one call); [] for a single clip or in the shared queue."""
        if self.shared_queue:
            return []
        record = self.store.get_generation(job.id)
        if record.batch_id is None:
            return []
        same = {r.id for r in self.store.list_batch(record.batch_id) if r.status == "queued"}
        with self._lock:
            siblings = [j for j in self._queue if j.id in same and j.backend == backend and j.id != job.id]
            for j in siblings:
                self._queue.remove(j)
                self._running[j.id] = self._running.get(job.id, "")
            if siblings:
                self._emit_positions()  # type: ignore[attr-defined]  # the jobs behind them moved up
        return siblings

    def _run_batch(self, jobs: list[Job], device: str) -> None:
        """Claim, render in one call, publish: every clip of a batch ends as its own record."""
        from agent.plan import MotionPlan
        from generation.image import load_image
        from generation.workers import _readable

        claimed: list[tuple[Job, GenerationRecord]] = []
        for job in jobs:  # 1. Claim each clip (one cancelled meanwhile stays out)
            record = None if job.token.cancelled else (
                job.claimed or self.store.claim_generation(job.id, owner=self.owner, lease_s=self.lease_s))
            if record is None:
                if job.token.cancelled:
                    self.store.cancel_queued(job.id)
                self._emit(Cancelled(job_id=job.id))  # type: ignore[attr-defined]
                continue
            claimed.append((job, record))
            self._emit(Started(job_id=job.id, backend=job.backend))  # type: ignore[attr-defined]
        if not claimed:
            return
        listeners = [self._listener(job) for job, _ in claimed]  # type: ignore[attr-defined]

        def on_event(event: Any) -> None:
            for listener in listeners:
                listener(event)

        lead = claimed[0][0]
        staging = self.store.media.staging_dir(lead.id)
        t0 = time.perf_counter()
        waits = {job.id: time.monotonic() - job.queued_at for job, _ in claimed}  # as WorkerMixin._run
        ids = [job.id for job, _ in claimed]
        try:
            # 2. Inputs: one picture for the batch, a plan per clip
            plans = [MotionPlan.from_dict(record.plan) for _, record in claimed]
            image_id = claimed[0][1].source_image_id
            image = load_image(self.store.get_image(image_id).path) if image_id is not None else None
            end = self.end_picture_of(plans[0])
            on_event(Progress(stage="loading", step=0, total=1))
            backend = self._backend(lead.backend, device)  # type: ignore[attr-defined]
            staging.mkdir(parents=True, exist_ok=True)
            log.info("batch %s: rendering %d clips %s in one job", claimed[0][1].batch_id, len(ids), ids)
            cancel = AnyCancel([job.token for job, _ in claimed])
            from generation.segments import story_picture

            pictures = [load_image(story_picture(self.store, key).path) for key in plans[0].story_images]
            results = render_batch(backend, plans, image, on_event, cancel, out_dir=staging, end_image=end,
                                   pictures=pictures)
            if cancel.cancelled:
                raise GenerationCancelled("cancelled after the last step")
        except GenerationCancelled:
            shutil.rmtree(staging, ignore_errors=True)
            for job_id in ids:
                self._finish(job_id, "cancelled", timings={"total_s": time.perf_counter() - t0})  # type: ignore[attr-defined]
                self._emit(Cancelled(job_id=job_id))  # type: ignore[attr-defined]
        except Exception as e:  # the call failed: every clip of it failed, with the same readable message
            shutil.rmtree(staging, ignore_errors=True)  # first: a full disk needs the room to record the failure
            message = _readable(e, self.store.media.root)
            log.error("batch %s failed: %s\n%s", ids, message, traceback.format_exc())
            for job_id in ids:
                self._finish(job_id, "failed", error=message, timings={"total_s": time.perf_counter() - t0})  # type: ignore[attr-defined]
                self._emit(Failed(message=message, job_id=job_id))  # type: ignore[attr-defined]
        else:  # 3. Publish each clip as its own record
            total = time.perf_counter() - t0
            for (job, _), result in zip(claimed, results):
                timings = {**result.timings, "total_s": total, "batch_total_s": total, "queue_wait_s": waits[job.id]}
                self._publish_clip(job, result, device, timings, len(ids))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _publish_clip(self, job: Job, result: GenerationResult, device: str, timings: dict[str, Any],
                      batch_size: int) -> None:
        """One clip of a batch as WorkerMixin._run publishes a single one: the files named on the record, moved
        to their content address, the record `succeeded`; a clip that cannot be published fails alone, and
        one whose row cannot be recorded leaves no file behind."""
        from generation.workers import _readable

        try:
            video, thumb = self._publish(job.id, result)  # type: ignore[attr-defined]
            preview_key = self.store.media.commit(result.preview_path).key if result.preview_path else None
        except Exception as e:  # this runner no longer holds the clip, or the disk is full: this clip fails
            message = _readable(e, self.store.media.root)
            log.error("generation %d (of a batch) could not be published: %s", job.id, message, exc_info=True)
            self._finish(job.id, "failed", error=message, timings=timings)  # type: ignore[attr-defined]
            self._emit(Failed(message=message, job_id=job.id))  # type: ignore[attr-defined]
            return
        params = {**result.params, "backend": result.backend, "model_id": result.model_id, "device": device,
                  "width": result.width, "height": result.height, "num_frames": result.num_frames,
                  "fps": result.fps, "batch_size": batch_size}
        if preview_key is not None:  # the gallery's hover preview (a media key), as for a single clip
            params["animated_preview"] = preview_key
        if self._finish(job.id, "succeeded", video_path=video, thumbnail_path=thumb,  # type: ignore[attr-defined]
                        timings=timings, params=params):
            self._emit(Finished(video_path=str(video), thumbnail_path=str(thumb) if thumb else None,  # type: ignore[attr-defined]
                                job_id=job.id))
        else:  # ended elsewhere, or the database failed: no file stays without its row
            preview = self.store.media.path_for(preview_key) if preview_key is not None else None
            self._discard(job.id, [video, thumb, preview])  # type: ignore[attr-defined]
            self._emit(Failed(message="the result could not be recorded (see the log)", job_id=job.id))  # type: ignore[attr-defined]
