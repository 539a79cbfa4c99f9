"""Media and rows kept consistent: files no row references, and half-written temporary files.

A media file is published before the row that references it is committed (a reader never sees a row
without its file), so a crash in between can leave a file no row references. Three things clean up:

- a writer whose row cannot be committed removes the file again (``discard_media``), unless another row
  uses the same content;
- recovery (a runner's start, its periodic check, ``python -m storage recover``) removes the staging
  folders of jobs that are no longer running and temporary files left by writers that died
  (``sweep_temp``), and the outputs of jobs it marks interrupted (storage.recovery);
- ``python -m storage gc`` lists content-addressed files no row references (``orphan_media``) and, with
  ``--yes``, deletes them. Files younger than ``min_age_s`` are left alone: a writer may be about to
  commit their row.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from storage.base import StoreBase
from storage.media import STAGING_PREFIX, TEMP_DIR
from storage.models import ACTIVE_STATUSES, Generation, SourceImage

log = logging.getLogger(__name__)

CONTENT_KEY = re.compile(r"^([0-9a-f]{2})/(\1[0-9a-f]{62})(\.[A-Za-z0-9]{1,10})?$")
DEFAULT_GC_MIN_AGE_S = 600.0
"""gc leaves files younger than this alone: a writer may be between publishing one and committing its row."""
DEFAULT_TEMP_MAX_AGE_S = 900.0
"""Temporary files (not job staging folders) untouched this long are taken as left by a writer that died."""
_STAGING = re.compile(rf"^{re.escape(STAGING_PREFIX)}(\d+)-")
_HASH = re.compile(r"[0-9a-f]{64}")


class SweepMixin(StoreBase):
    """The consistency part of :class:`storage.Store`: media no row references, and temporary files."""

    def referenced_media(self) -> set[str]:
        """The media keys (``ab/abcd….mp4``) some row references: images, videos, thumbnails, and any path
        or key kept in a generation's params."""
        keys: set[str] = set()
        with self._read() as s:
            keys.update(s.scalars(select(SourceImage.media_key)))
            for video, thumb, params in s.execute(
                select(Generation.video_path, Generation.thumbnail_path, Generation.params)
            ):
                for value in (video, thumb, *_strings(params)):
                    key = self._key_of(value)
                    if key is not None:
                        keys.add(key)
        return keys

    def orphan_media(self, min_age_s: float = DEFAULT_GC_MIN_AGE_S) -> list[Path]:
        """Content-addressed media files no row references, older than ``min_age_s``; sorted."""
        now = time.time()
        used = self.referenced_media()
        orphans = []
        for path, key in self._content_files():
            if key in used:
                continue
            try:
                if now - path.stat().st_mtime < min_age_s:
                    continue
            except FileNotFoundError:
                continue
            orphans.append(path)
        return sorted(orphans)

    def gc(self, *, delete: bool = False, min_age_s: float = DEFAULT_GC_MIN_AGE_S) -> list[Path]:
        """The orphan media files (see ``orphan_media``); with ``delete``, each is deleted if still unreferenced
        (checked again under the write lock). Returns the files found (deleted, when ``delete``)."""
        orphans = self.orphan_media(min_age_s)
        if not delete:
            return orphans
        return self.discard_media(orphans)

    def discard_media(self, paths: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
        """Delete those of ``paths`` (inside the media root) that no row references; return the ones deleted.

        For a writer whose row was never committed. The check and the deletes run inside one write
        transaction, so on SQLite no other writer can add a reference meanwhile."""
        wanted = {}
        for p in paths:
            key = self._key_of(p)
            if key is not None:
                wanted[key] = self.media.path_for(key)
        if not wanted:
            return []
        deleted = []
        with self._write() as s:
            in_params = self._keys_in_params(s)
            for key, path in wanted.items():
                forms = (key, str(path))
                used = s.scalars(select(SourceImage.id).where(SourceImage.media_key == key).limit(1)).first()
                used = used or s.scalars(
                    select(Generation.id)
                    .where(or_(Generation.video_path.in_(forms), Generation.thumbnail_path.in_(forms)))
                    .limit(1)
                ).first()
                if used is None and key not in in_params:
                    if self.media.delete(path):
                        deleted.append(path)
        if deleted:
            log.info("removed %d media file(s) no record references: %s", len(deleted), [p.name for p in deleted])
        return deleted

    def sweep_temp(self, max_age_s: float = DEFAULT_TEMP_MAX_AGE_S) -> list[Path]:
        """Remove the staging folders of jobs not queued or running (left by a process that died mid-render)
        and temporary files older than ``max_age_s``; return what was removed."""
        removed = []
        tmp = self.media.root / TEMP_DIR
        staged: dict[int, list[Path]] = {}
        if tmp.is_dir():
            for d in tmp.iterdir():
                m = _STAGING.match(d.name)
                if m and d.is_dir():
                    staged.setdefault(int(m.group(1)), []).append(d)
        if staged:
            with self._read() as s:
                q = select(Generation.id).where(Generation.id.in_(staged), Generation.status.in_(ACTIVE_STATUSES))
                active = set(s.scalars(q))
            for job_id, dirs in staged.items():
                if job_id in active:
                    continue
                for d in dirs:
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d)
                    log.info("removed the staging folder %s of generation %d (not running)", d, job_id)
        removed += self.media.cleanup_temp(max_age_s)
        return removed

    # --- helpers ----------------------------------------------------------------------------------------

    def _key_of(self, value: Any) -> str | None:
        """The content key of a stored path or key inside the media root, or None."""
        if not isinstance(value, str | os.PathLike):
            return None
        text = os.fspath(value)
        if CONTENT_KEY.match(text):  # a key as the rows store it: no file system call
            return text
        if not _HASH.search(text):  # cheap: no content hash in it, so not one of ours
            return None
        p = Path(text)
        key = self.media.relative_key(p if p.is_absolute() else self.media.root / p)
        return key if key is not None and CONTENT_KEY.match(key) else None

    def _keys_in_params(self, s: Any) -> set[str]:
        keys = set()
        for params in s.scalars(select(Generation.params).where(Generation.params.is_not(None))):
            keys.update(k for k in map(self._key_of, _strings(params)) if k is not None)
        return keys

    def _content_files(self) -> Iterator[tuple[Path, str]]:
        root = self.media.root
        if not root.is_dir():
            return
        for sub in root.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for f in sub.iterdir():
                key = f"{sub.name}/{f.name}"
                if CONTENT_KEY.match(key) and f.is_file():
                    yield f, key


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
