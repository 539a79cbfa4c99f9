"""`python -m storage info` and the lightness of `import storage` (checked in fresh subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from storage import LATEST_VERSION, Migration, open_store
from storage.migrations import MIGRATIONS

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "VIVIDFLOW_DB_URL"}
    full_env.update(VIVIDFLOW_HOME=str(home), **env)
    return subprocess.run([sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=60)


def test_info_text(tmp_path, make_plan):
    home = tmp_path / "home"
    with open_store(home=home) as store:
        conv = store.create_conversation("c")
        store.append_message(conv.id, "user", "hi")
        store.create_generation(conv.id, make_plan(), None, "preview", "m")
    proc = run(["-m", "storage", "info"], home)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"database file:  {(home / 'vividflow.db').resolve()}" in out
    assert f"schema version: {LATEST_VERSION} (latest known: {LATEST_VERSION})" in out
    assert "  generations     1" in out and "  messages        1" in out and "  queued          1" in out


def test_info_json_with_url_override(tmp_path):
    db = tmp_path / "elsewhere.db"
    proc = run(["-m", "storage", "info", "--json"], tmp_path / "home", VIVIDFLOW_DB_URL=f"sqlite:///{db}")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["database_path"] == str(db.resolve()) and info["schema_version"] == LATEST_VERSION
    assert info["counts"] == {"conversations": 0, "messages": 0, "source_images": 0, "generations": 0}
    assert info["media_root"] == str((tmp_path / "home" / "media").resolve())


def test_info_refuses_a_newer_database(tmp_path):
    home = tmp_path / "home"
    newer = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "m_future", lambda conn: None))
    open_store(home=home, migrations=newer).close()
    proc = run(["-m", "storage", "info"], home)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "error: the database" in proc.stderr and "newer VividFlow" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_storage_source_imports_nothing_of_ours():
    for path in (REPO / "storage").glob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert not stripped.split()[1].startswith(("agent", "generation", "ui", "streamlit")), (
                    f"{path.name}: {stripped}")


def test_recover_marks_expired_and_unowned_jobs_and_all_with_flag(tmp_path, make_plan):
    import time

    from storage.owner import current_owner

    home = tmp_path / "home"
    with open_store(home=home) as store:
        unowned = store.create_generation(None, make_plan(), None, "preview", "m").id
        gone = store.create_generation(None, make_plan(), None, "preview", "m", owner="old-container:12:ab",
                                       lease_s=0.1).id  # its lease runs out: whatever host it was on
        mine = store.create_generation(None, make_plan(), None, "preview", "m", owner=current_owner(),
                                       lease_s=600).id  # a live lease
    time.sleep(0.2)
    proc = run(["-m", "storage", "recover"], home)
    assert proc.returncode == 0, proc.stderr
    assert f"#{unowned}" in proc.stdout and f"#{gone}" in proc.stdout and f"#{mine}" not in proc.stdout
    with open_store(home=home) as store:
        assert [store.get_generation(i).status for i in (unowned, gone, mine)] == ["failed", "failed", "queued"]
    proc = run(["-m", "storage", "recover", "--all"], home)
    assert proc.returncode == 0 and f"#{mine}" in proc.stdout
    with open_store(home=home) as store:
        assert {store.get_generation(i).status for i in (unowned, gone, mine)} == {"failed"}
    assert "nothing to recover" in run(["-m", "storage", "recover"], home).stdout
