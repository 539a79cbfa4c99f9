"""The studio in a real browser, shared by tests/ui/test_browser.py and devtools/scripted_visit.py: `streamlit run
streamlit_app.py` as the README starts it (the shipped config, its own data folder, the preview backend, offline),
on a free loopback port and stopped by its PID; Debian's Chromium found on this machine and launched headless
with the flags below (no browser download, no network of its own).

Nothing here imports streamlit or playwright; the caller launches the browser with `CHROMIUM_FLAGS`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
SERVER_START_S = 60


def find_chromium(override: str | None = None) -> str:
    """The Chromium to drive: `override` (a path) if given, else `chromium` on PATH, else Debian's place."""
    return override or shutil.which("chromium") or "/usr/bin/chromium"


def missing_browser_parts(chromium: str) -> list[str]:
    """What this machine lacks to drive a browser ([] when nothing)."""
    missing = []
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        missing.append(f"Chromium ({chromium})")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    return missing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer on {url} within {SERVER_START_S} s:\n{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def streamlit_server(folder: Path, *, address: str | None = None,
                     env: Mapping[str, str] | None = None) -> Iterator[types.SimpleNamespace]:
    """`streamlit run streamlit_app.py` with its data folder in `folder`/home and its output in
    `folder`/streamlit.log, stopped by PID at the end. Without `address` it listens where the shipped
    .streamlit/config.toml says (as the README's command does). Yields url, home, log_path, pid, port."""
    port = free_port()
    home = folder / "home"
    log_path = folder / "streamlit.log"
    env = {**os.environ, "VIVIDFLOW_HOME": str(home), "VIVIDFLOW_BACKEND": "preview", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), **(env or {})}
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
        "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",  # the shipped .streamlit/config.toml: no file watcher
        *(["--server.address", address] if address else []),
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path)
        yield types.SimpleNamespace(url=url, home=home, log_path=log_path, pid=proc.pid, port=port)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
