"""The studio's error boundary: logging set up once per process (vividflow.logs), and every page's body run
inside `guard()`, which turns an unexpected error into a friendly box with a reference into the log file,
never a traceback (the traceback goes to the log; .streamlit/config.toml sets client.showErrorDetails = "none"
for anything that escapes, such as a widget callback)."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from vividflow.logs import LOG_DIR, LOG_FILE, current_log_file, setup_logging
from vividflow.settings import debug_enabled

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def start(home: str | Path) -> Path | None:
    """Logging for this process, into `<home>/logs/` (once; later calls with the same folder are free). Errors
    Streamlit catches itself (in a widget callback, before the page's body runs) reach the log file too."""
    path = setup_logging(home, debug=debug_enabled())  # VIVIDFLOW_DEBUG=1: tracebacks on stderr too
    # Streamlit's loggers do not propagate; its error logger gets ours instead of its multi-line console output
    # (the shipped config turns logger.enableRich off, so these errors are logged rather than printed)
    streamlit_errors = logging.getLogger("streamlit.error_util")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_vividflow", False)]
    if set(streamlit_errors.handlers) != set(ours):
        for old in list(streamlit_errors.handlers):
            streamlit_errors.removeHandler(old)
        for handler in ours:
            streamlit_errors.addHandler(handler)
    return path


def friendly_message(reference: str) -> str:
    where = current_log_file()
    shown = f"{LOG_DIR}/{LOG_FILE} in the data folder" if where is not None else "the studio's terminal"
    return (f"Something went wrong on our side, and this part of the page could not be shown. What you made is "
            f"kept; try again, or reload the page. Details are in {shown} (reference {reference}).")


@contextmanager
def guard(where: str) -> Iterator[None]:
    """Run a page body: an unexpected error is logged with its traceback and shown as one friendly box.
    Streamlit's own control flow (st.rerun, st.stop, st.switch_page) passes through: it is not an Exception."""
    try:
        yield
    except Exception:  # noqa: BLE001 - the page's boundary: everything unexpected ends here
        reference = secrets.token_hex(4)
        log.exception("studio error in %s (reference %s)", where, reference)
        st.error(friendly_message(reference), icon=":material/error:")


def guarded(where: str) -> Callable[[F], F]:
    """`guard` as a decorator, for fragments (they re-run on their own, outside the page's body)."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with guard(where):
                return func(*args, **kwargs)
            return None

        return run  # type: ignore[return-value]

    return wrap
