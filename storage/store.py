"""The Store: the one object in VividFlow that speaks SQL.

``open_store()`` gives a :class:`Store`; every method is one transaction and returns plain frozen
records (``storage.records``), so callers in any thread may keep them. The Store is composed of
parts, one module each: conversations, messages and images here, the generation queue
(``storage.queue``) and the queue many workers share under leases (``storage.leases``), recovery of
jobs whose lease ran out (``storage.recovery``), media kept consistent with rows (``storage.sweep``) and
the gallery (``storage.gallery``), all on
``storage.base.StoreBase``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError

from storage.db import make_engine, os_error, storage_error
from storage.errors import DatabaseUnavailableError, ForbiddenError, InvalidFieldError, ReadOnlyStorageError
from storage.gallery import GalleryMixin
from storage.media import MediaStore
from storage.migrations import LATEST_VERSION, MIGRATIONS, Migration, migrate, schema_version
from storage.models import LOCAL_USER, ROLES, STATUSES, Conversation, Generation, Message, SourceImage, utcnow
from storage.records import ConversationRecord, ImageRecord, MessageRecord, StoreInfo
from storage.recovery import RecoveryMixin
from storage.users import UsersMixin
from storage.validation import MAX_PAGE_SIZE, check_choice, check_int, check_str, check_user, json_dict
from vividflow.sections import StorageSettings
from vividflow.settings import load_settings

log = logging.getLogger(__name__)

HOME_ENV = StorageSettings.env_names["home"]
DB_URL_ENV = StorageSettings.env_names["db_url"]
DB_FILENAME = "vividflow.db"
MEDIA_DIRNAME = "media"


class Store(UsersMixin, RecoveryMixin, GalleryMixin):
    """Conversations, messages, source images and generations in one SQL database + a media folder.

    Build it with :func:`open_store`. Thread-safe: each method uses its own session.
    """

    # --- conversations and messages ------------------------------------------------------------

    def create_conversation(self, title: str = "", *, user: str = LOCAL_USER) -> ConversationRecord:
        """A new conversation of ``user`` (the studio's login, or ``'local'``)."""
        check_str("title", title)
        user = check_user(user)
        with self._write() as s:
            row = Conversation(title=title, user_id=user)
            s.add(row)
            s.flush()
            return self._conversation(row)

    def get_conversation(self, conversation_id: int, *, viewer: str | None = None) -> ConversationRecord:
        """The conversation; with ``viewer``, NotFoundError unless it is theirs or shared."""
        with self._read() as s:
            return self._conversation(self._get_visible(s, Conversation, conversation_id, "conversation", viewer))

    def list_conversations(
        self, limit: int = 50, offset: int = 0, *, user: str | None = None, include_shared: bool = False
    ) -> list[ConversationRecord]:
        """Most recently active first: ``user``'s (and, with ``include_shared``, every shared one); everyone's
        when ``user`` is None."""
        check_int("limit", limit, 1, MAX_PAGE_SIZE)
        check_int("offset", offset, 0)
        conds: list[Any] = []
        if user is not None:
            mine = Conversation.user_id == check_user(user)
            conds.append(or_(mine, Conversation.shared.is_(True)) if include_shared else mine)
        q = (
            select(Conversation)
            .where(*conds)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._read() as s:
            return [self._conversation(r) for r in s.scalars(q)]

    def rename_conversation(self, conversation_id: int, title: str) -> ConversationRecord:
        check_str("title", title)
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
        *,
        user: str | None = None,
    ) -> MessageRecord:
        """Add a message (``role`` user|assistant|system); ``plan`` is the MotionPlan dict after the turn.
        With ``user``, ForbiddenError unless the conversation is theirs (a shared one is read-only to others)."""
        check_choice("role", role, ROLES)
        user = check_user(user) if user is not None else None
        check_str("text", text)
        plan = json_dict("plan", plan) if plan is not None else None
        meta = json_dict("meta", meta) if meta is not None else None
        with self._write() as s:
            conv = self._get(s, Conversation, conversation_id, "conversation")
            if user is not None and conv.user_id != user:
                raise ForbiddenError(f"conversation {conversation_id} belongs to another person; it is read-only for {user}")
            row = Message(conversation_id=conversation_id, role=role, text=text, plan=plan, meta=meta,
                          user_id=conv.user_id)
            s.add(row)
            conv.updated_at = utcnow()
            s.flush()
            return self._message(row)

    def list_messages(self, conversation_id: int, *, viewer: str | None = None) -> list[MessageRecord]:
        """All messages of a conversation, oldest first; with ``viewer``, NotFoundError unless it is theirs or
        shared."""
        with self._read() as s:
            self._get_visible(s, Conversation, conversation_id, "conversation", viewer)
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
        check_int("width", width, 1)
        check_int("height", height, 1)
        fmt = check_str("format", format, allow_empty=False).lower()
        if filename is not None:
            check_str("filename", filename)

        # The write lock first (SQLite: BEGIN IMMEDIATE), then the file, then the row: a busy database refuses
        # before any file is written, and a file this call created goes again if its row is not committed.
        suffix = _suffix_for(fmt)
        created: Path | None = None
        try:
            with self._write() as s:
                s.connection()
                key = self.media.key_for(digest, suffix)
                if not self.media.exists(key):
                    created = self.media.path_for(key)
                stored = self.media.put_bytes(data, suffix)
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
                record = self._image(row)
            return record
        except IntegrityError:
            # another writer added the same content between our look-up and our insert: its row uses the file
            found = self.find_image(digest)
            if found is None:
                raise
            return found
        except BaseException:
            if created is not None:  # no row: no file either
                created.unlink(missing_ok=True)
            raise

    def get_image(self, image_id: int) -> ImageRecord:
        with self._read() as s:
            return self._image(self._get(s, SourceImage, image_id, "source image"))

    def find_image(self, sha256: str) -> ImageRecord | None:
        """The image with this content hash, or None."""
        with self._read() as s:
            row = s.scalars(select(SourceImage).where(SourceImage.sha256 == sha256)).first()
            return self._image(row) if row else None

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
    """The database URL and home folder: arguments, else the settings (VIVIDFLOW_DB_URL / VIVIDFLOW_HOME or
    vividflow.toml's [storage]), else ``./vividflow-data`` holding ``vividflow.db``. A URL that is not one
    raises DatabaseUnavailableError naming where it came from."""
    source = "the database URL"
    if home is None or url is None:
        settings = load_settings().storage
        home = settings.home if home is None else home
        if url is None and settings.db_url is not None:
            url, source = settings.db_url, f"{DB_URL_ENV} (or [storage] db_url in vividflow.toml)"
    home_path = Path(home).resolve()
    if url is None:
        url = f"sqlite:///{home_path / DB_FILENAME}"
    try:
        make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DatabaseUnavailableError(
            f"{source} is not a database URL ({_quote(url)}); write it like sqlite:////path/to/vividflow.db or "
            f"postgresql+psycopg://user:password@host:5432/vividflow"
        ) from None
    return url, home_path


def open_store(
    url: str | None = None,
    home: str | os.PathLike[str] | None = None,
    *,
    media_root: str | os.PathLike[str] | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
    busy_timeout_s: float | None = None,
) -> Store:
    """Open (creating and migrating as needed) the store.

    ``home`` (default $VIVIDFLOW_HOME, else ./vividflow-data) holds ``vividflow.db`` and ``media/``;
    ``url`` (default $VIVIDFLOW_DB_URL, else sqlite:///<home>/vividflow.db) may be any SQLAlchemy URL;
    ``media_root`` (default $VIVIDFLOW_MEDIA_ROOT, else <home>/media) is where media files live: a folder
    every worker's host mounts, when workers on several hosts share one database. ``busy_timeout_s``
    (default $VIVIDFLOW_DB_BUSY_TIMEOUT_S, 30): how long a write waits for another process's write lock.

    Every failure raises a StorageError with one sentence naming the file, folder or variable and what to do:
    SchemaTooNewError for a database written by a newer VividFlow, DatabaseCorruptError, ReadOnlyStorageError,
    StorageFullError, DatabaseUnavailableError (bad URL, missing driver, server not answering, a file where
    the data folder should be). A SQLite file this call created is removed again when opening fails.
    """
    url, home_path = resolve_location(url, home)
    settings = load_settings().storage
    if media_root is None:
        media_root = settings.media_root
    if busy_timeout_s is None:
        busy_timeout_s = settings.busy_timeout_s
    media_path = Path(media_root).resolve() if media_root is not None else home_path / MEDIA_DIRNAME
    _make_folder(home_path, "the data folder (VIVIDFLOW_HOME)")
    _make_folder(media_path, "the media folder (VIVIDFLOW_MEDIA_ROOT)")
    media = MediaStore(media_path)  # before the database: a bad media folder leaves no database behind
    db_file = _sqlite_file(url)
    created = db_file is not None and not db_file.exists()
    if db_file is not None:
        if db_file.is_dir():
            raise DatabaseUnavailableError(f"the database file {db_file} is a folder; move it away, or set "
                                           f"VIVIDFLOW_HOME to another folder")
        _make_folder(db_file.parent, "the database's folder")
        _check_writable(db_file.parent)
    engine = _engine(url, busy_timeout_s)
    try:
        migrate(engine, migrations)
    except BaseException as e:
        engine.dispose()
        if created:
            _remove_unused_database(db_file)
        explained = storage_error(e, url) if isinstance(e, Exception) else None
        if explained is None or explained is e:
            raise
        raise explained from e
    return Store(engine, media, home_path)


def _quote(value: str, limit: int = 80) -> str:
    """A value as an error message quotes it: repr, at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sqlite_file(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:") or u.database.startswith("file:"):
        return None
    return Path(u.database).resolve()


def _make_folder(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise DatabaseUnavailableError(
            f"{what} {path} is a file, not a folder; move the file away, or set VIVIDFLOW_HOME to a folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(e, f"{what} {path}") from None


def _check_writable(folder: Path) -> None:
    """SQLite writes beside its database (the WAL and its index), even to read it: refuse a read-only folder."""
    read_only = not os.access(folder, os.W_OK)
    try:
        read_only = read_only or bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs here: the permission check stands
        pass
    if read_only:
        raise ReadOnlyStorageError(
            f"the database's folder {folder} is read-only (SQLite writes beside the database, even to read it); "
            f"make it writable, or set VIVIDFLOW_HOME to a writable folder"
        )


def _engine(url: str, busy_timeout_s: float) -> Engine:
    """The engine, or a DatabaseUnavailableError for an unknown kind of database or a driver not installed."""
    u = make_url(url)
    try:
        return make_engine(url, busy_timeout_s=busy_timeout_s)
    except NoSuchModuleError:
        raise DatabaseUnavailableError(
            f"the database URL names an unknown kind of database ({u.drivername!r}); use sqlite:///… or "
            f"postgresql+psycopg://… (check {DB_URL_ENV})"
        ) from None
    except ImportError as e:
        raise DatabaseUnavailableError(
            f"the driver for {u.drivername!r} is not installed ({e.name or e}); install it, or use "
            f"postgresql+psycopg://… (psycopg is in requirements.txt) or sqlite:///… (check {DB_URL_ENV})"
        ) from None


def _remove_unused_database(path: Path | None) -> None:
    """Remove a SQLite file (and its -wal/-shm) that opening created but could not set up: no 0-byte or
    table-less database stays behind."""
    if path is None or not path.exists():
        return
    try:
        if path.stat().st_size > 0:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1)
            try:
                if con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0:
                    return  # another process set it up meanwhile: it is not ours to remove
            finally:
                con.close()
    except sqlite3.Error:
        pass  # unreadable: it is still the file we created and failed to set up
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            p.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove %s, left by a failed open", p)
