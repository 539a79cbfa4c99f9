"""Job owners and leases: the owner id says who holds a job; liveness is the lease alone (no /proc, no host
names), so recovery ends the jobs whose lease ran out, from any host or container, and never a live one."""

from __future__ import annotations

import os
import socket
import time

import pytest

from storage import DEFAULT_INTERRUPTED_MESSAGE, InvalidFieldError
from storage.owner import current_owner

HOST = socket.gethostname()


def test_current_owner_names_this_host_and_process():
    owner = current_owner()
    host, pid, nonce = owner.rsplit(":", 2)
    assert host == HOST and int(pid) == os.getpid() and len(nonce) == 8
    assert current_owner() == owner  # stable within the process


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")
def test_a_forked_child_gets_its_own_owner_id():
    parent = current_owner()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its owner id and leave at once
        os.close(r)
        os.write(w, current_owner().encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        child = f.read()
    os.waitpid(pid, 0)
    assert child != parent and child.rsplit(":", 2)[1] == str(pid)


def test_owner_module_reads_no_proc_and_no_host_liveness():
    """Liveness is the lease: nothing in storage judges a process from /proc, pids or host names."""
    import storage.owner as owner_mod
    import storage.recovery as recovery_mod

    for mod in (owner_mod, recovery_mod):
        text = open(mod.__file__).read()
        assert "/proc" not in text.replace("no ``/proc``", "") and "os.kill" not in text
    assert not hasattr(owner_mod, "owner_alive")


# --- the store ----------------------------------------------------------------------------------------


def test_owner_is_set_by_create_claim_and_requeue(store, conv, make_plan):
    g = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="h:1:a")
    assert g.owner == "h:1:a" and store.get_generation(g.id).owner == "h:1:a"
    assert store.claim_generation(g.id, owner="h:3:b").owner == "h:3:b"
    store.finish_generation(g.id, "failed", error="boom")
    assert store.get_generation(g.id).owner == "h:3:b"  # who last held it
    assert store.requeue(g.id, owner="h:5:c").owner == "h:5:c"
    assert store.claim_next(owner="h:7:d").owner == "h:7:d"
    store.finish_generation(g.id, "cancelled")
    assert store.requeue(g.id).owner is None  # nobody known
    assert store.claim_generation(g.id).owner is None
    plain = store.create_generation(conv.id, make_plan(), None, "preview", "m")
    assert plain.owner is None


@pytest.mark.parametrize("bad", ["", "   ", 42, "x" * 501])
def test_owner_is_validated(store, conv, make_plan, bad):
    with pytest.raises(InvalidFieldError, match="owner"):
        store.create_generation(conv.id, make_plan(), None, "preview", "m", owner=bad)
    g = store.create_generation(conv.id, make_plan(), None, "preview", "m")
    with pytest.raises(InvalidFieldError, match="owner"):
        store.claim_generation(g.id, owner=bad)
    assert store.get_generation(g.id).status == "queued"


def test_a_lease_needs_a_process_owner_and_a_sane_length(store, conv, make_plan):
    with pytest.raises(InvalidFieldError, match="lease needs an owner"):
        store.create_generation(conv.id, make_plan(), None, "preview", "m", lease_s=30)
    with pytest.raises(InvalidFieldError, match="lease_s"):
        store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="h:1:a", lease_s=0)


def test_recovery_ends_expired_or_missing_leases_only_whatever_the_host(store, conv, make_plan):
    def gen(owner, lease_s=None, claim=False):
        g = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner=owner, lease_s=lease_s)
        if claim:
            store.claim_generation(g.id, owner=owner, lease_s=lease_s)
        return g.id

    # live leases, on this host and on a host (or container) nobody here can see: never touched
    live_q, live_r = gen(f"{HOST}:1:a", 60), gen(f"{HOST}:1:a", 60, claim=True)
    far_q, far_r = gen("renamed-container:1:b", 60), gen("renamed-container:1:b", 60, claim=True)
    # leases that run out: a process that died, here or in another container
    dead_q, dead_r = gen(f"{HOST}:2:c", 0.1), gen("old-container:1:d", 0.1, claim=True)
    # no lease at all: no known owner, or written before leases
    none_q, legacy_r = gen(None), gen("h:9:e", claim=True)
    time.sleep(0.25)
    done = store.recover()
    assert done.interrupted == sorted([dead_q, dead_r, none_q, legacy_r]) and done.requeued == []
    for i in (dead_q, none_q, legacy_r):
        assert store.get_generation(i).error == DEFAULT_INTERRUPTED_MESSAGE
    lost = store.get_generation(dead_r)
    assert lost.status == "failed" and lost.error.startswith("interrupted: its worker stopped renewing its lease")
    assert "old-container:1:d" in lost.error
    assert [store.get_generation(i).status for i in (live_q, live_r, far_q, far_r)] == [
        "queued", "running", "queued", "running"]
    assert store.recover().interrupted == []
    # without expired_only: everything active (a caller that knows no VividFlow process runs: `recover --all`)
    assert store.mark_interrupted("stopped") == [live_q, live_r, far_q, far_r]


def test_renewal_keeps_a_job_alive_and_reports_lost_ones(store, conv, make_plan):
    a = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="me:1:a", lease_s=0.2)
    b = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="me:1:a", lease_s=0.2)
    store.claim_generation(b.id, owner="me:1:a", lease_s=0.2)
    other = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="you:1:b", lease_s=0.2)
    for _ in range(4):  # renewed every 0.1 s for 0.4 s: twice the lease, and still alive
        time.sleep(0.1)
        held = store.renew_leases([a.id, b.id, other.id], "me:1:a", 0.2)
        assert sorted(held) == [a.id, b.id]  # not someone else's
    assert store.recover().interrupted == [other.id]
    assert [store.get_generation(i).status for i in (a.id, b.id)] == ["queued", "running"]
    store.request_cancel(b.id)
    assert store.renew_leases([b.id], "me:1:a", 0.2)[b.id].cancel_requested  # the holder learns of the cancel
    store.finish_generation(b.id, "cancelled", owner="me:1:a")
    assert store.renew_leases([a.id, b.id], "me:1:a", 0.2).keys() == {a.id}  # b ended: no longer held


def test_release_queued_clears_the_owner_of_queued_jobs_only(store, conv, make_plan):
    a = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="me", lease_s=60)
    b = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="me", lease_s=60)
    c = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="someone", lease_s=60)
    store.claim_generation(b.id, owner="me", lease_s=60)
    assert store.release_queued([a.id, b.id, c.id], "me") == [a.id]
    assert [store.get_generation(i).owner for i in (a.id, b.id, c.id)] == [None, "me", "someone"]
    assert store.release_queued([], "me") == []
    assert store.recover().interrupted == [a.id]
