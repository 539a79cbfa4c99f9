"""Errors raised by the storage layer. Each message names the record, the value and what is allowed."""

from __future__ import annotations

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


class QuotaExceededError(StorageError, ValueError):
    """A person already has as many jobs queued or running as the quota allows."""


class ForbiddenError(StorageError, PermissionError):
    """A change to a record that belongs to another person."""
