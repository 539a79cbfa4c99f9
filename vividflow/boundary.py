"""The one error boundary every command-line entry point runs through: `run_cli(cli, argv, prog=…)`.

    expected error (VividflowError)   one line `PROG: error: …` on stderr                     exit 2
    bad arguments (argparse)          argparse's usage line and `PROG: error: …`              exit 2
    Ctrl-C (KeyboardInterrupt)        `PROG: interrupted`; the command cancels its job        exit 130
    anything else (a bug)             `PROG: internal error: …; details in <log file>`        exit 1

The traceback of an internal error goes to the log file only (`vividflow.logs`), or to stderr as well with
`--debug` (anywhere before a `--`) or `VIVIDFLOW_DEBUG=1`. Logging is set up here, once per run, in the
data folder of the settings (or of `--home DIR` when the command has one).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from vividflow.errors import VividflowError, clip, one_line
from vividflow.logs import FILE_ONLY, current_log_file, log_unavailable_reason, setup_logging

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEBUG_FLAG = "--debug"

log = logging.getLogger("vividflow.boundary")


def run_cli(cli: Callable[[list[str]], int | None], argv: Sequence[str] | None = None, *, prog: str) -> int:
    """Run `cli(argv)` (which raises on errors) and turn whatever happens into an exit status and at most a
    line or two on stderr; returns the status (the caller does `sys.exit(run_cli(...))`)."""
    from vividflow.settings import debug_enabled

    args, debug = _take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    debug = debug or debug_enabled()
    log_file = configure_logging(args, debug=debug)
    log.debug("%s %s", prog, clip(" ".join(args), 400))
    try:
        return _exit_code(cli(args))
    except SystemExit as e:  # argparse (usage printed already), --help, or a command's own exit
        if isinstance(e.code, str):
            print(f"{prog}: {one_line(e.code)}", file=sys.stderr)
            return EXIT_INTERNAL
        return _exit_code(e.code)
    except KeyboardInterrupt:
        log.info("%s interrupted (Ctrl-C)", prog)
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except VividflowError as e:
        log.info("%s: %s", prog, e)
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # stdout closed early (`… | head`): nothing left to say to anyone
        _silence_stdout()
        return EXIT_INTERNAL
    except Exception as e:
        log.error("%s: internal error: %s: %s", prog, type(e).__name__, e, exc_info=True, extra=FILE_ONLY)
        where = f"details in {log_file}" if log_file is not None else \
            f"run again with {DEBUG_FLAG} for the details ({log_unavailable_reason()})"
        print(f"{prog}: internal error: {type(e).__name__}: {clip(one_line(e), 200)}; {where}", file=sys.stderr)
        if debug:
            traceback.print_exc(file=sys.stderr)
        return EXIT_INTERNAL


def configure_logging(argv: Sequence[str] = (), *, debug: bool = False) -> Path | None:
    """Set up logging in the data folder: `--home DIR` from `argv` if given, else the settings' home.
    Settings that cannot be read leave the log on stderr only (the command then reports them itself)."""
    from vividflow.settings import debug_enabled

    return setup_logging(_home(argv), debug=debug or debug_enabled())


def log_file() -> Path | None:
    """The log file this process writes (None before set-up or when the data folder is not writable)."""
    return current_log_file()


def _home(argv: Sequence[str]) -> Path | None:
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--home" and i + 1 < len(argv):
            return Path(argv[i + 1]).expanduser().resolve()
        if arg.startswith("--home="):
            return Path(arg.split("=", 1)[1]).expanduser().resolve()
    try:
        from vividflow.settings import load_settings

        return load_settings().storage.home
    except Exception:  # bad settings are the command's to report (SettingsError, exit 2), not the logger's
        return None


def _take_debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    end = argv.index("--") if "--" in argv else len(argv)
    if DEBUG_FLAG not in argv[:end]:
        return argv, False
    return [a for a in argv[:end] if a != DEBUG_FLAG] + argv[end:], True


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, bool) or not isinstance(code, int):
        return EXIT_INTERNAL
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
