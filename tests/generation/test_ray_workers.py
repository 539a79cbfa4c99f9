"""Ray workers (generation.ray_workers) on a local Ray instance and PostgreSQL: two preview actors with warm
pipelines serve the shared queue; jobs finish exactly once, a cancel reaches an actor within a second, and
the job of an actor killed mid-render is finished by the other."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from agent.plan import MotionPlan
from generation.jobs import Runner
from storage import open_store

REPO = Path(__file__).resolve().parents[2]
LEASE_S = 1.0


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the module (starting one takes seconds)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (requirements.txt)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})  # actors import this checkout
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def cluster(ray_local, postgres, tmp_path_factory):
    """Two preview actors on a PostgreSQL database of their own, and a studio-like submitter (no devices)."""
    from generation.ray_workers import start_actors

    url = postgres.create_database()
    home = tmp_path_factory.mktemp("ray-home")
    store = open_store(url=url, home=home)
    actors = start_actors(gpu_workers=0, cpu_workers=2, url=url, home=str(home), media_root=str(home / "media"),
                          lease_s=LEASE_S, poll_s=0.1, preview_max_area=320 * 240, max_restarts=0)
    picture = home / "cat.jpg"
    from skimage import data
    from PIL import Image

    Image.fromarray(data.chelsea()).resize((96, 64)).save(picture)
    submitter = Runner(store, devices=(), shared_queue=True)
    yield ray_local, actors, store, submitter, picture
    for a in actors:
        ray_local.kill(a)
    store.close()


def _stats(ray, actors):
    return ray.get([a.stats.remote() for a in actors])


def test_twenty_jobs_from_four_threads_finish_exactly_once_on_warm_actors(cluster, gh):
    ray, actors, store, submitter, picture = cluster
    ids = gh.submit_from_threads(submitter, picture)
    finals = [submitter.wait(i, timeout=120) for i in ids]
    assert len(ids) == 20 and all(f.status == "succeeded" and f.attempts == 1 for f in finals)
    stats = _stats(ray, actors)
    assert Counter(i for s in stats for i in s["finished"]) == Counter(ids)  # each once, nothing duplicated
    assert all(s["finished"] for s in stats)  # both actors worked
    assert [s["loads"] for s in stats] == [{"preview": 1}] * 2  # the pipeline loaded once per actor


def test_a_cancel_reaches_an_actor_within_a_second(cluster):
    ray, actors, store, submitter, picture = cluster
    job = submitter.submit(MotionPlan.create(seed=1, template="landscape", duration_s=5.0), picture,
                           backend="preview")
    while (rec := store.get_generation(job.id)).progress is None or rec.progress.stage != "rendering":
        assert not rec.is_terminal, rec
        time.sleep(0.01)
    asked = time.monotonic()
    submitter.cancel(job.id)
    final = submitter.wait(job.id, timeout=30)
    assert final.status == "cancelled" and time.monotonic() - asked < 1.0


def test_an_actor_killed_mid_job_its_job_is_finished_by_the_other(cluster):
    ray, actors, store, submitter, picture = cluster
    job = submitter.submit(MotionPlan.create(seed=2, template="landscape", duration_s=5.0), picture,
                           backend="preview")
    while (rec := store.get_generation(job.id)).progress is None or rec.progress.stage != "rendering":
        assert not rec.is_terminal, rec
        time.sleep(0.01)
    stats = _stats(ray, actors)
    holder = next(i for i, s in enumerate(stats) if s["owner"] == rec.owner)
    ray.kill(actors[holder])  # no restart: the other actor must finish it
    final = submitter.wait(job.id, timeout=60)
    assert final.status == "succeeded" and (final.attempts, final.lease_retries) == (2, 1)
    survivor = ray.get(actors[1 - holder].stats.remote())
    assert final.owner == survivor["owner"] and survivor["finished"].count(job.id) == 1
