"""Two live processes on one store: a runner starting in one never fails the live jobs of the other;
once the other is SIGKILLed, the next runner fails its jobs as interrupted and a requeue runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.plan import MotionPlan
from generation.__main__ import main as cli
from generation.jobs import Runner
from storage import DEFAULT_INTERRUPTED_MESSAGE, open_store

REPO = Path(__file__).resolve().parents[2]

# Process A: a real runner whose backend writes half a video, then holds the job (running) until it is
# killed; a second job waits behind it (queued).
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from storage import open_store
    from generation.events import GenerationCancelled, Progress
    from generation.jobs import Runner

    class Stuck:
        name, model_id, max_area = "preview", "stuck-1", 64 * 64

        def load(self, cfg=None):
            pass

        def generate(self, plan, image, on_event, cancel, *, out_dir=None):
            (Path(out_dir) / ".tmp-export-half.mp4").write_bytes(b"\\0" * 1000)
            step = 0
            while not cancel.cancelled:
                step = step % 99 + 1
                on_event(Progress(stage="rendering", step=step, total=100))
                time.sleep(0.05)
            raise GenerationCancelled("cancelled")

    home, image, plan = sys.argv[1:4]
    store = open_store(home=home)
    runner = Runner(store, {"preview": Stuck()}, progress_interval_s=0.05)
    a = runner.submit(open(plan).read(), image, backend="preview")
    b = runner.submit(open(plan).read(), image, backend="preview")
    print(a.id, b.id, runner.owner, flush=True)
    runner.wait(a.id)
    """
)


def _wait_for(what, check, timeout=60.0, proc=None):
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process A exited while waiting for {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _dead_owner() -> str:
    """The owner id of a process that has exited (spawned and reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:1@00000000:0badc0de"


def test_a_second_process_leaves_live_jobs_alone_and_recovers_them_once_killed(tmp_path, gh):
    home = tmp_path / "home"
    image = tmp_path / "cat.png"
    gh.photo("chelsea", 96).save(image)
    plan = MotionPlan.create(template="animals", duration_s=0.5, seed=5,
                             motions=[{"subject": "tail", "action": "wag"}])
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(image), str(plan_file)], cwd=REPO,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        a_run, a_queued, a_owner = child.stdout.readline().split()
        a_run, a_queued = int(a_run), int(a_queued)
        store = open_store(home=home)
        staging_root = Path(store.media.root) / ".tmp"

        def rendering() -> bool:
            rec = store.get_generation(a_run)
            return rec.status == "running" and rec.progress is not None and rec.progress.stage == "rendering" \
                and any(staging_root.glob(f"job-{a_run}-*/.tmp-export-half.mp4"))

        _wait_for("A to render", rendering, proc=child)
        a_staging = next(staging_root.glob(f"job-{a_run}-*"))
        assert a_owner.split(":")[1] == str(child.pid)
        assert {store.get_generation(i).owner for i in (a_run, a_queued)} == {a_owner}

        # what a third, dead process left: a running job and its half-written staging folder
        img_id = store.get_generation(a_run).source_image_id
        dead = store.create_generation(None, plan.to_dict(), img_id, "preview", "fake-1", owner=_dead_owner())
        store.claim_generation(dead.id, owner=dead.owner)
        dead_staging = staging_root / f"job-{dead.id}-deadbeef"
        dead_staging.mkdir()
        (dead_staging / ".tmp-export-x.mp4").write_bytes(b"\0" * 100)

        # process B (this one) starts a runner, like the app starting while A renders
        fake = gh.FakeBackend()
        with Runner(store, {"preview": fake}) as runner_b:
            assert runner_b.interrupted == [dead.id]
            assert store.get_generation(dead.id).error == DEFAULT_INTERRUPTED_MESSAGE
            assert not dead_staging.exists()
            # ... and A's jobs are untouched and A keeps working on its running one
            assert a_staging.is_dir() and any(a_staging.iterdir())
            seen = store.get_generation(a_run).progress.updated_at
            _wait_for("A's next progress write", lambda: store.get_generation(a_run).progress.updated_at > seen,
                      proc=child)
            assert [store.get_generation(i).status for i in (a_run, a_queued)] == ["running", "queued"]
            # B renders a job of its own meanwhile
            mine = runner_b.submit(plan, image, backend="preview")
            assert runner_b.wait(mine.id, 30).status == "succeeded"
            assert store.get_generation(mine.id).owner == runner_b.owner != a_owner

        # `python -m generation render` while A renders: it recovers too, and must leave A alone
        assert cli(["--home", str(home), "render", "--image", str(image), "--plan", str(plan_file),
                    "--backend", "preview"]) == 0
        assert [store.get_generation(i).status for i in (a_run, a_queued)] == ["running", "queued"]
        assert child.poll() is None

        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    # A is gone: the next runner fails both of its jobs as interrupted, removes A's half-written files,
    # and a requeue runs them
    fake = gh.FakeBackend()
    with Runner(store, {"preview": fake}) as runner_c:
        assert runner_c.interrupted == [a_run, a_queued]
        for i in (a_run, a_queued):
            rec = store.get_generation(i)
            assert rec.status == "failed" and rec.error == DEFAULT_INTERRUPTED_MESSAGE
        assert not a_staging.exists()
        requeued = runner_c.requeue_interrupted()
        assert [r.owner for r in requeued] == [runner_c.owner] * 2
        finals = [runner_c.wait(i, 30) for i in (a_run, a_queued)]
    assert [f.status for f in finals] == ["succeeded", "succeeded"], [f.error for f in finals]
    assert finals[0].attempts == 2 and finals[1].attempts == 1 and Path(finals[0].video_path).is_file()
    store.close()
