"""What every part of the Store stands on: the engine, one session per transaction, paths of media
files, and the conversion of ORM rows into the frozen records callers get (``storage.records``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine, exc, func, or_, update
from sqlalchemy.orm import Session

from storage.db import is_sqlite, storage_error, writer
from storage.errors import InvalidFieldError, NotFoundError
from storage.media import MediaStore
from storage.models import Conversation, Generation, Message, SourceImage, utcnow
from storage.records import ConversationRecord, GenerationRecord, ImageRecord, MessageRecord, Progress
from storage.validation import check_int, check_user


class StoreBase:
    """The engine and media folder of a :class:`storage.Store`; its parts (queue, gallery, recovery)
    subclass this. Thread-safe: each transaction uses its own session."""

    def __init__(self, engine: Engine, media: MediaStore, home: Path) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self.media = media
        self.home = home

    @property
    def is_postgres(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    def _clock(self) -> Any:
        """Now, by the clock leases are measured with: the PostgreSQL server's (one clock for the workers of
        every host), else this process's (SQLite: one host)."""
        return func.now() if self.is_postgres else utcnow()

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._explained(), Session(self._engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction: committed on normal exit, rolled back on any exception. A database that is
        busy past the busy timeout, full, read-only or damaged raises a StorageError that says so."""
        with self._explained(), Session(self._writer, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """Turn a database error this layer can explain into its StorageError (storage.db.storage_error)."""
        try:
            yield
        except exc.DBAPIError as e:
            explained = storage_error(e, self._engine.url)
            if explained is None:
                raise
            raise explained from e

    # --- paths ------------------------------------------------------------------------------------

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

    # --- rows -> records --------------------------------------------------------------------------

    def _conversation(self, row: Conversation) -> ConversationRecord:
        return ConversationRecord(row.id, row.title, row.created_at, row.updated_at, row.user_id, bool(row.shared))

    def _message(self, row: Message) -> MessageRecord:
        return MessageRecord(
            row.id, row.conversation_id, row.role, row.text, row.plan, row.meta, row.created_at, row.user_id
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
            heartbeat_at=row.heartbeat_at,
            lease_expires_at=row.lease_expires_at,
            lease_retries=row.lease_retries,
            user_id=row.user_id,
            shared=bool(row.shared),
            batch_id=row.batch_id,
        )

    @staticmethod
    def _update_generation(s: Session, conds: list[Any], values: dict[str, Any]) -> Generation | None:
        """One ``UPDATE generations … RETURNING`` the row (fresh in the session), or None if none matched."""
        return s.scalars(
            update(Generation)
            .where(*conds)
            .values(**values)
            .returning(Generation)
            .execution_options(synchronize_session=False, populate_existing=True)
        ).first()

    @staticmethod
    def _visible(model: type[Any], viewer: str | None) -> list[Any]:
        """The conditions for rows of ``model`` (Conversation or Generation) that ``viewer`` may read: their
        own and shared ones; none for ``viewer`` None (the CLI, an admin, code that serves one person)."""
        if viewer is None:
            return []
        return [or_(model.user_id == check_user(viewer, "viewer"), model.shared.is_(True))]

    def _get_visible(self, s: Session, model: type[Any], id: int, what: str, viewer: str | None) -> Any:
        """The row, or NotFoundError also when ``viewer`` may not read it (no hint that it exists)."""
        row = self._get(s, model, id, what)
        if viewer is not None and row.user_id != check_user(viewer, "viewer") and not row.shared:
            raise NotFoundError(f"no {what} with id {id}")
        return row

    @staticmethod
    def _get(s: Session, model: type[Any], id: int, what: str, *, for_update: bool = False) -> Any:
        """The row, or NotFoundError; ``for_update`` locks it until the transaction ends (PostgreSQL: a
        read-modify-write must not overwrite a change another worker made meanwhile; SQLite's write
        transactions hold the database lock already)."""
        check_int(f"{what} id", id)
        row = s.get(model, id, with_for_update=for_update or None)
        if row is None:
            raise NotFoundError(f"no {what} with id {id}")
        return row
