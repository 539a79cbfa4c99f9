"""The error boundary (vividflow.boundary.run_cli), logging (vividflow.logs) and bounded input (vividflow.inputs)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vividflow.boundary import run_cli
from vividflow.errors import VividflowError, clip, one_line, short
from vividflow.inputs import InputError, check_out_path, copy_atomic, json_depth, parse_json, read_json
from vividflow.logs import current_log_file, setup_logging

REPO = Path(__file__).resolve().parents[1]


def _raiser(exc: BaseException):
    def cli(argv: list[str]) -> int:
        raise exc

    return cli


def _log_text(home: Path) -> str:
    return (home / "logs" / "vividflow.log").read_text()


def test_an_expected_error_is_one_line_and_exit_2(capsys, tmp_path):
    rc = run_cli(_raiser(VividflowError("the plan is bad\nsecond line")), [], prog="tool")
    err = capsys.readouterr().err
    assert rc == 2 and err == "tool: error: the plan is bad second line\n"
    assert "the plan is bad" in _log_text(Path(os.environ["VIVIDFLOW_HOME"]))


def test_a_bug_raising_valueerror_is_an_internal_error_with_its_traceback_in_the_log(capsys):
    rc = run_cli(_raiser(ValueError("x" * 500)), [], prog="tool")
    err = capsys.readouterr().err
    log_file = current_log_file()
    assert rc == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("tool: internal error: ValueError: xxx") and f"details in {log_file}" in err
    assert len(err) < 400
    text = log_file.read_text()
    assert "Traceback (most recent call last)" in text and "raise exc" in text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_prints_the_traceback_on_stderr(capsys, monkeypatch, how):
    argv = ["--debug", "a"] if how == "flag" else ["a"]
    if how == "env":
        monkeypatch.setenv("VIVIDFLOW_DEBUG", "1")
    seen = []

    def cli(args: list[str]) -> int:
        seen.append(args)
        raise KeyError("boom")

    rc = run_cli(cli, argv, prog="tool")
    err = capsys.readouterr().err
    assert rc == 1 and seen == [["a"]] and "Traceback (most recent call last)" in err and "KeyError: 'boom'" in err


def test_debug_after_a_double_dash_is_an_argument():
    seen = []
    assert run_cli(lambda a: seen.append(a) or 0, ["x", "--", "--debug"], prog="tool") == 0
    assert seen == [["x", "--", "--debug"]]


def test_ctrl_c_is_exit_130(capsys):
    assert run_cli(_raiser(KeyboardInterrupt()), [], prog="tool") == 130
    assert capsys.readouterr().err == "tool: interrupted\n"


def test_argparse_exits_and_return_codes_pass_through(capsys):
    import argparse

    def cli(argv):
        p = argparse.ArgumentParser(prog="tool")
        p.add_argument("--n", type=int)
        return p.parse_args(argv).n

    assert run_cli(cli, ["--n", "x"], prog="tool") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "tool: error: argument --n: invalid int value: 'x'" and len(err) == 2
    assert run_cli(cli, ["--n", "7"], prog="tool") == 7
    assert run_cli(cli, ["--help"], prog="tool") == 0
    assert run_cli(lambda a: None, [], prog="tool") == 0


def test_the_log_goes_to_the_home_given_on_the_command_line(tmp_path, capsys):
    home = tmp_path / "elsewhere"
    run_cli(_raiser(VividflowError("nope")), ["--home", str(home)], prog="tool")
    assert current_log_file() == home / "logs" / "vividflow.log" and "nope" in _log_text(home)


def test_an_unwritable_data_folder_still_gives_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc = run_cli(_raiser(RuntimeError("bug")), ["--home", str(blocker)], prog="tool")
    err = capsys.readouterr().err
    assert rc == 1 and len(err.splitlines()) == 1 and "run again with --debug" in err and "Traceback" not in err


def test_stderr_gets_one_line_per_warning_and_the_file_gets_the_traceback(tmp_path, capsys):
    path = setup_logging(tmp_path)
    handlers = list(logging.getLogger().handlers)
    assert setup_logging(tmp_path) == path and logging.getLogger().handlers == handlers  # the studio's reruns
    assert sum(getattr(h, "_vividflow", False) for h in handlers) == 2
    log = logging.getLogger("vividflow.test")
    log.info("quiet on stderr")
    try:
        raise OSError("disk\nfull")
    except OSError:
        log.warning("could not write", exc_info=True)
    log.error("a long one " + "y" * 5000)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "warning: could not write (OSError: disk full)" and len(err) == 2 and err[1].startswith("error: a long one yyy")
    assert len(err[1]) <= 1000
    text = path.read_text()
    assert "quiet on stderr" in text and "Traceback" in text and "OSError: disk" in text


def test_a_thread_that_dies_goes_to_the_log_not_pythons_fallback(tmp_path, capsys):
    path = setup_logging(tmp_path)

    def bad():
        raise RuntimeError("worker bug")

    t = threading.Thread(target=bad, name="vividflow-worker-test")
    t.start()
    t.join()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines() == ["error: vividflow-worker-test stopped (RuntimeError: worker bug)"]
    assert "Traceback" in path.read_text() and "worker bug" in path.read_text()


def test_internal_error_in_a_real_process_is_one_line_and_the_log_has_the_traceback(tmp_path):
    code = ("import sys; from vividflow.boundary import run_cli\n"
            "def cli(argv):\n    return int('not a number')\n"
            "sys.exit(run_cli(cli, prog='bug'))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIVIDFLOW_HOME": str(tmp_path / "home")}
    env.pop("VIVIDFLOW_DEBUG", None)
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr.splitlines() == [f"bug: internal error: ValueError: invalid literal for int() with base 10: "
                                     f"'not a number'; details in {tmp_path / 'home' / 'logs' / 'vividflow.log'}"]
    assert "Traceback" in (tmp_path / "home" / "logs" / "vividflow.log").read_text()
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "VIVIDFLOW_DEBUG": "1"},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback (most recent call last)" in p.stderr


# --- messages ---------------------------------------------------------------------------------------


def test_messages_quote_at_most_80_characters():
    assert short("x" * 10_000_000) == "'" + "x" * 78 + "…" and len(short(list(range(10**5)))) == 80
    assert short("ok") == "'ok'" and clip("abc", 2) == "a…" and one_line("a\nb\r\nc") == "a b  c"


# --- bounded JSON ------------------------------------------------------------------------------------


def test_json_depth_counts_containers_only():
    assert [json_depth(v) for v in (1, [], {"a": [1, {"b": "[[[["}]}, [[[[]]]])] == [0, 1, 3, 4]
    assert parse_json("[" * 32 + "]" * 32, what="x") is not None
    with pytest.raises(InputError, match="33 levels deep; at most 32"):
        parse_json("[" * 33 + "]" * 33, what="x")
    with pytest.raises(InputError, match="far too deep"):
        parse_json("[" * 100_000 + "]" * 100_000, what="x")


def test_special_files_are_refused_from_stat_without_reading(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: opening it would block forever
    for path, kind in ((fifo, "FIFO"), (tmp_path, "folder"), ("/dev/urandom", "device"), ("/dev/null", "device")):
        with pytest.raises(InputError, match=f"is a {kind}"):
            read_json(str(path), what="--plan")


def test_a_json_file_over_1_mb_is_refused(tmp_path):
    big = tmp_path / "big.json"
    big.write_text('"' + "a" * (1 << 20) + '"')
    with pytest.raises(InputError, match="at most 1.0 MB"):
        read_json(str(big), what="--plan")


# --- --out ------------------------------------------------------------------------------------------


def test_out_refuses_what_it_should_not_replace(tmp_path):
    store = tmp_path / "media"
    (store / "ab").mkdir(parents=True)
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"old")
    link = tmp_path / "link.mp4"
    link.symlink_to(store / "ab" / "x.mp4")
    for out, message in ((store / "ab" / "x.mp4", "inside the data folder"), (link, "inside the data folder"),
                         ("/dev/null", "is a device"), (tmp_path, "is a folder"), (existing, "add --force"),
                         (existing / "x.mp4", "is not a folder"), ("", "must be a file path")):
        with pytest.raises(InputError, match=message):
            check_out_path(str(out), protected=(store,))
    assert check_out_path(str(existing), force=True, protected=(store,)) == existing
    with pytest.raises(InputError, match="is a device"):
        check_out_path("/dev/null", force=True)


def test_copy_atomic_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"new" * 1000)
    dst = tmp_path / "out" / "clip.mp4"
    copy_atomic(src, dst)
    assert dst.read_bytes() == src.read_bytes() and os.listdir(dst.parent) == ["clip.mp4"]
    with pytest.raises(InputError, match="could not be written: No such file"):
        copy_atomic(tmp_path / "missing", dst)
    assert dst.read_bytes() == src.read_bytes() and os.listdir(dst.parent) == ["clip.mp4"]


def test_a_log_file_on_a_full_disk_neither_raises_on_flush_nor_on_close(tmp_path):
    """The file handler's buffered lines cannot be written (ENOSPC): logging goes on, closing still works."""
    import errno

    from vividflow.logs import _LazyRotatingFile

    class FullDisk:
        closed = False

        def write(self, text):
            return len(text)

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.flush()

    handler = _LazyRotatingFile(tmp_path / "logs" / "vividflow.log")
    handler.stream = FullDisk()
    handler.flush()  # no exception
    handler.close()
    assert handler.stream is None
