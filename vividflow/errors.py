"""The one base class of the errors a person can fix, and how their messages quote a bad value.

An expected error (bad input, an unavailable backend, a storage problem, a setting we cannot use) is a
`VividflowError` whose text is one sentence for a person: the command-line boundary
(`vividflow.boundary.run_cli`) prints it as one line and exits 2. Anything else that escapes is a bug:
"internal error", exit 1, traceback in the log. A plain `ValueError` is a bug too, so an error class that
other code catches as `ValueError` keeps that base *beside* this one (`class PlanError(VividflowError, ValueError)`).

Sits beside the ground floor: importable by every package, imports nothing of ours.
"""

from __future__ import annotations

from typing import Any

QUOTE_CHARS = 80  # an error message quotes at most this many characters of a bad value
LINE_CHARS = 1000  # and the whole line stays below this (a safety net for messages built elsewhere)


class VividflowError(Exception):
    """An expected error; `str(e)` is one sentence for a person (what was wrong, what is allowed, what to do)."""


def short(value: Any, limit: int = QUOTE_CHARS) -> str:
    """`repr(value)` cut to `limit` characters ("…" marks the cut): how a message quotes a value it refuses."""
    return clip(_repr(value, limit), limit)


def clip(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` cut to `limit` characters ("…" marks the cut); a name or path that may be huge."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(message: object, limit: int = LINE_CHARS) -> str:
    """A message as one line (newlines become spaces), cut to `limit` characters."""
    text = " ".join(str(message).split("\n")).replace("\r", " ").strip()
    return clip(text, limit)


def _repr(value: Any, limit: int) -> str:
    if isinstance(value, (str, bytes)) and len(value) > 4 * limit:
        value = value[: 2 * limit]  # no need to repr megabytes to show 80 characters
    return repr(value)
