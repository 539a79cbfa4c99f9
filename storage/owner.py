"""Who holds a generation: an owner id per process, written on every job it creates, claims or requeues.

An owner id reads ``hostname:pid:nonce``; ``nonce`` is random per process, so a later process that got the
same pid (pid 1 in a restarted container) has another id. The id only says *who* holds a job, for people
and logs. Whether the holder still lives is never judged from the id (no ``/proc``, no host names): the
holder renews a lease on the job row while it lives, and any process's recovery ends the jobs whose lease
ran out (storage.leases, storage.recovery), whatever host or container they came from.
"""

from __future__ import annotations

import os
import secrets
import socket

_current: tuple[int, str] | None = None  # (pid, owner id): recomputed after a fork


def current_owner() -> str:
    """This process's owner id (``hostname:pid:nonce``), the same for every call in the process."""
    global _current
    pid = os.getpid()
    if _current is None or _current[0] != pid:
        _current = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}")
    return _current[1]
