"""Bounded input for the command lines: JSON from a regular file or stdin, and a safe `--out` path.

- JSON: at most `MAX_JSON_BYTES` (1 MB) and `MAX_JSON_DEPTH` (32) levels of nesting, read from a regular
  file or stdin (`-`) only. A FIFO, a device such as /dev/urandom or a folder is refused at once, from
  its `stat`, without reading a byte.
- `--out`: never a device node or a folder, never a path inside the media store, never an existing file
  unless `force`; `write_atomic` writes a temporary file beside it and renames it into place.

Every refusal is an `InputError` (a `VividflowError`) naming the argument; imports nothing of ours but
the errors.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from vividflow.errors import VividflowError, clip, short

MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
STDIN = "-"


class InputError(VividflowError, ValueError):
    """Input a command refuses (exit status 2); the message names the argument and what is allowed."""


# --- JSON -----------------------------------------------------------------------------------------


def read_json(source: str, *, what: str, stdin: IO[Any] | None = None, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in the file `source` (or stdin for "-"), bounded in size and depth; `what` names the
    argument in messages ("--plan", "stdin")."""
    text = read_text(source, what=what, stdin=stdin, max_bytes=max_bytes)
    return parse_json(text, what=what, max_depth=max_depth)


def read_text(source: str, *, what: str, stdin: IO[Any] | None = None, max_bytes: int = MAX_JSON_BYTES) -> str:
    """UTF-8 text of a regular file or stdin ("-"), at most `max_bytes`; anything else refused unread."""
    if source == STDIN:
        stream = stdin if stdin is not None else sys.stdin
        data = _read_bounded(getattr(stream, "buffer", stream), what, max_bytes)
    else:
        data = _read_file(source, what, max_bytes)
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 text (byte {e.start} is {short(data[e.start:e.start + 1])})") from None


def parse_json(text: str, *, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, then the nesting checked (a document deeper than Python's stack is refused as well)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{what} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise InputError(f"{what} nests arrays or objects far too deep; at most {max_depth} levels are allowed") \
            from None
    depth = json_depth(value)
    if depth > max_depth:
        raise InputError(f"{what} nests arrays or objects {depth} levels deep; at most {max_depth} are allowed")
    return value


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed JSON value (a scalar: 0); iterative, linear time."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _read_file(path: str, what: str, max_bytes: int) -> bytes:
    st = _stat(path, what)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {clip(path)} is {_kind(st.st_mode)}, not a regular file")
    if st.st_size > max_bytes:
        raise InputError(f"{what} {clip(path)} is {_size(st.st_size)}; at most {_size(max_bytes)} is accepted")
    try:
        # O_NONBLOCK: a FIFO swapped in after the stat must not make open() wait for a writer
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InputError(f"{what} {clip(path)} is not a regular file")
            return _read_bounded(f, what, max_bytes)
    except OSError as e:
        raise InputError(f"{what} {clip(path)} cannot be read: {e.strerror or e}") from None


def _read_bounded(stream: IO[Any], what: str, max_bytes: int) -> Any:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{what} is larger than {_size(max_bytes)}, the most that is accepted")
    return data


def _stat(path: str, what: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {clip(path)}") from None
    except OSError as e:
        raise InputError(f"{what} {clip(path)} cannot be read: {e.strerror or e}") from None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n:,} bytes"


# --- --out ----------------------------------------------------------------------------------------


def check_out_path(out: str, *, force: bool = False, protected: tuple[Path, ...] = (), what: str = "--out") -> Path:
    """The absolute path `out` may be written to, or InputError: not a folder, device or other special file
    (even with `force`), not one of the `protected` paths or inside one (the media store, the database file),
    not an existing file
    unless `force`. Checked before any work, so a refusal costs nothing."""
    if not out or "\x00" in out:
        raise InputError(f"{what} must be a file path, got {short(out)}")
    path = Path(out).expanduser().absolute()
    real = Path(os.path.realpath(path))
    for root in protected:
        root_real = Path(os.path.realpath(root))
        if real == root_real or root_real in real.parents:
            raise InputError(f"{what} {clip(str(path))} is inside the data folder's store ({clip(str(root_real))}), "
                             "which is never overwritten; choose a path outside it")
    parent = real.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{what} {clip(str(path))}: {clip(str(parent))} is not a folder")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {clip(str(path))}: the folder {clip(str(parent))} is not writable")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise InputError(f"{what} {clip(str(path))} cannot be checked: {e.strerror or e}") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {clip(str(path))} is {_kind(st.st_mode)}; give a file path")
        if not force:
            raise InputError(f"{what} {clip(str(path))} already exists; add --force to replace it")
    return path


def copy_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, what: str = "--out") -> None:
    """Copy `src` to `dst` through a temporary file beside `dst`, renamed into place when complete:
    `dst` is either the old file or the whole new one, and no temporary file is left on failure
    (InputError naming `what` when the file system refuses: disk full, permissions)."""
    dst = Path(dst)
    try:
        _copy_atomic(Path(src), dst)
    except OSError as e:
        raise InputError(f"{what} {clip(str(dst))} could not be written: {e.strerror or e}") from None


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name[:40]}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f, open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
