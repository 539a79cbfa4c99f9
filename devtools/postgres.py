"""A throwaway PostgreSQL server from this machine's own binaries, for tests and benchmarks.

    pg = TempPostgres.start()            # initdb in a temporary folder, pg_ctl start on a free loopback port
    url = pg.create_database()           # postgresql+psycopg://vf@127.0.0.1:<port>/t_1, empty
    pg.empty_database("t_1")             # every row deleted again, ids from 1
    pg.stop()                            # -m immediate, and the folder is removed

Debian's server binaries live in /usr/lib/postgresql/<version>/bin (`find_bin_dir`). PostgreSQL refuses to
run as root, so as root the server runs as the `postgres` user (through `su`).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "postgres"  # who runs the server when we are root
DB_USER = "vf"
MISSING = "PostgreSQL server binaries not found (Debian: apt-get install postgresql)"
# durability off (the data is thrown away); a zone other than UTC, so that a time read or written without
# its zone shows up in the tests as a shifted time
_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            "-c timezone=Asia/Kolkata")


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl, else pg_ctl's folder on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name))
    for d in reversed(versions):
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and (Path(found).parent / "initdb").is_file() else None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    """A running server in `root`; `create_database()` gives each caller a database of its own."""

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir, self.root, self.port = bin_dir, root, port
        self.data = root / "pg"
        self._names = itertools.count(1)

    @classmethod
    def start(cls, bin_dir: Path | None = None) -> TempPostgres:
        """initdb + pg_ctl start (about 2 s); raises RuntimeError with the server's log when it fails."""
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(MISSING)
        if os.geteuid() == 0:
            pwd.getpwnam(SERVER_USER)  # KeyError: no user to run the server as
        root = Path(tempfile.mkdtemp(prefix="vividflow-pg-"))
        if os.geteuid() == 0:
            root.chmod(0o777)  # the server user writes its data, socket and log here
        server = cls(bin_dir, root, _free_port())
        try:
            server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", DB_USER, "-E", "UTF8",
                        "--locale=C.UTF-8", "--no-sync")
            options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 {_OPTIONS}"
            server._run("pg_ctl", "-D", str(server.data), "-o", options, "-l", str(root / "server.log"), "-w",
                        "start")
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            cmd = ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        if out.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{tool} failed ({out.returncode}): {out.stderr.strip()}\n{tail}".strip())

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database (`t_<n>`, or `name`); returns its URL."""
        name = name or f"t_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def empty_database(self, name: str, keep: tuple[str, ...] = ()) -> None:
        """Delete every row of every table but `keep`, and restart the id sequences: a used database made
        fresh in milliseconds (no connection may hold a transaction open on it)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname=name, autocommit=True) as conn:
            tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                      if t not in keep]
            if tables:
                conn.execute("SET lock_timeout = '10s'")  # an error, not a hang, if a test left a transaction open
                names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))

    def stop(self) -> None:
        """Stop at once (nothing to keep) and remove the folder."""
        try:
            if (self.data / "postmaster.pid").is_file():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
