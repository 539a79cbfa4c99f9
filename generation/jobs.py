"""The job runner: a FIFO queue of generations, one worker thread per device, nothing lost on a crash.

    runner = Runner(store)                              # one per process (Streamlit: st.cache_resource)
    record = runner.submit(plan, image, backend="preview")   # validated, recorded `queued`, then queued
    unsubscribe = runner.subscribe(print, job_id=record.id)  # typed events: Queued, Started, Progress, ...
    final = runner.wait(record.id)                      # the GenerationRecord once it has ended

Lifecycle of a job (the record is the truth; any process can read it):
  queued ──claim──> running ──> succeeded (video + thumbnail in the media store) | failed (readable
  error; traceback in the log) | cancelled. Progress (stage, step, total, ETA) is written to the record
  at most every `progress_interval_s` and pushed to listeners as it comes.

Bad input (missing or unreadable image, plan failing validation, unknown or unavailable backend) raises
before anything is written. Every record a runner creates, claims or requeues names its process as
`owner` (storage.owner) and holds a lease of `lease_s` seconds (storage.leases), which the runner renews
every `lease_s / 3` while the job waits in its queue or runs. On start-up and every `lease_s / 2` while it
lives, a runner recovers (storage.recovery): jobs whose lease ran out — their process died, on this host
or any other — are marked failed ("interrupted ...") and their half-written files removed, while the
live jobs of other processes (the app and a `python -m generation render` side by side) are left alone;
`requeue(id)` runs one again.

With `shared_queue=True` the jobs go through the database's shared queue instead (storage.leases), so any
number of runners in any processes and hosts serve one queue: `submit` records a job for any worker,
and the worker threads (generation.workers) claim jobs under a lease. A runner with no devices only
submits (the studio under `VIVIDFLOW_WORKERS=external`); `python -m generation worker` is a runner with
devices that submits nothing.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation.backend import Backend
from generation.batch_jobs import BatchMixin
from generation.choose import check_available, check_name, get_backend, model_id_for, picture_required, size_rule_for
from generation.events import Cancelled, CancelToken, Event, EventListener, Preview, Queued
from generation.workers import Job, WorkerMixin
from storage.models import LOCAL_USER
from storage.leases import MIN_LEASE_S, SHARED_QUEUE
from storage.owner import current_owner
from vividflow.errors import VividflowError

if TYPE_CHECKING:
    from PIL import Image

    from agent.plan import MotionPlan
    from storage import GenerationRecord, Store

log = logging.getLogger(__name__)

DEFAULT_DEVICE = "default"
DEFAULT_LEASE_S = 30.0  # the settings' default (storage.lease_s), for callers that take no settings


class JobError(VividflowError, ValueError):
    """A job request refused before anything was written; the message says what to fix."""


class RunnerClosed(RuntimeError):
    """submit() after close()."""


BackendFactory = Callable[[str, str], Backend]
"""(backend name, device) → a ready backend; called once per worker and backend name."""


def default_factory(name: str, device: str) -> Backend:
    if name == "wan" and device != DEFAULT_DEVICE:
        from generation.config import GenerationConfig

        return get_backend(name, GenerationConfig.from_env(device=device))
    return get_backend(name)


class Runner(BatchMixin, WorkerMixin):
    """FIFO queue + one worker thread per device (generation.workers); every job is a generation record first.

    `backends`: ready backend instances by name, shared by all workers (e.g. {"preview": PreviewBackend()});
    any other name is built by `factory(name, device)` once per worker. `devices`: one worker thread each
    (e.g. ("cuda:0", "cuda:1")); `serves` optionally limits which backend names a device runs
    (e.g. {"cpu": {"preview"}, "cuda:0": {"wan"}}), so a preview never waits behind a GPU job.
    `shared_queue`: serve the database's shared queue (see the module docstring), polling it every `poll_s`
    when idle. `lease_s` (default: the settings' storage.lease_s, VIVIDFLOW_LEASE_S): the lease every job this
    runner holds is under.
    """

    def __init__(
        self,
        store: Store,
        backends: Mapping[str, Backend] | None = None,
        *,
        devices: Sequence[str] = (DEFAULT_DEVICE,),
        serves: Mapping[str, Sequence[str]] | None = None,
        factory: BackendFactory = default_factory,
        progress_interval_s: float = 0.25,
        recover: bool = True,
        start: bool = True,
        shared_queue: bool = False,
        lease_s: float | None = None,
        poll_s: float = 0.5,
    ) -> None:
        if lease_s is None:
            from vividflow.settings import load_settings

            lease_s = load_settings().storage.lease_s
        if not devices and not shared_queue:
            raise ValueError("devices must name at least one device")
        if lease_s < MIN_LEASE_S or poll_s <= 0:
            raise ValueError(f"lease_s must be ≥ {MIN_LEASE_S} and poll_s > 0, got {lease_s} and {poll_s}")
        if progress_interval_s < 0:
            raise ValueError(f"progress_interval_s must be ≥ 0, got {progress_interval_s}")
        self.store = store
        self._shared = dict(backends or {})
        for name in self._shared:
            check_name(name)
        self._factory = factory
        self._devices = tuple(devices)
        self._serves = {d: frozenset(serves[d]) for d in serves} if serves else {}
        self.progress_interval_s = progress_interval_s
        self.shared_queue, self.lease_s, self.poll_s = shared_queue, lease_s, poll_s
        self._last_expiry = self._last_recovery = -1e9
        self._build_lock = threading.Lock()
        self.owner = current_owner()
        """This process's owner id, written on every record this runner creates, claims or requeues."""
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()
        self._jobs: dict[int, Job] = {}  # queued or running in this runner
        self._running: dict[int, str] = {}  # job id -> device
        self._previews: dict[int, Preview] = {}  # running job id -> its newest Preview
        self._listeners: list[tuple[EventListener, int | None]] = []
        self._built: dict[tuple[str, str], Backend] = {}
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.interrupted: list[int] = self.recover() if recover else []
        if start:
            self.start()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one worker thread per device (idempotent)."""
        with self._lock:
            if self._threads:
                return
            for device in self._devices:
                t = threading.Thread(target=self._work, args=(device,), name=f"vividflow-worker-{device}", daemon=True)
                self._threads.append(t)
                t.start()
            if self._devices:
                threading.Thread(target=self._keep_leases, name="vividflow-leases", daemon=True).start()
                threading.Thread(target=self._keep_recovering, name="vividflow-recovery", daemon=True).start()

    def warm(self, names: Sequence[str]) -> None:
        """Build the backends `names` for every device now, so the first job does not wait for loading."""
        for device in dict.fromkeys(self._devices):
            for name in names:
                self._backend(check_name(name), device)

    def close(self, *, cancel_running: bool = False, timeout: float | None = 30.0) -> None:
        """Stop taking jobs; queued jobs stay `queued` in the store, released by this process (no owner),
        so the next start of a runner in any process marks them interrupted."""
        with self._lock:
            self._closed = True
            if cancel_running:
                for job_id in self._running:
                    self._jobs[job_id].token.cancel()
            never_run = [job.id for job in self._queue]
            for job in self._queue:  # nobody here will run them: release their waiters
                job.done.set()
            self._queue.clear()
            self._lock.notify_all()
        if never_run:
            try:
                self.store.release_queued(never_run, self.owner)
            except Exception:  # the database failed: they stay held by this process until it exits (logged)
                log.exception("could not release queued generations %s", never_run)
        for t in self._threads:
            t.join(timeout)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel_running=True)

    def recover(self) -> list[int]:
        """Mark the jobs whose lease ran out (their process died, on any host) or that hold none as failed
        ("interrupted ..."), remove the staging folders and temporary files nobody writes, and return the
        ids marked (`requeue(id)` runs one again). Jobs under a live lease, this runner's included, and their
        staging folders are left alone. The runner's lease thread calls it every `lease_s / 2`."""
        self._last_recovery = time.monotonic()
        return self.store.recover().interrupted

    # --- submitting ------------------------------------------------------------------------------

    def submit(
        self,
        plan: MotionPlan | Mapping[str, Any] | str,
        image: int | str | Path | bytes | Image.Image | None,
        *,
        backend: str | None = None,
        model_id: str | None = None,
        conversation_id: int | None = None,
        parent_id: int | None = None,
        width: int | None = None,
        height: int | None = None,
        params: Mapping[str, Any] | None = None,
        user: str = LOCAL_USER,
        quota: int | None = None,
        batch_id: str | None = None,
        batch_size: int = 1,
    ) -> GenerationRecord:
        """Validate, record (`queued`) and queue one job; raise JobError / BackendUnavailable before any write.

        `user`: the person asking (the studio's login, or "local"); `quota`: the most jobs they may have queued
        or running (storage.QuotaExceededError past it, nothing written).

        `image`: a source image id from the store, or a path, bytes or PIL image (stored once by content).
        `backend` defaults to `default_backend_name()`. A plan of several variations is a batch
        (`submit_batch`, #12 §3): its first record is returned. A plan's end picture must be in the store.
        `batch_id`, `batch_size`: set by `submit_batch` (the batch a clip belongs to; on its first clip, how
        many clips the quota must have room for).
        """
        from generation.choose import default_backend_name
        from generation.image import ImageError, load_image

        if self._closed:
            raise RunnerClosed("the runner is closed")
        # 1. Check everything first: nothing is written unless all of it is fine
        plan_obj = _parse_plan(plan)
        if plan_obj.variations > 1 and batch_id is None:
            return self.submit_batch(plan_obj, image, backend=backend, model_id=model_id,
                                     conversation_id=conversation_id, parent_id=parent_id, width=width,
                                     height=height, params=params, user=user, quota=quota)[0]
        self._check_end_image(plan_obj)
        name = backend if backend is not None else default_backend_name()
        try:
            check_name(name)
        except ValueError as e:
            raise JobError(str(e)) from None
        if name not in self._shared and self._devices:  # no devices here: the workers' hosts decide
            check_available(name)  # BackendUnavailable with the fix
        image_id: int | None = None
        data: bytes | None = None
        filename: str | None = None
        pil: Image.Image | None = None
        try:
            if image is None:
                if (reason := picture_required(name, getattr(self._shared.get(name), "cfg", None))) is not None:
                    raise JobError(reason)
            elif isinstance(image, int) and not isinstance(image, bool):
                image_id = self._image_record(image).id
                pil = load_image(self.store.get_image(image_id).path)
            else:
                pil = load_image(image)
                data, filename = _image_bytes(image, pil)
        except ImageError as e:
            raise JobError(str(e)) from None
        self._check_refs(conversation_id, parent_id)
        for key in plan_obj.story_images:  # story mode (#12 §4): every picture must be stored already
            if self.store.find_image(key) is None:
                raise JobError(f"story picture {key[:12]}… is not in the store: add the pictures before queueing")
        if width is None or height is None:
            width, height = self._render_size(name, pil.size if pil is not None else None)
        model = model_id if model_id is not None else self._model_id(name)
        # 2. Record it (queued), then queue it, under one lock so ids and queue order agree
        with self._lock:
            if self._closed:
                raise RunnerClosed("the runner is closed")
            if data is not None:
                image_id = self.store.add_image(data, filename=filename).id
            record = self.store.create_generation(
                conversation_id, plan_obj.to_dict(), image_id, name, model, parent_id,
                dict(params) if params else None, width=width, height=height, owner=self._holder,
                lease_s=self._queue_lease, user=user, quota=quota, batch_id=batch_id, batch_size=batch_size,
            )
            position = self._enqueue(record.id, name)
            self._emit(Queued(job_id=record.id, position=position))  # under the lock: before Started
        return record

    def submit_batch(self, plan: Any, image: Any, **kwargs: Any) -> list[GenerationRecord]:
        """Record and queue the clips of `plan` (`plan.variations` of them, seeds from
        `agent.end_and_batch.batch_plans`) as one batch; a plan of one clip is one ordinary `submit`."""
        from agent.end_and_batch import batch_plans

        plan = _parse_plan(plan)
        if plan.variations <= 1:
            return [self.submit(plan, image, **kwargs)]
        import uuid

        batch_id = uuid.uuid4().hex
        plans = batch_plans(plan)
        # under the runner's (re-entrant) lock: an idle worker takes the first clip only once the others are
        # queued too, so it takes them all as one job; the first clip reserves room in the person's quota for
        # the whole batch (a batch of N counts N jobs)
        with self._lock:
            first = self.submit(plans[0], image, batch_id=batch_id, batch_size=len(plans), **kwargs)
            rest = [self.submit(p, first.source_image_id, batch_id=batch_id,
                                **{**kwargs, "width": first.width, "height": first.height, "quota": None})
                    for p in plans[1:]]
        return [first, *rest]

    def _check_end_image(self, plan: MotionPlan) -> None:
        """A plan that ends on a picture needs that picture in the store (JobError otherwise)."""
        if plan.end_image is not None and self.store.find_image(plan.end_image) is None:
            raise JobError(f"the end picture {plan.end_image[:12]}… is not in the media store: upload it again")

    @property
    def _holder(self) -> str:
        """Who holds the jobs this runner queues: any worker of the shared queue, or this process."""
        return SHARED_QUEUE if self.shared_queue else self.owner

    @property
    def _queue_lease(self) -> float | None:
        """The lease of a job this runner queues: none in the shared queue (any worker may claim it there)."""
        return None if self.shared_queue else self.lease_s

    def requeue(self, job_id: int) -> GenerationRecord:
        """Run a failed or cancelled generation again (same record, same inputs)."""
        with self._lock:
            if self._closed:
                raise RunnerClosed("the runner is closed")
            record = self.store.requeue(job_id, owner=self._holder, lease_s=self._queue_lease)
            position = self._enqueue(record.id, record.backend)
            self._emit(Queued(job_id=record.id, position=position))
        return record

    def requeue_interrupted(self) -> list[GenerationRecord]:
        """Requeue every job this runner found interrupted at start-up."""
        ids, self.interrupted = self.interrupted, []
        return [self.requeue(i) for i in ids]

    def _enqueue(self, job_id: int, backend: str) -> int:
        if self.shared_queue:  # the database is the queue: wake this runner's idle workers, if any
            self._lock.notify_all()
            return self.store.queue_position(job_id) or 0
        job = Job(job_id, backend, CancelToken(), threading.Event(), time.monotonic())
        self._queue.append(job)
        self._jobs[job_id] = job
        self._lock.notify_all()
        return len(self._queue) - 1

    # --- control and state -------------------------------------------------------------------------

    def cancel(self, job_id: int) -> GenerationRecord:
        """Cancel a queued job (it never starts) or a running one (it stops at the next step boundary).

        Works for jobs of other processes too, through the record's cancel flag.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job in self._queue:
                self._queue.remove(job)
                del self._jobs[job_id]
                self.store.cancel_queued(job_id)
                job.done.set()
                self._emit(Cancelled(job_id=job_id))
                self._emit_positions()
                return self.store.get_generation(job_id)
            if job is not None:
                job.token.cancel()
        return self.store.request_cancel(job_id)

    def position(self, job_id: int) -> int | None:
        """0 = next to run; None when the job is not queued here."""
        with self._lock:
            for i, job in enumerate(self._queue):
                if job.id == job_id:
                    return i
        return None

    def queued(self) -> list[int]:
        with self._lock:
            return [j.id for j in self._queue]

    def running(self) -> dict[int, str]:
        """Running job ids → the device each runs on."""
        with self._lock:
            return dict(self._running)

    def latest_preview(self, job_id: int) -> Preview | None:
        """The newest Preview of a job running in this runner (a live look at the clip); None otherwise."""
        with self._lock:
            return self._previews.get(job_id)

    def wait(self, job_id: int, timeout: float | None = None) -> GenerationRecord:
        """Block until the job has ended here (or was never ours), then return its record."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None and not job.done.wait(timeout):
            raise TimeoutError(f"generation {job_id} did not finish within {timeout} s")
        record = self.store.get_generation(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.shared_queue and not record.is_terminal:  # another process runs it: watch the record
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"generation {job_id} did not finish within {timeout} s")
            time.sleep(min(self.poll_s, 0.2))
            record = self.store.get_generation(job_id)
        return record

    def subscribe(self, listener: EventListener, job_id: int | None = None) -> Callable[[], None]:
        """Call `listener(event)` for every event (of `job_id` only, if given); returns the unsubscribe."""
        entry = (listener, job_id)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    def unsubscribe(self, listener: EventListener) -> None:
        with self._lock:
            self._listeners = [e for e in self._listeners if e[0] is not listener]

    # --- internals ---------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        job_id = getattr(event, "job_id", None)
        with self._lock:
            listeners = [fn for fn, jid in self._listeners if jid is None or jid == job_id]
        for fn in listeners:
            try:
                fn(event)
            except Exception:  # a listener's bug must not kill the worker; it is logged with its traceback
                log.exception("event listener %r failed on %r", fn, type(event).__name__)

    def _emit_positions(self) -> None:
        """Tell every queued job its new position (called with the lock held, so positions stay ordered)."""
        for i, job in enumerate(list(self._queue)):
            self._emit(Queued(job_id=job.id, position=i))

    def _image_record(self, image_id: int) -> Any:
        from storage import NotFoundError

        try:
            rec = self.store.get_image(image_id)
        except NotFoundError as e:
            raise JobError(str(e)) from None
        if not Path(rec.path).is_file():
            raise JobError(f"source image {image_id} has no file any more ({rec.path})")
        return rec

    def _check_refs(self, conversation_id: int | None, parent_id: int | None) -> None:
        from storage import NotFoundError

        try:
            if conversation_id is not None:
                self.store.get_conversation(conversation_id)
            if parent_id is not None:
                self.store.get_generation(parent_id)
        except NotFoundError as e:
            raise JobError(str(e)) from None

    def _render_size(self, name: str, size: tuple[int, int] | None) -> tuple[int, int]:
        """The backend's size rule (a shared backend's own max area when it has one) on the input's size, or on
        its own size from words alone."""
        from generation.image import output_size

        shared = self._shared.get(name)
        area, multiple, text_size = size_rule_for(name, getattr(shared, "cfg", None))
        area = int(getattr(shared, "max_area", None) or area)
        return output_size(*(size or text_size), max_area=area, multiple=multiple)

    def _model_id(self, name: str) -> str:
        backend = self._shared.get(name)
        mid = getattr(backend, "model_id", None)
        return str(mid) if mid else model_id_for(name)

# --- helpers ---------------------------------------------------------------------------------------


def _parse_plan(plan: Any) -> MotionPlan:
    from agent.plan import MotionPlan, PlanError

    if isinstance(plan, MotionPlan):
        return plan
    try:
        if isinstance(plan, (str, bytes)):
            return MotionPlan.from_json(plan)
        if isinstance(plan, Mapping):
            return MotionPlan.from_dict(dict(plan))
    except PlanError as e:
        raise JobError(str(e)) from None
    raise JobError(f"plan must be a MotionPlan, a dict or JSON text, got {type(plan).__name__}")


def _image_bytes(source: Any, pil: Image.Image) -> tuple[bytes, str | None]:
    """The bytes to keep in the store: the original file's bytes, or PNG for an in-memory image."""
    import os

    if isinstance(source, (bytes, bytearray)):
        return bytes(source), None
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        return p.read_bytes(), p.name
    buf = io.BytesIO()
    pil.save(buf, "PNG")
    return buf.getvalue(), None
