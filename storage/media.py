"""Content-addressed media files under ``$VIVIDFLOW_HOME/media``.

A file lives at ``<root>/<sha256[:2]>/<sha256><suffix>``; the same content is stored once.
Every write is atomic: content goes to a temp file on the same file system, is flushed, and is
moved into place with ``os.replace``, so a reader never sees half a file and a crash leaves at
most a stray temp file (removed by :meth:`MediaStore.cleanup_temp`).

Writers that produce a file themselves (the MP4 exporter) ask for a temp path and commit it::

    with media.writer(".mp4") as w:
        export_video(frames, w.path)
    w.result.path   # <root>/3f/3fa4....mp4
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from storage.errors import InvalidFieldError, os_error

log = logging.getLogger(__name__)

TEMP_DIR = ".tmp"
TEMP_MARK = ".tmp-"
STAGING_PREFIX = "job-"
"""A job renders into ``<root>/.tmp/job-<id>-<random>/``; recovery removes those of jobs no longer running."""
_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,10})?$")


@dataclass(frozen=True)
class MediaFile:
    """A stored file: its content hash, its key relative to the media root, its absolute path."""

    sha256: str
    key: str
    path: Path
    size_bytes: int


@dataclass
class PendingWrite:
    """A temp path to write to; ``result`` is set once the context manager commits it."""

    path: Path
    result: MediaFile | None = field(default=None)


def _check_suffix(suffix: str) -> str:
    if not _SUFFIX.match(suffix):
        raise InvalidFieldError(
            f"suffix must be empty or a dot and 1-10 letters/digits (e.g. '.mp4'), got {suffix!r}"
        )
    return suffix.lower()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this platform/file system: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class MediaStore:
    """Content-addressed files under one root directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_error(e, f"the media folder {self.root}") from None

    # paths
    def key_for(self, sha256: str, suffix: str = "") -> str:
        """The relative key of content ``sha256`` stored with ``suffix``."""
        if not _SHA256.match(sha256):
            raise InvalidFieldError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        return f"{sha256[:2]}/{sha256}{_check_suffix(suffix)}"

    def path_for(self, key: str) -> Path:
        """The absolute path of a key; refuses keys that would leave the media root."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidFieldError(f"media key {key!r} points outside the media root {self.root}")
        return path

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` lies inside the media root."""
        return Path(path).resolve().is_relative_to(self.root)

    def relative_key(self, path: str | os.PathLike[str]) -> str | None:
        """The key of an absolute path inside the root, or None for a path outside it."""
        p = Path(path).resolve()
        if not p.is_relative_to(self.root):
            return None
        return p.relative_to(self.root).as_posix()

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    # writes
    def put_bytes(self, data: bytes, suffix: str = "") -> MediaFile:
        """Store ``data`` (once per content) and return where it lives."""
        digest = hashlib.sha256(data).hexdigest()
        key = self.key_for(digest, suffix)
        path = self.path_for(key)
        if not path.is_file():
            tmp = path.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}{path.name}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except OSError as e:  # a full disk, a read-only folder: nothing half-written stays
                raise os_error(e, f"the media folder {self.root}") from None
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        return MediaFile(sha256=digest, key=key, path=path, size_bytes=len(data))

    def put_file(self, source: str | os.PathLike[str], suffix: str | None = None) -> MediaFile:
        """Copy a file into the store (the source is left in place)."""
        src = Path(source)
        suffix = src.suffix if suffix is None else suffix
        tmp = self.temp_path(suffix)
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    fout.write(chunk)
            return self.commit(tmp, suffix)
        finally:
            tmp.unlink(missing_ok=True)

    def staging_dir(self, job_id: int) -> Path:
        """A fresh folder for job ``job_id`` to render into (same file system as the store), not created yet."""
        return self.root / TEMP_DIR / f"{STAGING_PREFIX}{job_id}-{uuid.uuid4().hex[:8]}"

    def temp_path(self, suffix: str = "") -> Path:
        """A fresh path in the store's temp folder (same file system) for a writer to fill."""
        tmp_dir = self.root / TEMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir / f"{uuid.uuid4().hex}{_check_suffix(suffix)}"

    def commit(self, temp: str | os.PathLike[str], suffix: str | None = None) -> MediaFile:
        """Move a finished temp file to its content address; the temp path is gone afterwards."""
        tmp = Path(temp)
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing to commit: {tmp} does not exist")
        suffix = tmp.suffix if suffix is None else suffix
        h = hashlib.sha256()
        size = 0
        with open(tmp, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
            os.fsync(f.fileno())
        digest = h.hexdigest()
        key = self.key_for(digest, suffix)
        path = self.path_for(key)
        if path.is_file():
            tmp.unlink()  # same content already stored
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
            except OSError as e:
                raise os_error(e, f"the media folder {self.root}") from None
            _fsync_dir(path.parent)
        return MediaFile(sha256=digest, key=key, path=path, size_bytes=size)

    def key_of_file(self, path: str | os.PathLike[str], suffix: str | None = None) -> str:
        """The key a finished file will have once committed (its content hash), without moving it."""
        p = Path(path)
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return self.key_for(h.hexdigest(), p.suffix if suffix is None else suffix)

    @contextmanager
    def writer(self, suffix: str = "") -> Iterator[PendingWrite]:
        """Yield a temp path to write; on normal exit commit it, on an exception delete it."""
        pending = PendingWrite(path=self.temp_path(suffix))
        try:
            yield pending
            pending.result = self.commit(pending.path, suffix)
        finally:
            pending.path.unlink(missing_ok=True)

    # deletes
    def delete(self, key_or_path: str | os.PathLike[str]) -> bool:
        """Delete a stored file by key or absolute path inside the root; False if it was absent."""
        p = Path(key_or_path)
        path = self.path_for(p.as_posix()) if not p.is_absolute() else p.resolve()
        if not path.is_relative_to(self.root):
            raise InvalidFieldError(f"refusing to delete {path}: it is outside the media root {self.root}")
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def cleanup_temp(self, max_age_s: float = 3600.0) -> list[Path]:
        """Remove temp files older than ``max_age_s`` (left by crashed writers); return them."""
        now = time.time()
        removed: list[Path] = []
        candidates = list((self.root / TEMP_DIR).glob("*")) if (self.root / TEMP_DIR).is_dir() else []
        candidates += list(self.root.glob(f"??/{TEMP_MARK}*"))
        for path in candidates:
            try:
                if path.is_file() and now - path.stat().st_mtime >= max_age_s:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # another process removed or committed it meanwhile
                continue
        if removed:
            log.info("removed %d stray temp file(s) under %s", len(removed), self.root)
        return removed
