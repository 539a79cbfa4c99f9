"""Logging, set up once per process by an entry point (a CLI's main, the studio): a rotating log file in the
data folder with every record from INFO up and full tracebacks, and stderr with warnings, one line each.

Library modules only call `logging.getLogger(__name__)`; they never configure logging or print.
(Minimal version written for the studio; the shared CLI boundary may extend it.)
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path

LOG_DIR = "logs"
LOG_FILE = "vividflow.log"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d %(threadName)s] %(message)s"

_lock = threading.Lock()
_current: Path | None = None


class OneLine(logging.Formatter):
    """`LEVEL name: message` on one line; an exception adds its type and message, never the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            text += f" ({type(e).__name__}: {e})"
        return " ".join(text.split())[:500]


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (test runners and Streamlit swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def log_path(home: str | os.PathLike[str]) -> Path:
    """Where the log file of the data folder `home` is."""
    return Path(home) / LOG_DIR / LOG_FILE


def setup_logging(home: str | os.PathLike[str], *, stderr_level: int = logging.WARNING) -> Path:
    """Configure the root logger once per process: the rotating file under `<home>/logs/` and one-line
    warnings on stderr. Calling it again with the same folder does nothing; with another folder the file
    moves there. Returns the log file's path. When the folder cannot be written, only stderr is used."""
    global _current
    path = log_path(home).resolve()
    with _lock:
        if _current == path:
            return path
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_vividflow", False)]:
            root.removeHandler(handler)
            handler.close()
        console = _Stderr()
        console.setLevel(stderr_level)
        console.setFormatter(OneLine())
        console._vividflow = True  # type: ignore[attr-defined]
        root.addHandler(console)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                                        encoding="utf-8", delay=True)
        except OSError as e:
            logging.getLogger(__name__).warning("cannot write the log file %s (%s); logging to stderr only",
                                                path, e.strerror or e)
        else:
            file.setLevel(logging.INFO)
            file.setFormatter(logging.Formatter(FILE_FORMAT))
            file._vividflow = True  # type: ignore[attr-defined]
            root.addHandler(file)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        _current = path
        return path


def current_log_file() -> Path | None:
    """The log file setup_logging chose in this process (None before it ran)."""
    return _current
