"""Two live processes on one store: a runner in one never fails the live jobs of the other (their lease is
renewed); once the other is SIGKILLed, the runner that keeps running recovers its jobs within two lease
periods — no /proc, no host names: the lease alone — and a requeue runs them."""

from __future__ import annotations

import os
import signal
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
LEASE_S = 0.5  # B's lease (it recovers every LEASE_S / 2)
A_LEASE_S = 1.0  # A's: short, but long enough that A renews in time on a loaded test machine

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

    home, image, plan, lease_s = sys.argv[1:5]
    store = open_store(home=home)
    runner = Runner(store, {"preview": Stuck()}, progress_interval_s=0.05, lease_s=float(lease_s))
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


def test_a_second_process_leaves_live_jobs_alone_and_recovers_them_once_killed(tmp_path, gh):
    home = tmp_path / "home"
    image = tmp_path / "cat.png"
    gh.photo("chelsea", 96).save(image)
    plan = MotionPlan.create(template="animals", duration_s=0.5, seed=5,
                             motions=[{"subject": "tail", "action": "wag"}])
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", CHILD, str(home), str(image), str(plan_file), str(A_LEASE_S)]
    child = subprocess.Popen(argv, cwd=REPO,
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

        # what a third process left when it died in another container: a running job whose lease ran out, and
        # its half-written staging folder (its host name says nothing about it: only the lease counts)
        img_id = store.get_generation(a_run).source_image_id
        dead = store.create_generation(None, plan.to_dict(), img_id, "preview", "fake-1", owner="gone-box:1:0badc0de",
                                       lease_s=0.1)
        store.claim_generation(dead.id, owner=dead.owner, lease_s=0.1)
        dead_staging = staging_root / f"job-{dead.id}-deadbeef"
        dead_staging.mkdir()
        (dead_staging / ".tmp-export-x.mp4").write_bytes(b"\0" * 100)
        time.sleep(0.15)

        # process B (this one) starts a runner, like the app starting while A renders; it keeps running
        fake = gh.FakeBackend()
        runner_b = Runner(store, {"preview": fake}, lease_s=LEASE_S)
        try:
            # the dead job is recovered by B's start or by A's periodic recovery, whichever comes first
            _wait_for("the dead job's recovery", lambda: store.get_generation(dead.id).status == "failed", timeout=5)
            assert runner_b.interrupted in ([dead.id], [])
            assert store.get_generation(dead.id).error.startswith("interrupted: its worker stopped renewing")
            _wait_for("the dead job's staging folder to go", lambda: not dead_staging.exists(), timeout=5)
            # ... and A's jobs are untouched and A keeps working on its running one, over several of B's
            # recovery passes (every LEASE_S / 2)
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
            time.sleep(2 * LEASE_S)  # two more lease periods of B's recovery
            assert [store.get_generation(i).status for i in (a_run, a_queued)] == ["running", "queued"]
            assert child.poll() is None

            child.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            child.wait(10)

            # A is gone: B, still running, fails both of its jobs as interrupted within two of A's lease periods
            # (a quarter second allowed for a loaded machine), removes A's half-written files ...
            _wait_for("B to recover A's jobs", lambda: {store.get_generation(i).status for i in (a_run, a_queued)}
                      == {"failed"}, timeout=10)
            elapsed = time.monotonic() - killed_at
            assert elapsed <= 2 * A_LEASE_S + 0.25, f"recovered {elapsed:.2f} s after the kill"
            assert store.get_generation(a_run).error.startswith("interrupted: its worker stopped renewing its lease")
            assert store.get_generation(a_queued).error == DEFAULT_INTERRUPTED_MESSAGE
            _wait_for("A's staging folder to go", lambda: not a_staging.exists(), timeout=5)
            # ... and a requeue runs them
            requeued = [runner_b.requeue(i) for i in (a_run, a_queued)]
            assert [r.owner for r in requeued] == [runner_b.owner] * 2
            finals = [runner_b.wait(i, 30) for i in (a_run, a_queued)]
        finally:
            runner_b.close(cancel_running=True)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert [f.status for f in finals] == ["succeeded", "succeeded"], [f.error for f in finals]
    assert finals[0].attempts == 2 and finals[1].attempts == 1 and Path(finals[0].video_path).is_file()
    store.close()
