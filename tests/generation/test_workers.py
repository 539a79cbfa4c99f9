"""`python -m generation worker`: worker processes sharing one PostgreSQL queue. Every job finishes exactly
once; the job of a worker killed mid-render is retried by the other once its lease has run out."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.plan import MotionPlan
from generation.jobs import Runner
from storage import open_store

REPO = Path(__file__).resolve().parents[2]
LEASE_S = "1"


def _worker(url: str, home: Path, max_area: int) -> subprocess.Popen:
    """A worker process serving previews; returns once it is polling the queue."""
    cmd = [sys.executable, "-m", "generation", "--url", url, "--home", str(home), "worker", "--backend", "preview",
           "--lease-s", LEASE_S, "--poll-s", "0.1", "--preview-max-area", str(max_area)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = proc.stdout.readline()
    assert ready.startswith("worker "), ready + proc.stderr.read()
    return proc


def _stop(procs: list[subprocess.Popen]) -> list[str]:
    """SIGTERM (running jobs finish first); each worker's output."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode in (0, -signal.SIGKILL), err
        outputs.append(out)
    return outputs


def _succeeded(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"^#(\d+) succeeded", output, re.M)]


@pytest.fixture
def picture(gh, tmp_path):
    p = tmp_path / "cat.jpg"
    gh.photo("chelsea", 96).save(p)
    return p


def test_two_workers_finish_twenty_jobs_from_four_threads_each_exactly_once(tmp_path, postgres_url, picture, gh):
    home = tmp_path / "home"
    workers = [_worker(postgres_url, home, 128 * 96) for _ in range(2)]
    try:
        with open_store(url=postgres_url, home=home) as store:
            submitter = Runner(store, devices=(), shared_queue=True)  # the studio under VIVIDFLOW_WORKERS=external
            ids = gh.submit_from_threads(submitter, picture)
            finals = [submitter.wait(i, timeout=120) for i in ids]
    finally:
        outputs = _stop(workers)
    assert len(ids) == 20 and all(f.status == "succeeded" and f.attempts == 1 for f in finals), finals
    assert Counter(i for out in outputs for i in _succeeded(out)) == Counter(ids)  # each exactly once
    assert len({f.owner for f in finals}) == 2 and all(_succeeded(out) for out in outputs)  # both worked
    assert len({f.video_path for f in finals}) == 20 and all(Path(f.video_path).is_file() for f in finals)


def test_a_worker_killed_mid_job_its_job_is_retried_after_the_lease_and_finishes_once(
    tmp_path, postgres_url, picture
):
    home = tmp_path / "home"
    workers = [_worker(postgres_url, home, 320 * 240) for _ in range(2)]
    try:
        with open_store(url=postgres_url, home=home) as store:
            submitter = Runner(store, devices=(), shared_queue=True)
            plan = MotionPlan.create(seed=7, template="landscape", duration_s=5.0)
            job = submitter.submit(plan, picture, backend="preview")
            deadline = time.monotonic() + 60
            while (rec := store.get_generation(job.id)).progress is None or rec.progress.stage != "rendering":
                assert time.monotonic() < deadline and not rec.is_terminal, rec
                time.sleep(0.01)
            holder = int(rec.owner.split(":")[1])  # owner ids read host:pid:start:nonce
            os.kill(holder, signal.SIGKILL)
            final = submitter.wait(job.id, timeout=60)
    finally:
        outputs = _stop(workers)
    killed = next(i for i, w in enumerate(workers) if w.pid == holder)
    assert final.status == "succeeded", final.error
    assert (final.attempts, final.lease_retries) == (2, 1) and final.owner != rec.owner
    assert f"#{job.id} started" in outputs[killed] and _succeeded(outputs[killed]) == []
    assert _succeeded(outputs[1 - killed]) == [job.id]
