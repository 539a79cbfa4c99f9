"""Logging, set up once by each entry point (the CLIs, the workers, the studio): `setup_logging(home)`.

- A rotating log file in the data folder, `<home>/logs/vividflow.log` (1 MB × 3 old files), gets every
  record from INFO up, with tracebacks; it is created at the first record.
- stderr gets warnings and errors as one line each (`warning: …`), no traceback — unless `debug`
  (`--debug` / `VIVIDFLOW_DEBUG=1`), then records from DEBUG up with their tracebacks.
- An exception that ends a thread goes to the log (`threading.excepthook`), not Python's fallback printer;
  Python's `warnings` go through the log as well.

Library modules only call `logging.getLogger(__name__)`; they never print or configure logging.
Sits beside the ground floor: imports nothing of ours but the errors.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path
from typing import Any

from vividflow.errors import one_line

LOG_DIR = "logs"
LOG_FILE = "vividflow.log"
MAX_LOG_BYTES = 1 << 20
LOG_BACKUPS = 3
FILE_FORMAT = "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"

FILE_ONLY = {"vividflow_file_only": True}  # `log.error(..., extra=FILE_ONLY)`: a record stderr has shown already

_state: dict[str, Any] = {"path": None, "reason": None, "key": None}
_lock = threading.Lock()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is now (tests and the studio swap it), not the stream of set-up time."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class OneLineFormatter(logging.Formatter):
    """`warning: the message (OSError: disk full)` — the message's first line and the exception's kind and
    text, never the traceback (that is in the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage().strip().split(chr(10), 1)[0]}"
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            text += f" ({type(e).__name__}: {e})"
        return one_line(text)


class _LazyRotatingFile(logging.handlers.RotatingFileHandler):
    """Creates the folder and the file at the first record (a quiet run leaves no trace); a write that fails
    later (disk full) is dropped rather than printed with a traceback by logging's own error handler."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True)

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:
        pass

    def flush(self) -> None:  # a full disk: the buffered lines are lost, the program goes on
        try:
            super().flush()
        except OSError:
            pass

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # the file object is closed even when its last flush fails
            self.stream = None  # type: ignore[assignment]


def _writable(path: Path) -> str | None:
    """Why `path` (a file, maybe not there yet) cannot be written, or None; nothing is created."""
    folder = path.parent
    while not folder.exists():
        if folder.parent == folder:
            return f"{folder} does not exist"
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if path.exists() and not os.access(path, os.W_OK) or not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "vividflow_file_only", False)


def log_path(home: str | os.PathLike[str]) -> Path:
    """Where the log file of the data folder `home` is."""
    return Path(home) / LOG_DIR / LOG_FILE


def current_log_file() -> Path | None:
    """The log file `setup_logging` opened last, or None (not set up, or the folder was not writable)."""
    return _state["path"]


def log_unavailable_reason() -> str | None:
    """Why the last `setup_logging` has no log file (None when it has one)."""
    return _state["reason"]


def setup_logging(home: str | os.PathLike[str] | None, *, debug: bool = False,
                  stderr_level: int = logging.WARNING) -> Path | None:
    """Configure the root logger for this process: the rotating file in `home` (when given and writable)
    and one line per warning (`stderr_level`) on stderr. Calling it again with the same arguments does nothing
    (the studio calls it on every rerun); with others it replaces what the earlier call set up.
    Returns the log file, or None when there is none (the reason: `log_unavailable_reason()`)."""
    key = (str(Path(home).resolve()) if home is not None else None, debug, stderr_level)
    root = logging.getLogger()
    with _lock:
        if _state["key"] == key and any(getattr(h, "_vividflow", False) for h in root.handlers):
            return _state["path"]
        path = _configure(root, home, debug=debug, stderr_level=stderr_level)
        _state["key"] = key
        return path


def _configure(root: logging.Logger, home: str | os.PathLike[str] | None, *, debug: bool,
               stderr_level: int) -> Path | None:
    for handler in [h for h in root.handlers if getattr(h, "_vividflow", False)]:
        root.removeHandler(handler)
        handler.close()
    path: Path | None = None
    reason: str | None = None
    if home is None:
        reason = "no data folder"
    else:
        candidate = log_path(home)
        problem = _writable(candidate)
        if problem is not None:  # a read-only or broken data folder must not stop the command itself
            reason = f"no log file: {problem}"
        else:
            file_handler = _LazyRotatingFile(candidate)
            file_handler.setLevel(logging.DEBUG if debug else logging.INFO)
            file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
            _mark(root, file_handler)
            path = candidate
    stderr_handler = _StderrHandler()
    stderr_handler.setLevel(logging.DEBUG if debug else stderr_level)
    stderr_handler.addFilter(_not_file_only)
    stderr_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if debug
                                else OneLineFormatter())
    _mark(root, stderr_handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    _state.update(path=path, reason=reason)
    return path


def _mark(root: logging.Logger, handler: logging.Handler) -> None:
    handler._vividflow = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("vividflow.threads").error(
        "%s stopped", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
