"""Reliability: SIGKILL a process mid-render, then start a runner again once its lease has run out — nothing
is lost or half-kept."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.plan import MotionPlan
from generation.jobs import Runner
from generation.preview import PreviewBackend
from storage import open_store

REPO = Path(__file__).resolve().parents[2]

# The render process: a real runner and the real preview renderer, slowed down per frame so the
# test can kill it while frames are being streamed into ffmpeg (a half-written MP4 exists then).
CHILD = textwrap.dedent(
    """
    import sys, time
    from storage import open_store
    from generation.jobs import Runner
    from generation.preview import PreviewBackend

    class SlowPreview(PreviewBackend):
        def generate(self, plan, image, on_event, cancel, *, out_dir=None):
            def slow(event):
                time.sleep(0.05)
                on_event(event)
            return super().generate(plan, image, slow, cancel, out_dir=out_dir)

    home, image, plan = sys.argv[1:4]
    store = open_store(home=home)
    runner = Runner(store, {"preview": SlowPreview(max_area=320 * 192)}, progress_interval_s=0.05, lease_s=0.5)
    record = runner.submit(open(plan).read(), image, backend="preview")
    print(record.id, flush=True)
    runner.wait(record.id)
    print("finished", flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_mid_render_then_recover_and_requeue(tmp_path, gh):
    home = tmp_path / "home"
    image = tmp_path / "rocket.png"
    gh.photo("rocket").save(image)
    plan = tmp_path / "plan.json"
    plan.write_text(MotionPlan.create(template="landscape", duration_s=3.0, camera={"move": "pan_right"},
                                      motions=[{"subject": "clouds", "action": "drift"}]).to_json())
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, str(script), str(home), str(image), str(plan)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job_id = int(child.stdout.readline())
        store = open_store(home=home)
        staging_root = Path(store.media.root) / ".tmp"
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline:
            rec = store.get_generation(job_id)
            partial = [p for p in staging_root.rglob("*.mp4") if p.stat().st_size > 0]
            if rec.status == "running" and rec.progress and rec.progress.stage == "rendering" \
                    and (rec.progress.step or 0) >= 15 and partial:
                break
            assert child.poll() is None, child.stderr.read()
            time.sleep(0.02)
        else:
            pytest.fail("the render never got going")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    # the dead process left: a running record and a half-written MP4 in its staging folder
    assert store.get_generation(job_id).status == "running"
    assert partial and all(staging_root in p.parents for p in partial)
    media_root = Path(store.media.root)
    published = [p for p in media_root.rglob("*.mp4") if staging_root not in p.parents]
    assert published == []  # no half-written video where videos live
    store.close()
    # the database survived the kill
    con = sqlite3.connect(home / "vividflow.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    # once its lease (0.5 s) has run out, a new runner marks it interrupted, removes the half-written files,
    # and a requeue succeeds
    store = open_store(home=home)
    lease_end = store.get_generation(job_id).lease_expires_at
    time.sleep(max(0.0, (lease_end - datetime.now(UTC)).total_seconds()) + 0.05)
    with Runner(store, {"preview": PreviewBackend(max_area=320 * 192)}) as runner:
        assert runner.interrupted == [job_id]
        rec = store.get_generation(job_id)
        assert rec.status == "failed" and rec.error.startswith("interrupted: its worker stopped renewing its lease")
        assert not any(staging_root.rglob("*.mp4"))
        runner.requeue(job_id)
        final = runner.wait(job_id, timeout=120)
    assert final.status == "succeeded", final.error
    assert final.attempts == 2 and Path(final.video_path).is_file()
    assert [p for p in media_root.rglob("*.mp4")] == [Path(final.video_path)]
    store.close()
