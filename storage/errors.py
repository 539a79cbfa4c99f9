"""Errors raised by the storage layer. Each message is one sentence for a person: it names the record, the
file, the folder or the setting, the value, and what is allowed or what to do."""

from __future__ import annotations

import errno

from vividflow.errors import VividflowError


class StorageError(VividflowError):
    """Base class of every storage error."""


class SchemaTooNewError(StorageError):
    """The database was written by a newer VividFlow than this one; we refuse to touch it."""


class SchemaMismatchError(StorageError):
    """The database records a migration under a version this code knows by another name."""


class NotFoundError(StorageError, LookupError):
    """No record of that kind with that id."""


class InvalidTransitionError(StorageError, ValueError):
    """A generation status change that its lifecycle does not allow."""


class InvalidFieldError(StorageError, ValueError):
    """An argument or plan field has the wrong type or is out of range."""


class DatabaseBusyError(StorageError):
    """Another process held the database's write lock for longer than the busy timeout."""


class DatabaseUnavailableError(StorageError):
    """The database cannot be opened or reached: a bad URL, a missing driver, a server that does not answer,
    a data folder that cannot hold it."""


class DatabaseCorruptError(StorageError):
    """The database file is not a SQLite database, or it is damaged or truncated."""


class StorageFullError(StorageError):
    """The disk (or quota) holding the database or the media is full."""


class ReadOnlyStorageError(StorageError):
    """The database or the media folder cannot be written (read-only file system or permissions)."""


def os_error(e: OSError, what: str) -> StorageError:
    """One sentence for an OSError met while writing ``what`` (a disk that is full, a read-only folder, ...)."""
    name = f" ({e.filename})" if getattr(e, "filename", None) and str(e.filename) not in what else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"no space left on the disk holding {what}{name}; free some space and try again")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyStorageError(
            f"cannot write {what}{name}: {e.strerror.lower() if e.strerror else 'not writable'}; make the folder "
            f"writable, or set VIVIDFLOW_HOME to a writable folder"
        )
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return DatabaseUnavailableError(
            f"cannot use {what}{name}: a file stands where a folder should be; move it away, or set VIVIDFLOW_HOME "
            f"to a folder"
        )
    return DatabaseUnavailableError(f"cannot use {what}{name}: {e.strerror or e}")
class QuotaExceededError(StorageError, ValueError):
    """A person already has as many jobs queued or running as the quota allows."""


class ForbiddenError(StorageError, PermissionError):
    """A change to a record that belongs to another person."""
