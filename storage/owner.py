"""Who holds a generation: an owner id per process, and whether that process is still alive.

An owner id reads ``hostname:pid:start:nonce``:

- ``start`` is the process start time from ``/proc/<pid>/stat`` (clock ticks since boot) followed by
  ``@`` and the first 8 characters of the kernel boot id, so a pid reused by a later process, or by a
  process after a reboot, is not mistaken for the old one. Where there is no ``/proc`` it is empty and
  only the pid is checked (a reused pid then looks alive).
- ``nonce`` is random per process: it tells this process from an earlier one that had the same pid
  (pid 1 in a restarted container) even where there is no ``/proc``.

``owner_alive`` judges only processes on this host. An owner on another host is treated as alive,
because nothing here can see its processes: a deployment whose processes share one database from
several hosts (or from containers with their own hostnames and pid namespaces) runs its jobs through
the shared queue, whose workers hold each job under a lease they renew (``storage.leases``); a job
whose worker died goes back to the queue when its lease runs out.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path

log = logging.getLogger(__name__)

PROC = Path("/proc")

_current: tuple[int, str] | None = None  # (pid, owner id): recomputed after a fork


def _hostname() -> str:
    return socket.gethostname()


def _read_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None without /proc or process."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    except PermissionError:  # hidepid mounts: the process exists but we may not read it
        return []
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so cut at the last ')'
    return text[text.rfind(")") + 2 :].split()


def _boot_id() -> str:
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """The start stamp of process ``pid`` as owner ids record it (``ticks@bootid``), or None when it is
    unknown (no /proc on this system, no such process, or not readable)."""
    fields = _read_stat(pid)
    if not fields or len(fields) < 20:
        return None
    ticks = fields[19]  # field 22 of stat(5): starttime, in clock ticks since boot
    boot = _boot_id()
    return f"{ticks}@{boot}" if boot else ticks


def current_owner() -> str:
    """This process's owner id (``hostname:pid:start:nonce``), the same for every call in the process."""
    global _current
    pid = os.getpid()
    if _current is None or _current[0] != pid:
        start = process_start(pid) or ""
        _current = (pid, f"{_hostname()}:{pid}:{start}:{secrets.token_hex(4)}")
    return _current[1]


def _pid_exists(pid: int) -> bool:
    """Whether a process with this pid exists and has not exited (a zombie has exited)."""
    fields = _read_stat(pid)
    if fields is not None:
        return not fields or fields[0] not in ("Z", "X")  # [] = exists but unreadable
    if PROC.joinpath("self").exists():  # /proc works and has no such pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def owner_alive(owner: str) -> bool:
    """Whether the process named by ``owner`` (an id from :func:`current_owner`) still runs.

    This process: only its own current id is alive. Another process on this host: alive when its pid
    exists and, where a start stamp was recorded, the process with that pid has the same one. Another
    host, or an id this code cannot read: alive (see the module docstring: multi-host needs a heartbeat).
    """
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        log.warning("owner id %r is not hostname:pid:start:nonce; treating its jobs as alive", owner)
        return True
    host, pid_text, start, _nonce = parts
    if host != _hostname():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return owner == current_owner()
    if not _pid_exists(pid):
        return False
    now = process_start(pid) if start else None
    if now is None:  # nothing recorded, or the stamp cannot be read now: the pid is all we can check
        return True
    return now == start
