"""The repository: the only place in VividFlow that speaks SQL.

``open_store()`` gives a :class:`Store`; every method is one transaction and returns plain frozen
records (``storage.records``), so callers in any thread may keep them.

Generation lifecycle (anything else raises InvalidTransitionError)::

    queued ──claim──> running ──finish──> succeeded | failed | cancelled
    queued ──cancel_queued / finish(failed|cancelled) / mark_interrupted──> cancelled | failed
    failed | cancelled ──requeue──> queued   (the same record, same id: "#12" stays #12)

Every queued/running generation may name its ``owner``: the process that holds it (storage.owner).
``mark_interrupted(is_alive=owner_alive)`` fails only the jobs whose owner is gone (or unknown), so a
process starting up never fails the live jobs of another process.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import is_sqlite, make_engine, writer
from storage.errors import InvalidFieldError, InvalidTransitionError, NotFoundError
from storage.media import MediaStore
from storage.migrations import LATEST_VERSION, MIGRATIONS, Migration, migrate, schema_version
from storage.models import (
    ROLES,
    STATUSES,
    Conversation,
    Generation,
    Message,
    SourceImage,
    utcnow,
)
from storage.records import (
    ConversationRecord,
    GalleryPage,
    GenerationRecord,
    ImageRecord,
    Lineage,
    MessageRecord,
    Progress,
    StoreInfo,
)

log = logging.getLogger(__name__)

HOME_ENV = "VIVIDFLOW_HOME"
DB_URL_ENV = "VIVIDFLOW_DB_URL"
DEFAULT_HOME = "./vividflow-data"
DB_FILENAME = "vividflow.db"
MEDIA_DIRNAME = "media"

DEFAULT_INTERRUPTED_MESSAGE = "interrupted (the app stopped during generation)"
MAX_PAGE_SIZE = 500
MAX_OWNER_LEN = 500

# plan key -> python type of its column; storage copies the keys it finds, keeps the whole dict
PLAN_COLUMNS: dict[str, type] = {
    "template": str,
    "seed": int,
    "steps": int,
    "guidance_scale": float,
    "guidance_scale_2": float,
    "duration_s": float,
    "num_frames": int,
    "fps": int,
    "width": int,
    "height": int,
    "prompt": str,
    "negative_prompt": str,
}

# status -> statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "failed", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset({"queued"}),
    "cancelled": frozenset({"queued"}),
}

_INT64 = (-(2**63), 2**63 - 1)


# ---------------------------------------------------------------------------------------------
# validation helpers


def _check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFieldError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    lo = _INT64[0] if lo is None else lo
    hi = _INT64[1] if hi is None else hi
    if not lo <= value <= hi:
        raise InvalidFieldError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def _check_float(name: str, value: Any, lo: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidFieldError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and value < lo:
        raise InvalidFieldError(f"{name} must be >= {lo}, got {value}")
    return float(value)


def _check_str(name: str, value: Any, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidFieldError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
    if not allow_empty and not value.strip():
        raise InvalidFieldError(f"{name} must not be empty")
    return value


def _check_owner(owner: Any) -> str | None:
    if owner is None:
        return None
    _check_str("owner", owner, allow_empty=False)
    if len(owner) > MAX_OWNER_LEN:
        raise InvalidFieldError(f"owner must be at most {MAX_OWNER_LEN} characters, got {len(owner)}")
    return owner


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidFieldError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _json_dict(name: str, value: Any) -> dict[str, Any]:
    """A deep, JSON-clean copy of a dict (so later mutation by the caller cannot reach the store)."""
    if not isinstance(value, dict):
        raise InvalidFieldError(f"{name} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise InvalidFieldError(f"{name} must be JSON-serializable: {e}") from e


def plan_columns(plan: dict[str, Any]) -> dict[str, Any]:
    """The filterable column values found in a MotionPlan dict (validated, others left out)."""
    out: dict[str, Any] = {}
    for key, kind in PLAN_COLUMNS.items():
        value = plan.get(key)
        if value is None:
            continue
        name = f"plan[{key!r}]"
        if kind is int:
            out[key] = _check_int(name, value)
        elif kind is float:
            out[key] = _check_float(name, value)
        else:
            out[key] = _check_str(name, value)
    return out


def _as_utc(name: str, value: datetime | date, end: bool) -> datetime:
    """A date means its whole UTC day (start for ``created_from``, next midnight for ``created_to``)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        start = datetime.combine(value, time.min, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    raise InvalidFieldError(f"{name} must be a datetime or a date, got {value!r}")


def _one_or_many(name: str, value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    for v in values:
        _check_str(name, v)
    return values


# ---------------------------------------------------------------------------------------------
# the store


class Store:
    """Conversations, messages, source images and generations in one SQL database + a media folder.

    Build it with :func:`open_store`. Thread-safe: each method uses its own session.
    """

    def __init__(self, engine: Engine, media: MediaStore, home: Path) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self.media = media
        self.home = home

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def database_path(self) -> Path | None:
        """The SQLite file, or None for an in-memory or non-SQLite database."""
        if not is_sqlite(self._engine):
            return None
        db = self._engine.url.database
        return Path(db).resolve() if db and db != ":memory:" else None

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction: committed on normal exit, rolled back on any exception."""
        with Session(self._writer, expire_on_commit=False) as s, s.begin():
            yield s

    # --- records --------------------------------------------------------------------------

    def _path(self, stored: str | None) -> Path | None:
        if stored is None:
            return None
        p = Path(stored)
        return p if p.is_absolute() else self.media.root / p

    def _store_path(self, name: str, value: str | os.PathLike[str] | None) -> str | None:
        """Media-root-relative when inside the media root (the data folder can move), else absolute."""
        if value is None:
            return None
        if not isinstance(value, str | os.PathLike):
            raise InvalidFieldError(f"{name} must be a path, got {value!r}")
        key = self.media.relative_key(value)
        return key if key is not None else str(Path(value).resolve())

    def _conversation(self, row: Conversation) -> ConversationRecord:
        return ConversationRecord(row.id, row.title, row.created_at, row.updated_at)

    def _message(self, row: Message) -> MessageRecord:
        return MessageRecord(
            row.id, row.conversation_id, row.role, row.text, row.plan, row.meta, row.created_at
        )

    def _image(self, row: SourceImage) -> ImageRecord:
        return ImageRecord(
            id=row.id,
            sha256=row.sha256,
            media_key=row.media_key,
            path=self.media.path_for(row.media_key),
            width=row.width,
            height=row.height,
            format=row.format,
            size_bytes=row.size_bytes,
            filename=row.filename,
            created_at=row.created_at,
        )

    def _generation(self, row: Generation) -> GenerationRecord:
        progress = None
        if row.progress_stage is not None:
            progress = Progress(
                row.progress_stage,
                row.progress_step,
                row.progress_total,
                row.progress_eta_s,
                row.progress_updated_at,
            )
        return GenerationRecord(
            id=row.id,
            conversation_id=row.conversation_id,
            parent_id=row.parent_id,
            source_image_id=row.source_image_id,
            plan=row.plan,
            template=row.template,
            seed=row.seed,
            steps=row.steps,
            guidance_scale=row.guidance_scale,
            guidance_scale_2=row.guidance_scale_2,
            duration_s=row.duration_s,
            num_frames=row.num_frames,
            fps=row.fps,
            width=row.width,
            height=row.height,
            prompt=row.prompt,
            negative_prompt=row.negative_prompt,
            backend=row.backend,
            model_id=row.model_id,
            status=row.status,
            error=row.error,
            attempts=row.attempts,
            cancel_requested=bool(row.cancel_requested),
            progress=progress,
            timings=row.timings,
            params=row.params,
            video_path=self._path(row.video_path),
            thumbnail_path=self._path(row.thumbnail_path),
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            owner=row.owner,
        )

    @staticmethod
    def _get(s: Session, model: type[Any], id: int, what: str) -> Any:
        _check_int(f"{what} id", id)
        row = s.get(model, id)
        if row is None:
            raise NotFoundError(f"no {what} with id {id}")
        return row

    # --- conversations and messages ------------------------------------------------------------

    def create_conversation(self, title: str = "") -> ConversationRecord:
        _check_str("title", title)
        with self._write() as s:
            row = Conversation(title=title)
            s.add(row)
            s.flush()
            return self._conversation(row)

    def get_conversation(self, conversation_id: int) -> ConversationRecord:
        with self._read() as s:
            return self._conversation(self._get(s, Conversation, conversation_id, "conversation"))

    def list_conversations(self, limit: int = 50, offset: int = 0) -> list[ConversationRecord]:
        """Most recently active first."""
        _check_int("limit", limit, 1, MAX_PAGE_SIZE)
        _check_int("offset", offset, 0)
        q = (
            select(Conversation)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._read() as s:
            return [self._conversation(r) for r in s.scalars(q)]

    def rename_conversation(self, conversation_id: int, title: str) -> ConversationRecord:
        _check_str("title", title)
        with self._write() as s:
            row = self._get(s, Conversation, conversation_id, "conversation")
            row.title = title
            row.updated_at = utcnow()
            s.flush()
            return self._conversation(row)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation and its messages; its generations stay, detached (conversation_id None)."""
        with self._write() as s:
            row = self._get(s, Conversation, conversation_id, "conversation")
            s.execute(
                update(Generation)
                .where(Generation.conversation_id == conversation_id)
                .values(conversation_id=None)
            )
            s.execute(Message.__table__.delete().where(Message.conversation_id == conversation_id))
            s.delete(row)

    def append_message(
        self,
        conversation_id: int,
        role: str,
        text: str,
        plan: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> MessageRecord:
        """Add a message (``role`` user|assistant|system); ``plan`` is the MotionPlan dict after the turn."""
        _check_choice("role", role, ROLES)
        _check_str("text", text)
        plan = _json_dict("plan", plan) if plan is not None else None
        meta = _json_dict("meta", meta) if meta is not None else None
        with self._write() as s:
            conv = self._get(s, Conversation, conversation_id, "conversation")
            row = Message(conversation_id=conversation_id, role=role, text=text, plan=plan, meta=meta)
            s.add(row)
            conv.updated_at = utcnow()
            s.flush()
            return self._message(row)

    def list_messages(self, conversation_id: int) -> list[MessageRecord]:
        """All messages of a conversation, oldest first."""
        with self._read() as s:
            self._get(s, Conversation, conversation_id, "conversation")
            q = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
            return [self._message(r) for r in s.scalars(q)]

    # --- images ------------------------------------------------------------------------------------

    def add_image(
        self,
        data: bytes,
        *,
        filename: str | None = None,
        width: int | None = None,
        height: int | None = None,
        format: str | None = None,
    ) -> ImageRecord:
        """Store an image once per content (sha256); the same bytes again return the first record.

        width/height/format are read with Pillow when not given (raw pixel size; EXIF rotation is
        generation's business).
        """
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
            raise InvalidFieldError("data must be non-empty bytes")
        data = bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        existing = self.find_image(digest)
        if existing is not None:
            if not existing.path.is_file():  # the file was lost: store it again
                log.warning("media file of image %d was missing; stored it again", existing.id)
                self.media.put_bytes(data, Path(existing.media_key).suffix)
            return existing

        if width is None or height is None or format is None:
            w, h, f = _sniff_image(data)
            width, height, format = width or w, height or h, format or f
        _check_int("width", width, 1)
        _check_int("height", height, 1)
        fmt = _check_str("format", format, allow_empty=False).lower()
        if filename is not None:
            _check_str("filename", filename)

        stored = self.media.put_bytes(data, _suffix_for(fmt))
        try:
            with self._write() as s:
                row = SourceImage(
                    sha256=digest,
                    media_key=stored.key,
                    width=width,
                    height=height,
                    format=fmt,
                    size_bytes=len(data),
                    filename=filename,
                )
                s.add(row)
                s.flush()
                return self._image(row)
        except IntegrityError:
            # another writer added the same content between our look-up and our insert
            found = self.find_image(digest)
            if found is None:
                raise
            return found

    def get_image(self, image_id: int) -> ImageRecord:
        with self._read() as s:
            return self._image(self._get(s, SourceImage, image_id, "source image"))

    def find_image(self, sha256: str) -> ImageRecord | None:
        """The image with this content hash, or None."""
        with self._read() as s:
            row = s.scalars(select(SourceImage).where(SourceImage.sha256 == sha256)).first()
            return self._image(row) if row else None

    # --- generations: create and lifecycle ------------------------------------------------------

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
    ) -> GenerationRecord:
        """Record a new generation, status ``queued``.

        ``plan`` is the MotionPlan JSON dict; its filterable keys (PLAN_COLUMNS) are copied into
        columns. ``width``/``height`` (the render size, when the plan lacks it) override the plan's.
        ``params``: everything else needed to reproduce it (LoRA ids and scales, quantization, ...).
        ``owner``: the process that will run it (``storage.owner.current_owner()``); None means nobody
        known, and any process's start-up recovery may then mark it interrupted.
        """
        if not isinstance(plan, dict):
            raise InvalidFieldError(f"plan must be a dict, got {type(plan).__name__}")
        columns = plan_columns(plan)  # first: its errors name the field
        plan = _json_dict("plan", plan)
        if width is not None:
            columns["width"] = _check_int("width", width, 1)
        if height is not None:
            columns["height"] = _check_int("height", height, 1)
        _check_str("backend", backend, allow_empty=False)
        _check_str("model_id", model_id)
        params = _json_dict("params", params) if params is not None else None
        owner = _check_owner(owner)
        with self._write() as s:
            if conversation_id is not None:
                conv = self._get(s, Conversation, conversation_id, "conversation")
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
                **columns,
            )
            s.add(row)
            s.flush()
            return self._generation(row)

    def _transition(
        self, s: Session, generation_id: int, to: str, values: dict[str, Any]
    ) -> Generation:
        """Move ``generation_id`` to ``to`` iff its current status allows it, in one UPDATE."""
        sources = [st for st, targets in TRANSITIONS.items() if to in targets]
        result = s.execute(
            update(Generation)
            .where(Generation.id == generation_id, Generation.status.in_(sources))
            .values(status=to, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:
            row = self._get(s, Generation, generation_id, "generation")
            raise InvalidTransitionError(
                f"generation {generation_id} is {row.status}; it cannot become {to} "
                f"(only from {' or '.join(sources) or 'nothing'})"
            )
        s.expire_all()
        return s.get_one(Generation, generation_id)

    def claim_generation(self, generation_id: int, owner: str | None = None) -> GenerationRecord | None:
        """queued -> running, atomically, held by ``owner`` (None: nobody known); None if it is not
        queued (someone else has it)."""
        owner = _check_owner(owner)
        with self._write() as s:
            self._get(s, Generation, generation_id, "generation")
            return self._claim(s, generation_id, owner)

    def _claim(self, s: Session, generation_id: int, owner: str | None) -> GenerationRecord | None:
        now = utcnow()
        result = s.execute(
            update(Generation)
            .where(Generation.id == generation_id, Generation.status == "queued")
            .values(
                status="running",
                owner=owner,
                started_at=now,
                attempts=Generation.attempts + 1,
                progress_stage="starting",
                progress_step=None,
                progress_total=None,
                progress_eta_s=None,
                progress_updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:
            return None
        s.expire_all()
        return self._generation(s.get_one(Generation, generation_id))

    def claim_next(self, backend: str | None = None, owner: str | None = None) -> GenerationRecord | None:
        """Claim the oldest queued generation (of ``backend``, if given) for ``owner``; None if the
        queue is empty."""
        owner = _check_owner(owner)
        while True:
            with self._write() as s:
                q = select(Generation.id).where(Generation.status == "queued")
                if backend is not None:
                    q = q.where(Generation.backend == backend)
                next_id = s.scalars(q.order_by(Generation.id).limit(1)).first()
                if next_id is None:
                    return None
                claimed = self._claim(s, next_id, owner)
                if claimed is not None:
                    return claimed
            # lost a race on a database without write locks at BEGIN: try the next one

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
    ) -> GenerationRecord:
        """Record progress of a running generation; the returned record carries ``cancel_requested``."""
        _check_str("stage", stage, allow_empty=False)
        if total is not None:
            _check_int("total", total, 0)
        if step is not None:
            _check_int("step", step, 0, total)
        if eta_s is not None:
            _check_float("eta_s", eta_s, 0.0)
        with self._write() as s:
            result = s.execute(
                update(Generation)
                .where(Generation.id == generation_id, Generation.status == "running")
                .values(
                    progress_stage=stage,
                    progress_step=step,
                    progress_total=total,
                    progress_eta_s=eta_s,
                    progress_updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:
                row = self._get(s, Generation, generation_id, "generation")
                raise InvalidTransitionError(
                    f"generation {generation_id} is {row.status}; progress is recorded only while running"
                )
            s.expire_all()
            return self._generation(s.get_one(Generation, generation_id))

    def finish_generation(
        self,
        generation_id: int,
        status: str,
        error: str | None = None,
        video_path: str | os.PathLike[str] | None = None,
        thumbnail_path: str | os.PathLike[str] | None = None,
        timings: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> GenerationRecord:
        """End a generation: ``succeeded`` (from running, needs video_path), ``failed`` (needs error)
        or ``cancelled`` (from queued or running). ``timings`` and ``params`` are merged into the
        stored dicts (new keys win)."""
        _check_choice("status", status, ("succeeded", "failed", "cancelled"))
        if status == "failed" and not (isinstance(error, str) and error.strip()):
            raise InvalidFieldError("error must be a non-empty message when status is 'failed'")
        if error is not None:
            _check_str("error", error)
        if status == "succeeded" and video_path is None:
            raise InvalidFieldError("video_path is required when status is 'succeeded'")
        video = self._store_path("video_path", video_path)
        thumb = self._store_path("thumbnail_path", thumbnail_path)
        timings = _json_dict("timings", timings) if timings is not None else None
        params = _json_dict("params", params) if params is not None else None
        with self._write() as s:
            current = self._get(s, Generation, generation_id, "generation")
            values: dict[str, Any] = {"finished_at": utcnow(), "error": error}
            if video is not None:
                values["video_path"] = video
            if thumb is not None:
                values["thumbnail_path"] = thumb
            if timings is not None:
                values["timings"] = {**(current.timings or {}), **timings}
            if params is not None:
                values["params"] = {**(current.params or {}), **params}
            return self._generation(self._transition(s, generation_id, status, values))

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
            row = self._get(s, Generation, generation_id, "generation")
            if row.status == "queued":
                row.status = "cancelled"
                row.finished_at = utcnow()
            elif row.status == "running":
                row.cancel_requested = True
            s.flush()
            return self._generation(row)

    def mark_interrupted(
        self,
        message: str = DEFAULT_INTERRUPTED_MESSAGE,
        *,
        is_alive: Callable[[str], bool] | None = None,
    ) -> list[int]:
        """Turn queued or running generations into failed with ``message``; return their ids.

        With ``is_alive`` (e.g. ``storage.owner.owner_alive``), only those whose owner is None or for
        which ``is_alive(owner)`` is False: the jobs of processes that are gone. Without it, every
        queued or running generation, for a caller that knows no other process runs.
        """
        _check_str("message", message, allow_empty=False)
        active = ("queued", "running")
        if is_alive is None:
            with self._write() as s:
                ids = list(
                    s.scalars(
                        select(Generation.id).where(Generation.status.in_(active)).order_by(Generation.id)
                    )
                )
                if ids:
                    s.execute(
                        update(Generation)
                        .where(Generation.id.in_(ids), Generation.status.in_(active))
                        .values(status="failed", error=message, finished_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
        else:
            # 1. Who holds what, read without the write lock (is_alive may look at other processes)
            with self._read() as s:
                rows = s.execute(select(Generation.id, Generation.owner).where(Generation.status.in_(active)))
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
                        cond = (Generation.id.in_(gids), Generation.status.in_(active), same)
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
        ids = [_check_int("generation id", i) for i in generation_ids]
        _check_owner(owner)
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

    def requeue(self, generation_id: int, owner: str | None = None) -> GenerationRecord:
        """A failed or cancelled generation back to queued, *in place* (same id, plan, params and
        lineage), held by ``owner`` (None: nobody known); its error, progress, outputs, timings and
        start/finish times are cleared, and ``attempts`` keeps counting. To render a variation
        instead, create a child generation."""
        owner = _check_owner(owner)
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
                },
            )
            log.info("requeued generation %d (attempt %d so far)", generation_id, row.attempts)
            return self._generation(row)

    def delete_generation(self, generation_id: int, remove_files: bool = True) -> None:
        """Delete a generation that is not running; its children lose their parent (parent_id None).

        With ``remove_files``, its video and thumbnail are deleted too when they live in the media
        folder and no other generation uses the same file.
        """
        with self._write() as s:
            row = self._get(s, Generation, generation_id, "generation")
            if row.status == "running":
                raise InvalidTransitionError(
                    f"generation {generation_id} is running; cancel it before deleting it"
                )
            files = [p for p in (row.video_path, row.thumbnail_path) if p]
            s.execute(
                update(Generation)
                .where(Generation.parent_id == generation_id)
                .values(parent_id=None)
                .execution_options(synchronize_session=False)
            )
            s.delete(row)
            s.flush()
            still_used = set(
                s.scalars(select(Generation.video_path).where(Generation.video_path.in_(files)))
            ) | set(
                s.scalars(
                    select(Generation.thumbnail_path).where(Generation.thumbnail_path.in_(files))
                )
            )
        if remove_files:
            for stored in files:
                path = self._path(stored)
                if stored in still_used or path is None or not self.media.contains(path):
                    continue
                self.media.delete(path)

    # --- generations: reads -------------------------------------------------------------------------

    def get_generation(self, generation_id: int) -> GenerationRecord:
        with self._read() as s:
            return self._generation(self._get(s, Generation, generation_id, "generation"))

    def list_generations(self, conversation_id: int) -> list[GenerationRecord]:
        """A conversation's generations in creation order ("the second one" is index 1)."""
        with self._read() as s:
            q = (
                select(Generation)
                .where(Generation.conversation_id == conversation_id)
                .order_by(Generation.id)
            )
            return [self._generation(r) for r in s.scalars(q)]

    def list_gallery(
        self,
        *,
        template: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        backend: str | Iterable[str] | None = None,
        seed: int | None = None,
        text: str | None = None,
        created_from: datetime | date | None = None,
        created_to: datetime | date | None = None,
        conversation_id: int | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> GalleryPage:
        """One page of generations, newest first, matching every filter given.

        ``text`` matches the prompt (case-insensitive substring). ``created_from`` is inclusive,
        ``created_to`` exclusive; a ``date`` means its whole UTC day, a naive datetime is UTC.
        ``page`` starts at 1.
        """
        _check_int("page", page, 1)
        _check_int("page_size", page_size, 1, MAX_PAGE_SIZE)
        conds: list[Any] = []
        templates = _one_or_many("template", template)
        if templates is not None:
            conds.append(Generation.template.in_(templates))
        statuses = _one_or_many("status", status)
        if statuses is not None:
            for st in statuses:
                _check_choice("status", st, STATUSES)
            conds.append(Generation.status.in_(statuses))
        backends = _one_or_many("backend", backend)
        if backends is not None:
            conds.append(Generation.backend.in_(backends))
        if seed is not None:
            conds.append(Generation.seed == _check_int("seed", seed))
        if text is not None and _check_str("text", text).strip():
            conds.append(Generation.prompt.icontains(text.strip(), autoescape=True))
        if created_from is not None:
            conds.append(Generation.created_at >= _as_utc("created_from", created_from, end=False))
        if created_to is not None:
            conds.append(Generation.created_at < _as_utc("created_to", created_to, end=True))
        if conversation_id is not None:
            conds.append(Generation.conversation_id == _check_int("conversation_id", conversation_id))

        q = (
            select(Generation)
            .where(*conds)
            .order_by(Generation.created_at.desc(), Generation.id.desc())
            .limit(page_size)
            .offset((page - 1) * page_size)
        )
        with self._read() as s:
            total = int(s.scalar(select(func.count()).select_from(Generation).where(*conds)) or 0)
            items = tuple(self._generation(r) for r in s.scalars(q))
        return GalleryPage(items=items, total=total, page=page, page_size=page_size)

    def lineage(self, generation_id: int) -> Lineage:
        """The generation, its ancestors (root first) and its direct children (oldest first)."""
        with self._read() as s:
            row = self._get(s, Generation, generation_id, "generation")
            ancestors: list[Generation] = []
            seen = {row.id}
            parent_id = row.parent_id
            while parent_id is not None and parent_id not in seen:
                parent = s.get(Generation, parent_id)
                if parent is None:
                    break
                ancestors.append(parent)
                seen.add(parent.id)
                parent_id = parent.parent_id
            children = s.scalars(
                select(Generation).where(Generation.parent_id == generation_id).order_by(Generation.id)
            )
            return Lineage(
                generation=self._generation(row),
                ancestors=tuple(self._generation(a) for a in reversed(ancestors)),
                children=tuple(self._generation(c) for c in children),
            )

    # --- info ---------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self._read() as s:
            return {
                model.__tablename__: int(s.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Conversation, Message, SourceImage, Generation)
            }

    def info(self) -> StoreInfo:
        with self._read() as s:
            by_status = dict.fromkeys(STATUSES, 0)
            for st, n in s.execute(select(Generation.status, func.count()).group_by(Generation.status)):
                by_status[st] = int(n)
        return StoreInfo(
            url=self.url,
            database_path=self.database_path,
            media_root=self.media.root,
            schema_version=schema_version(self._engine),
            latest_version=LATEST_VERSION,
            counts=self.counts(),
            generations_by_status=by_status,
        )


# ---------------------------------------------------------------------------------------------


_FORMAT_SUFFIX = {
    "jpeg": ".jpg",
    "jpg": ".jpg",
    "mpo": ".jpg",
    "png": ".png",
    "webp": ".webp",
    "gif": ".gif",
    "bmp": ".bmp",
    "tiff": ".tif",
    "heif": ".heic",
    "avif": ".avif",
}


def _suffix_for(fmt: str) -> str:
    """The file suffix for an image format name ('jpeg' -> '.jpg'); unknown names are sanitized."""
    if fmt in _FORMAT_SUFFIX:
        return _FORMAT_SUFFIX[fmt]
    clean = "".join(c for c in fmt if c.isalnum())[:10]
    return f".{clean}" if clean else ""


def _sniff_image(data: bytes) -> tuple[int, int, str]:
    from PIL import Image, UnidentifiedImageError  # Pillow only when the caller gave no size

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.width, im.height, (im.format or "unknown").lower()
    except UnidentifiedImageError as e:
        raise InvalidFieldError(f"data is not an image Pillow can read ({len(data)} bytes): {e}") from e


def resolve_location(url: str | None = None, home: str | os.PathLike[str] | None = None) -> tuple[str, Path]:
    """The database URL and home folder: arguments, else VIVIDFLOW_DB_URL / VIVIDFLOW_HOME, else
    ``./vividflow-data`` holding ``vividflow.db``."""
    home_path = Path(home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME).resolve()
    if url is None:
        url = os.environ.get(DB_URL_ENV) or f"sqlite:///{home_path / DB_FILENAME}"
    make_url(url)  # raises ArgumentError on a malformed URL
    return url, home_path


def open_store(
    url: str | None = None,
    home: str | os.PathLike[str] | None = None,
    *,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> Store:
    """Open (creating and migrating as needed) the store.

    ``home`` (default $VIVIDFLOW_HOME, else ./vividflow-data) holds ``vividflow.db`` and ``media/``;
    ``url`` (default $VIVIDFLOW_DB_URL, else sqlite:///<home>/vividflow.db) may be any SQLAlchemy URL.
    Raises SchemaTooNewError for a database written by a newer VividFlow.
    """
    url, home_path = resolve_location(url, home)
    home_path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        migrate(engine, migrations)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, MediaStore(home_path / MEDIA_DIRNAME), home_path)
