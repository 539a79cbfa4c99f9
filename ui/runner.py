"""The studio's access to the job runner: one per process and data folder, held in `st.cache_resource`."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from generation.events import CancelToken, Event, GenerationCancelled, Progress
from storage import GenerationRecord, InvalidTransitionError, Store

log = logging.getLogger(__name__)


class LocalRunner:
    """Stand-in for generation.jobs.Runner while it is being written: one worker thread, FIFO by id,
    progress written to the record, cancel through the record (so any process can cancel)."""

    def __init__(self, store: Store, backends: dict[str, Any]) -> None:
        self.store = store
        self.backends = backends
        self._wake = threading.Event()
        self._tokens: dict[int, CancelToken] = {}
        self._lock = threading.Lock()
        interrupted = store.mark_interrupted()
        if interrupted:
            log.warning("runner start: %d interrupted generation(s) marked failed", len(interrupted))
        self._thread = threading.Thread(target=self._loop, name="vividflow-runner", daemon=True)
        self._thread.start()

    def submit(self, plan: dict[str, Any], image_id: int, *, backend: str, model_id: str,
               conversation_id: int | None = None, parent_id: int | None = None,
               width: int | None = None, height: int | None = None) -> GenerationRecord:
        record = self.store.create_generation(conversation_id, plan, image_id, backend, model_id, parent_id,
                                              width=width, height=height)
        self._wake.set()
        return record

    def cancel(self, generation_id: int) -> GenerationRecord:
        record = self.store.request_cancel(generation_id)
        with self._lock:
            token = self._tokens.get(generation_id)
        if token is not None:
            token.cancel()
        return record

    def requeue(self, generation_id: int) -> GenerationRecord:
        record = self.store.requeue(generation_id)
        self._wake.set()
        return record

    def _loop(self) -> None:
        while True:
            job = self.store.claim_next()
            if job is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: GenerationRecord) -> None:
        from agent.plan import MotionPlan
        from generation.image import load_image

        token = CancelToken()
        with self._lock:
            self._tokens[job.id] = token
        last = [0.0]

        def on_event(event: Event) -> None:
            if isinstance(event, Progress) and time.monotonic() - last[0] > 0.2:
                last[0] = time.monotonic()
                rec = self.store.update_progress(job.id, event.stage, event.step, event.total, event.eta_s)
                if rec.cancel_requested:
                    token.cancel()

        try:
            backend = self.backends[job.backend]
            image = load_image(self.store.get_image(job.source_image_id).path)
            result = backend.generate(MotionPlan.from_dict(job.plan), image, on_event, token,
                                      out_dir=self.store.media.root / "videos")
        except GenerationCancelled:
            self.store.finish_generation(job.id, "cancelled")
        except (ValueError, RuntimeError, OSError, KeyError) as e:
            log.exception("generation %d failed", job.id)
            self.store.finish_generation(job.id, "failed", error=f"{type(e).__name__}: {e}")
        else:
            try:
                self.store.finish_generation(job.id, "succeeded", video_path=result.video_path,
                                             thumbnail_path=result.thumbnail_path, timings=result.timings,
                                             params=result.params)
            except InvalidTransitionError:
                log.warning("generation %d ended elsewhere", job.id)
        finally:
            with self._lock:
                self._tokens.pop(job.id, None)
