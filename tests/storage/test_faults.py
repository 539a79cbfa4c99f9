"""The storage part of the bad-input corpus: bad database URLs, data folders that cannot hold a database, damaged
or newer databases, a database locked by a second process, a read-only folder and a full disk.

Each case runs `python -m storage` (its `main`, in this process; two cases run the real command) and asserts:
the exit code, one clear line on stderr naming what is wrong, no "Traceback" anywhere, and afterwards the
database passes `PRAGMA integrity_check`, the earlier records are intact, no job is left queued or running,
no media file is left without its row — or, where the database was damaged or never existed, that it was not
touched and that no 0-byte database was created. Read-only folders and full disks need root (a read-only or
tiny tmpfs mount); elsewhere those cases skip and say why.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage import (
    DatabaseBusyError,
    ReadOnlyStorageError,
    StorageFullError,
    open_store,
)
from storage.__main__ import main as storage_main
from tests.storage.conftest import make_plan, png_bytes

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
BUSY_ENV = {"VIVIDFLOW_DB_BUSY_TIMEOUT_S": "0.2"}
TABLES = ("conversations", "messages", "source_images", "generations", "schema_migrations")


# --- the seeded database every case starts from ----------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory) -> Path:
    """A data folder with earlier records: a conversation, a message, an image and a finished generation."""
    home = tmp_path_factory.mktemp("seeded") / "home"
    with open_store(home=home) as store:
        conv = store.create_conversation("kept")
        store.append_message(conv.id, "user", "make the sea move")
        img = store.add_image(png_bytes(), filename="sea.png")
        g = store.create_generation(conv.id, make_plan(), img.id, "preview", "m")
        store.claim_generation(g.id)
        video = store.media.put_bytes(b"an earlier video", ".mp4")
        store.finish_generation(g.id, "succeeded", video_path=video.path)
    return home


@pytest.fixture
def seeded(seeded_template, tmp_path) -> Path:
    home = tmp_path / "seeded"
    shutil.copytree(seeded_template, home)
    return home


def rows(db: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}
    finally:
        con.close()


def assert_intact(home: Path, before: dict[str, list[tuple]]) -> None:
    """Integrity check passes, earlier records intact, no job queued/running, no media without its row."""
    db = home / "vividflow.db"
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        active = con.execute("SELECT count(*) FROM generations WHERE status IN ('queued', 'running')").fetchone()[0]
    finally:
        con.close()
    assert active == 0
    assert rows(db) == before
    with open_store(home=home) as store:
        assert store.orphan_media(min_age_s=0) == []
        tmp = store.media.root / ".tmp"
        assert not tmp.exists() or not any(tmp.iterdir())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the cases --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: `prepare(tmp_path, seeded_home)` returns (home, env); `argv` is given to `python -m storage`
    ({home} is replaced); `after` is 'intact' (the seeded database is unharmed), 'untouched' (the database file
    is byte for byte what it was) or 'no-db' (no database file was created)."""

    id: str
    prepare: Callable[[Path, Path], tuple[Path, dict[str, str]]]
    argv: tuple[str, ...]
    words: str  # what the one line on stderr must say
    after: str = "intact"
    code: int = 2
    marks: tuple = field(default=())


def fresh(env: dict[str, str] | None = None) -> Callable[[Path, Path], tuple[Path, dict[str, str]]]:
    return lambda tmp, seeded: (tmp / "fresh", dict(env or {}))


def url_case(name: str, url: str | Callable[[Path], str], words: str) -> list[Case]:
    """A bad URL from the environment (info) and from --url (recover), on a fresh data folder."""
    def env_prep(tmp: Path, seeded: Path) -> tuple[Path, dict[str, str]]:
        return tmp / "fresh", {"VIVIDFLOW_DB_URL": url(tmp) if callable(url) else url}

    cases = [Case(f"url-env-{name}", env_prep, ("info",), words, after="no-db")]
    if not callable(url):
        cases.append(Case(f"url-arg-{name}", fresh(), ("recover", "--url", url), words, after="no-db"))
        cases.append(Case(f"url-arg-gc-{name}", fresh(), ("gc", "--url", url), words, after="no-db"))
    return cases


def _file(tmp: Path) -> Path:
    f = tmp / "a-file"
    f.write_text("not a folder")
    return f


URLS = [
    *url_case("garbage", "garbage", "is not a database URL"),
    *url_case("no-scheme", "/tmp/vividflow.db", "is not a database URL"),
    *url_case("bad-port", "postgresql+psycopg://vf@127.0.0.1:notaport/db", "is not a database URL"),
    *url_case("unknown-dialect", "foo://x/y", "unknown kind of database"),
    *url_case("unknown-driver", "sqlite+nodriver:///x.db", "unknown kind of database"),
    *url_case("missing-driver-mysql", "mysql+pymysql://u@h/db", "is not installed"),
    *url_case("missing-driver-psycopg2", "postgresql+psycopg2://u@127.0.0.1:1/db", "is not installed"),
    *url_case("unreachable", "postgresql+psycopg://vf@127.0.0.1:1/vividflow", "check that the server is running"),
    *url_case("sqlite-file-is-folder", lambda tmp: f"sqlite:///{tmp}", "is a folder"),
    *url_case("sqlite-under-a-file", lambda tmp: f"sqlite:///{_file(tmp)}/x.db", "is a file, not a folder"),
]


def home_is_file(tmp: Path, seeded: Path) -> tuple[Path, dict[str, str]]:
    return _file(tmp), {}


def home_under_file(tmp: Path, seeded: Path) -> tuple[Path, dict[str, str]]:
    return _file(tmp) / "home", {}


def db_is_folder(tmp: Path, seeded: Path) -> tuple[Path, dict[str, str]]:
    home = tmp / "fresh"
    (home / "vividflow.db").mkdir(parents=True)
    return home, {}


def media_is_file(tmp: Path, seeded: Path) -> tuple[Path, dict[str, str]]:
    return tmp / "fresh", {"VIVIDFLOW_MEDIA_ROOT": str(_file(tmp))}


FOLDERS = [
    Case("home-is-a-file-info", home_is_file, ("info",), "is a file, not a folder", after="no-db"),
    Case("home-is-a-file-recover", home_is_file, ("recover",), "is a file, not a folder", after="no-db"),
    Case("home-is-a-file-gc", home_is_file, ("gc", "--yes"), "is a file, not a folder", after="no-db"),
    Case("home-under-a-file", home_under_file, ("info",), "a file stands where a folder", after="no-db"),
    Case("db-is-a-folder", db_is_folder, ("info",), "is a folder", after="no-db"),
    Case("media-root-is-a-file", media_is_file, ("info",), "is a file, not a folder", after="no-db"),
    Case("busy-timeout-not-a-number", fresh({"VIVIDFLOW_DB_BUSY_TIMEOUT_S": "soon"}), ("info",),
         "VIVIDFLOW_DB_BUSY_TIMEOUT_S", after="no-db"),
    Case("busy-timeout-negative", fresh({"VIVIDFLOW_DB_BUSY_TIMEOUT_S": "-1"}), ("info",),
         "VIVIDFLOW_DB_BUSY_TIMEOUT_S", after="no-db"),
    Case("gc-negative-min-age", lambda tmp, seeded: (seeded, {}), ("gc", "--min-age", "-5"), "--min-age"),
]


def damaged(how: Callable[[Path], None]) -> Callable[[Path, Path], tuple[Path, dict[str, str]]]:
    def prep(tmp: Path, seeded: Path) -> tuple[Path, dict[str, str]]:
        how(seeded / "vividflow.db")
        return seeded, {}

    return prep


def _truncate(size: Callable[[int], int]) -> Callable[[Path], None]:
    def cut(db: Path) -> None:
        with open(db, "r+b") as f:
            f.truncate(size(db.stat().st_size))
    return cut


def _overwrite(offset: int, data: bytes) -> Callable[[Path], None]:
    def write(db: Path) -> None:
        with open(db, "r+b") as f:
            f.seek(offset)
            f.write(data)
    return write


DAMAGE = {
    "random-bytes": lambda db: db.write_bytes(os.urandom(20_000)),
    "text-file": lambda db: db.write_text("these are my notes, not a database\n" * 50),
    "an-image": lambda db: db.write_bytes(png_bytes() * 20),
    "truncated-header": _truncate(lambda n: 60),
    "truncated-half": _truncate(lambda n: n // 2),
    "first-page-only": _truncate(lambda n: 4096),
    "zeroed-page": _overwrite(4096, b"\0" * 4096),
    "wrong-magic": _overwrite(0, b"NotSQLite format"),
}
CORRUPT = [
    Case(f"corrupt-{name}-{cmd}", damaged(how), (cmd,), "is damaged or is not a VividFlow database", after="untouched")
    for name, how in DAMAGE.items()
    for cmd in ("info", "recover")
]


def newer(version: int, name: str) -> Callable[[Path, Path], tuple[Path, dict[str, str]]]:
    def prep(tmp: Path, seeded: Path) -> tuple[Path, dict[str, str]]:
        con = sqlite3.connect(seeded / "vividflow.db")
        with con:
            con.execute("INSERT OR REPLACE INTO schema_migrations (version, name, applied_at) "
                        "VALUES (?, ?, '2030-01-01 00:00:00')", (version, name))
        con.close()
        return seeded, {}

    return prep


NEWER = [
    *(Case(f"newer-schema-{cmd}", newer(99, "m099_from_the_future"), (cmd,), "written by a newer VividFlow",
           after="untouched") for cmd in ("info", "recover", "gc")),
    Case("renamed-migration", newer(2, "m002_someone_elses"), ("info",), "records migration 2 as", after="untouched"),
]

CASES = URLS + FOLDERS + CORRUPT + NEWER


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_storage_corpus(case: Case, tmp_path, seeded, monkeypatch):
    home, env = case.prepare(tmp_path, seeded)
    db = home / "vividflow.db" if home.is_dir() else None
    before = rows(db) if case.after == "intact" else None
    sums = {p.name: digest(p) for p in home.iterdir() if p.is_file()} if case.after == "untouched" else None
    code, out, err = run_main(case.argv, home, env, monkeypatch)
    assert_one_line(code, out, err, case.code, case.words)
    if case.after == "intact":
        assert_intact(home, before)
    elif case.after == "untouched":
        assert {p.name: digest(p) for p in home.iterdir() if p.is_file()} == sums
    else:  # no database file appeared (and none of 0 bytes) anywhere under the data folder
        if home.is_dir():
            assert not [p for p in home.rglob("vividflow.db*") if p.is_file()]


def run_main(argv: tuple[str, ...], home: Path, env: dict[str, str], monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setenv("VIVIDFLOW_HOME", str(home))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = storage_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_one_line(code: int, out: str, err: str, expected_code: int, words: str) -> None:
    assert "Traceback" not in out + err
    assert code == expected_code, (out, err)
    if expected_code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "error: " in lines[0] and words in lines[0], err
        assert len(lines[0]) < 500, lines[0]


def test_the_real_command_prints_one_line_and_no_traceback(tmp_path):
    """A corpus case through `python -m storage` itself, in a fresh process."""
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "vividflow.db").write_text("notes")
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIVIDFLOW_HOME": str(tmp_path / "h")}
    proc = subprocess.run([sys.executable, "-m", "storage", "gc"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "is damaged" in proc.stderr
    assert (tmp_path / "h" / "vividflow.db").read_text() == "notes"


# --- a database locked by a second process ----------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("UPDATE conversations SET title = title")
    print("locked", flush=True)
    sys.stdin.read()  # hold the write lock until the test closes our stdin
    con.execute("ROLLBACK")
    """
)


@pytest.fixture
def locked(seeded):
    """The seeded database, its write lock held by another process for the length of the test."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(seeded / "vividflow.db")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield seeded
    finally:
        proc.stdin.close()
        proc.wait(10)


LOCKED = [
    ("recover", ("recover",), 2),
    ("recover-all", ("recover", "--all"), 2),
    ("info-reads-while-locked", ("info",), 0),
    ("gc-dry-run-reads-while-locked", ("gc",), 0),
]


@pytest.mark.parametrize("argv,code", [c[1:] for c in LOCKED], ids=[c[0] for c in LOCKED])
def test_locked_database_is_busy_not_stuck(locked, argv, code, monkeypatch):
    before = rows(locked / "vividflow.db")
    out_code, out, err = run_main(argv, locked, BUSY_ENV, monkeypatch)
    assert_one_line(out_code, out, err, code, "the database is busy (another process is writing); try again")


def test_locked_database_refuses_writes_and_leaves_no_file(locked, monkeypatch):
    monkeypatch.setenv("VIVIDFLOW_DB_BUSY_TIMEOUT_S", "0.2")
    before = rows(locked / "vividflow.db")
    with open_store(home=locked) as store:
        files = sorted(p for p in store.media.root.rglob("*") if p.is_file())
        with pytest.raises(DatabaseBusyError, match=r"the database is busy \(another process is writing\); try again"):
            store.add_image(png_bytes(7, 5, (1, 2, 3)), filename="new.png")
        with pytest.raises(DatabaseBusyError, match="busy"):
            store.create_generation(1, make_plan(), None, "preview", "m")
        with pytest.raises(DatabaseBusyError, match="busy"):
            store.create_conversation("new")
        assert sorted(p for p in store.media.root.rglob("*") if p.is_file()) == files  # no file without its row
    assert rows(locked / "vividflow.db") == before


# --- a read-only folder, a full disk (root: tmpfs mounts) -------------------------------------------------

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to mount a read-only or tiny tmpfs; as another "
                                "user permission bits would do for read-only, but a full disk cannot be made")


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> None:
    """Fill the disk holding `folder` to the last byte."""
    for name, chunk in (("filler", 65536), ("filler-small", 512)):
        with contextlib.suppress(OSError), open(folder / name, "wb") as f:
            while True:
                f.write(b"\0" * chunk)
                f.flush()


@pytest.mark.parametrize("argv", [("info",), ("recover",)], ids=["info", "recover"])
def test_read_only_folder_is_named(tmp_path, seeded_template, argv, monkeypatch):
    """As root: a read-only tmpfs (permission bits do not bind root); as another user: a folder without write
    permission."""
    with contextlib.ExitStack() as stack:
        if IS_ROOT:
            mnt = stack.enter_context(tmpfs(tmp_path / "ro", "8m"))
        else:
            mnt = tmp_path / "ro"
            mnt.mkdir()
        home = mnt / "home"
        shutil.copytree(seeded_template, home)
        before = rows(home / "vividflow.db")
        if IS_ROOT:
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        else:
            home.chmod(0o555)
        code, out, err = run_main(argv, home, {}, monkeypatch)
        assert_one_line(code, out, err, 2, "is read-only")
        if IS_ROOT:
            subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        else:
            home.chmod(0o755)
        assert_intact(home, before)


@needs_root
def test_read_only_folder_for_a_new_database_is_named(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "ro", "1m") as mnt:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        code, out, err = run_main(("info",), mnt / "home", {}, monkeypatch)
        assert_one_line(code, out, err, 2, "read-only file system")
        assert not any(mnt.iterdir())


@needs_root
def test_full_disk_before_the_database_exists_leaves_no_empty_database(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "full", "256k") as mnt:
        (mnt / "home").mkdir()
        _fill(mnt)
        code, out, err = run_main(("info",), mnt / "home", {}, monkeypatch)
        for name in ("filler", "filler-small"):  # room again, for the log file's last flush at teardown
            (mnt / name).unlink()
        assert_one_line(code, out, err, 2, "full")
        assert not [p for p in (mnt / "home").rglob("vividflow.db*")]


@needs_root
def test_full_disk_mid_write_keeps_the_database_and_leaves_no_partial_media(tmp_path, seeded_template, monkeypatch):
    with tmpfs(tmp_path / "full", "2m") as mnt:
        home = mnt / "home"
        shutil.copytree(seeded_template, home)
        before = rows(home / "vividflow.db")
        with open_store(home=home) as store:
            media_before = sorted(p for p in store.media.root.rglob("*") if p.is_file())
            _fill(mnt)
            with pytest.raises(StorageFullError, match="no space left on the disk holding the media folder"):
                store.add_image(os.urandom(300_000), width=8, height=8, format="png")
            with pytest.raises((StorageFullError, ReadOnlyStorageError), match="full|no space"):
                for i in range(400):  # rows until the database file cannot grow
                    store.create_conversation("x" * 4000)
            assert sorted(p for p in store.media.root.rglob("*") if p.is_file()) == media_before
        (mnt / "filler").unlink()
        (mnt / "filler-small").unlink()
        with open_store(home=home) as store:  # room again: the database opens, and the committed rows are there
            kept = {c.title for c in store.list_conversations(limit=500)}
            assert "kept" in kept
        con = sqlite3.connect(home / "vividflow.db")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.execute("DELETE FROM conversations WHERE title != 'kept'")
        con.commit()
        con.close()
        assert rows(home / "vividflow.db") == before


# --- PostgreSQL: a row lock held by another connection -----------------------------------------------------


def test_postgresql_row_lock_is_busy_not_stuck(postgres_url, tmp_path, monkeypatch):
    import sqlalchemy as sa

    monkeypatch.setenv("VIVIDFLOW_DB_BUSY_TIMEOUT_S", "0.3")
    with open_store(url=postgres_url, home=tmp_path / "h") as store:
        g = store.create_generation(None, make_plan(), None, "preview", "m")
        other = sa.create_engine(postgres_url)
        with other.connect() as con:
            tx = con.begin()
            con.execute(sa.text("SELECT id FROM generations WHERE id = :i FOR UPDATE"), {"i": g.id})
            with pytest.raises(DatabaseBusyError, match="busy"):
                store.request_cancel(g.id)
            tx.rollback()
        other.dispose()
        assert store.request_cancel(g.id).status == "cancelled"
