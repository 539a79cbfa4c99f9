"""The shared queue (storage.leases): claims under a lease, renewal, expiry (back to the queue once, then
failed), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from storage import SHARED_QUEUE, InvalidFieldError, InvalidTransitionError

A, B = "host:1:10@boot:aa", "host:2:20@boot:bb"


@pytest.fixture
def shared(store, conv, make_plan):
    """shared(backend="preview", **plan_changes): a job queued for any worker."""

    def _make(backend: str = "preview", **changes):
        return store.create_generation(conv.id, make_plan(**changes), None, backend, "m", owner=SHARED_QUEUE)

    return _make


def test_claim_takes_the_oldest_shared_job_of_the_backends_served(store, shared, new_gen):
    held = new_gen()  # queued in one process's own queue: not the shared queue's
    wan, first, second = shared("wan"), shared(), shared()
    got = store.claim_shared(A, 30, backends=["preview"])
    assert got.id == first.id and got.status == "running" and got.owner == A and got.attempts == 1
    assert got.heartbeat_at is not None and got.lease_retries == 0
    assert timedelta(seconds=29) < got.lease_expires_at - got.heartbeat_at <= timedelta(seconds=30)
    assert store.claim_shared(B, 30, backends=["preview"]).id == second.id
    assert store.claim_shared(B, 30, backends=["preview"]) is None
    assert store.claim_shared(B, 30).id == wan.id  # no backends given: any
    assert store.claim_shared(B, 30) is None and store.get_generation(held.id).status == "queued"


def test_claim_and_renew_validate(store, shared):
    for owner in (None, "", SHARED_QUEUE):
        with pytest.raises(InvalidFieldError, match="owner"):
            store.claim_shared(owner, 30)
    with pytest.raises(InvalidFieldError, match="lease_s must be >= 0.1"):
        store.claim_shared(A, 0)


def test_renew_extends_the_lease_of_its_holder_only(store, shared):
    job = shared()
    first = store.claim_shared(A, 0.5)
    time.sleep(0.05)
    renewed = store.renew_lease(job.id, A, 60)
    assert renewed.lease_expires_at > first.lease_expires_at + timedelta(seconds=50)
    assert renewed.heartbeat_at >= first.heartbeat_at and not renewed.cancel_requested
    assert store.renew_lease(job.id, B, 60) is None  # not B's
    store.request_cancel(job.id)
    assert store.renew_lease(job.id, A, 60).cancel_requested  # the worker learns of the cancel
    store.finish_generation(job.id, "cancelled", owner=A)
    assert store.renew_lease(job.id, A, 60) is None
    assert store.get_generation(job.id).lease_expires_at is None


def test_an_expired_lease_requeues_once_then_fails_with_the_reason(store, shared):
    job, other = shared(), shared()
    store.claim_shared(A, 0.1)
    store.claim_shared(B, 60)  # a live lease: untouched
    time.sleep(0.3)
    assert store.expire_leases() == ([job.id], [])
    back = store.get_generation(job.id)
    assert (back.status, back.owner, back.lease_retries, back.attempts) == ("queued", SHARED_QUEUE, 1, 1)
    assert back.started_at is None and back.progress is None and back.lease_expires_at is None
    # the worker whose lease ran out may no longer report or end it
    with pytest.raises(InvalidTransitionError, match="is queued"):
        store.update_progress(job.id, "sampling", 1, 2, owner=A)
    again = store.claim_shared(B, 0.1)
    assert again.id == job.id and again.attempts == 2
    with pytest.raises(InvalidTransitionError, match=f"held by {B}, not {A}"):
        store.finish_generation(job.id, "succeeded", video_path="/v.mp4", owner=A)
    with pytest.raises(InvalidTransitionError, match=f"held by {B}, not {A}"):
        store.update_progress(job.id, "sampling", 1, 2, owner=A)
    time.sleep(0.3)
    assert store.expire_leases() == ([], [job.id])
    failed = store.get_generation(job.id)
    assert failed.status == "failed" and failed.finished_at is not None
    assert f"worker {B}" in failed.error and "stopped renewing its lease" in failed.error and "attempt 2" in failed.error
    assert store.get_generation(other.id).status == "running"
    # a person's requeue gives it a fresh retry
    assert store.requeue(job.id, owner=SHARED_QUEUE).lease_retries == 0


def test_an_expired_lease_of_a_job_asked_to_cancel_ends_cancelled(store, shared):
    job = shared()
    store.claim_shared(A, 0.1)
    store.request_cancel(job.id)
    time.sleep(0.3)
    assert store.expire_leases() == ([], [job.id])
    assert store.get_generation(job.id).status == "cancelled"


def test_recovery_leaves_the_shared_queue_and_leased_jobs_to_lease_expiry(store, shared, new_gen):
    queued, leased = shared(), shared()
    store.claim_shared(A, 60, backends=None)  # takes `queued`, the oldest
    orphan = new_gen()  # a process's own job with no known owner
    assert store.mark_interrupted(expired_only=True) == [orphan.id]
    assert store.get_generation(queued.id).status == "running"
    assert store.get_generation(leased.id).status == "queued"


def test_threads_claim_the_shared_queue_without_double_claims(store, shared):
    ids = [shared(seed=i).id for i in range(30)]
    claimed: dict[int, list[int]] = {w: [] for w in range(4)}
    start = threading.Barrier(4)

    def worker(w: int) -> None:
        start.wait()
        while (got := store.claim_shared(f"host:{w}:1@b:x", 30)) is not None:
            claimed[w].append(got.id)
            store.finish_generation(got.id, "failed", error="test", owner=f"host:{w}:1@b:x")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = sorted(i for got in claimed.values() for i in got)
    assert everything == ids  # each exactly once
    assert store.info().generations_by_status["failed"] == 30
