"""The gallery: one generation, a conversation's generations, filtered pages, lineage, and delete."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update

from storage.base import StoreBase
from storage.errors import ForbiddenError, InvalidFieldError, InvalidTransitionError
from storage.models import STATUSES, Generation
from storage.records import GalleryPage, GenerationRecord, Lineage
from storage.validation import MAX_PAGE_SIZE, check_choice, check_int, check_str, check_user


def _as_utc(name: str, value: datetime | date, end: bool) -> datetime:
    """A date means its whole UTC day (start for ``created_from``, next midnight for ``created_to``)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        start = datetime.combine(value, time.min, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    raise InvalidFieldError(f"{name} must be a datetime or a date, got {value!r}")


LIKE_ESCAPE = "/"


def _escape_like(text: str) -> str:
    """``text`` matched literally by LIKE: its wildcards (% and _) and the escape character escaped."""
    for c in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(c, LIKE_ESCAPE + c)
    return text


def _one_or_many(name: str, value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    for v in values:
        check_str(name, v)
    return values


class GalleryMixin(StoreBase):
    """The gallery part of :class:`storage.Store`: reading generations back, and deleting one."""

    def get_generation(self, generation_id: int, *, viewer: str | None = None) -> GenerationRecord:
        """The generation; with ``viewer``, NotFoundError unless it is theirs or shared."""
        with self._read() as s:
            return self._generation(self._get_visible(s, Generation, generation_id, "generation", viewer))

    def list_generations(self, conversation_id: int) -> list[GenerationRecord]:
        """A conversation's generations in creation order ("the second one" is index 1)."""
        with self._read() as s:
            q = (
                select(Generation)
                .where(Generation.conversation_id == conversation_id)
                .order_by(Generation.id)
            )
            return [self._generation(r) for r in s.scalars(q)]

    def list_batch(self, batch_id: str, *, viewer: str | None = None) -> list[GenerationRecord]:
        """The generations of one batch of variations (#12 §3), in the order they were made; with ``viewer``,
        only those that person may see (their own and shared ones)."""
        check_str("batch_id", batch_id, allow_empty=False)
        conds = [Generation.batch_id == batch_id, *self._visible(Generation, viewer)]
        with self._read() as s:
            q = select(Generation).where(*conds).order_by(Generation.id)
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
        viewer: str | None = None,
        mine_only: bool = False,
        page: int = 1,
        page_size: int = 50,
    ) -> GalleryPage:
        """One page of generations, newest first, matching every filter given.

        ``viewer``: only what that person may see, their own generations and shared ones (only their own with
        ``mine_only``); None: everyone's (the CLI, an admin).

        ``text`` matches the prompt (case-insensitive substring). ``created_from`` is inclusive,
        ``created_to`` exclusive; a ``date`` means its whole UTC day, a naive datetime is UTC.
        ``page`` starts at 1.
        """
        check_int("page", page, 1)
        check_int("page_size", page_size, 1, MAX_PAGE_SIZE)
        conds: list[Any] = []
        templates = _one_or_many("template", template)
        if templates is not None:
            conds.append(Generation.template.in_(templates))
        statuses = _one_or_many("status", status)
        if statuses is not None:
            for st in statuses:
                check_choice("status", st, STATUSES)
            conds.append(Generation.status.in_(statuses))
        backends = _one_or_many("backend", backend)
        if backends is not None:
            conds.append(Generation.backend.in_(backends))
        if seed is not None:
            conds.append(Generation.seed == check_int("seed", seed))
        if text is not None and check_str("text", text).strip():
            conds.append(Generation.prompt.ilike(f"%{_escape_like(text.strip())}%", escape=LIKE_ESCAPE))
        if created_from is not None:
            conds.append(Generation.created_at >= _as_utc("created_from", created_from, end=False))
        if created_to is not None:
            conds.append(Generation.created_at < _as_utc("created_to", created_to, end=True))
        if conversation_id is not None:
            conds.append(Generation.conversation_id == check_int("conversation_id", conversation_id))
        if viewer is not None and mine_only:
            conds.append(Generation.user_id == check_user(viewer, "viewer"))
        else:
            conds.extend(self._visible(Generation, viewer))

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

    def delete_generation(self, generation_id: int, remove_files: bool = True, *, user: str | None = None) -> None:
        """Delete a generation that is not running; its children lose their parent (parent_id None).
        With ``user``, only their own (ForbiddenError for another person's, shared or not).

        With ``remove_files``, its video, thumbnail and animated preview are deleted too when they live
        in the media folder and no other generation uses the same file.
        """
        with self._write() as s:
            row = self._get(s, Generation, generation_id, "generation", for_update=True)
            if user is not None and row.user_id != check_user(user):
                raise ForbiddenError(f"generation {generation_id} belongs to another person; {user} cannot delete it")
            if row.status == "running":
                raise InvalidTransitionError(
                    f"generation {generation_id} is running; cancel it before deleting it"
                )
            files = [p for p in (row.video_path, row.thumbnail_path) if p]
            preview = (row.params or {}).get("animated_preview")  # the gallery's hover preview (a media key)
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
        if remove_files and isinstance(preview, str) and row.video_path not in still_used:
            files.append(preview)  # made from the video: it goes when the video goes
        if remove_files:
            for stored in files:
                path = self._path(stored)
                if stored in still_used or path is None or not self.media.contains(path):
                    continue
                self.media.delete(path)
