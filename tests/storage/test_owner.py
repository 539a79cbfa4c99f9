"""Job owners: the owner id of a process, whether it is alive, and recovery that fails only dead owners' jobs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from storage import DEFAULT_INTERRUPTED_MESSAGE, InvalidFieldError
from storage import owner as owner_mod
from storage.owner import current_owner, owner_alive, process_start

HOST = socket.gethostname()
HAS_PROC = os.path.exists("/proc/self/stat")
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="no /proc on this system")


@pytest.fixture
def sleeper():
    """A live child process (reaped at the end)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def owner_of(pid: int, start: str | None) -> str:
    return f"{HOST}:{pid}:{start or ''}:0123abcd"


def test_current_owner_names_this_host_and_process():
    owner = current_owner()
    host, pid, start, nonce = owner.rsplit(":", 3)
    assert host == HOST and int(pid) == os.getpid() and len(nonce) == 8
    assert current_owner() == owner  # stable within the process
    if HAS_PROC:
        ticks, _, boot = start.partition("@")
        assert ticks.isdigit() and int(ticks) > 0 and start == process_start(os.getpid())
        assert boot == open("/proc/sys/kernel/random/boot_id").read().strip()[:8]
    assert owner_alive(owner)


def test_own_pid_with_another_start_or_nonce_is_an_earlier_process():
    """Same pid as ours but not our id: an earlier process whose pid we got (pid 1 in a restarted container)."""
    host, pid, start, nonce = current_owner().rsplit(":", 3)
    assert not owner_alive(f"{host}:{pid}:{start}:ffffffff" if nonce != "ffffffff" else f"{host}:{pid}:{start}:0")
    assert not owner_alive(f"{host}:{pid}:1@{start.partition('@')[2]}:{nonce}")


@needs_proc
def test_a_live_child_is_alive_and_dead_once_killed_and_reaped(sleeper):
    start = process_start(sleeper.pid)
    assert start is not None
    owner = owner_of(sleeper.pid, start)
    assert owner_alive(owner)
    sleeper.kill()
    sleeper.wait()
    assert not owner_alive(owner)


def test_a_process_that_exited_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # exited and reaped: the pid names nobody (or, rarely, an unrelated new process)
    assert not owner_alive(owner_of(proc.pid, "1@00000000"))


@needs_proc
def test_a_zombie_is_not_alive(sleeper):
    owner = owner_of(sleeper.pid, process_start(sleeper.pid))
    sleeper.kill()  # not reaped yet: a zombie until wait()
    deadline = time.monotonic() + 10
    while open(f"/proc/{sleeper.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not owner_alive(owner)


@needs_proc
def test_a_reused_pid_with_another_start_time_is_not_alive(sleeper):
    """The pid exists, but it is a later process than the one that took the job."""
    start = process_start(sleeper.pid)
    ticks, _, boot = start.partition("@")
    assert not owner_alive(owner_of(sleeper.pid, f"{int(ticks) - 1}@{boot}"))
    assert not owner_alive(owner_of(sleeper.pid, f"{ticks}@{'0' * 8 if boot != '0' * 8 else '1' * 8}"))  # reboot
    assert owner_alive(owner_of(sleeper.pid, start))


def test_another_host_is_treated_as_alive():
    assert owner_alive(f"not-{HOST}.example:1:123@abc:0123abcd")
    assert owner_alive(f"not-{HOST}.example:99999999::0123abcd")


def test_an_unreadable_owner_id_is_treated_as_alive(caplog):
    assert owner_alive("someone else")
    assert "not hostname:pid:start:nonce" in caplog.text


def test_without_proc_only_the_pid_is_checked(monkeypatch, sleeper, tmp_path):
    monkeypatch.setattr(owner_mod, "PROC", tmp_path / "no-proc")
    monkeypatch.setattr(owner_mod, "_current", None)
    owner = current_owner()
    host, pid, start, nonce = owner.rsplit(":", 3)
    assert (host, int(pid), start) == (HOST, os.getpid(), "") and owner_alive(owner)
    assert not owner_alive(f"{HOST}:{os.getpid()}::{nonce[::-1] if nonce != nonce[::-1] else '0'}")
    assert owner_alive(owner_of(sleeper.pid, None))  # os.kill(pid, 0) finds it
    sleeper.kill()
    sleeper.wait()
    assert not owner_alive(owner_of(sleeper.pid, None))


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
    assert child != parent and child.rsplit(":", 3)[1] == str(pid)
    assert not owner_alive(child)  # it has exited


# --- the store ----------------------------------------------------------------------------------------


def test_owner_is_set_by_create_claim_and_requeue(store, conv, make_plan):
    g = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="h:1:2:a")
    assert g.owner == "h:1:2:a" and store.get_generation(g.id).owner == "h:1:2:a"
    assert store.claim_generation(g.id, owner="h:3:4:b").owner == "h:3:4:b"
    store.finish_generation(g.id, "failed", error="boom")
    assert store.get_generation(g.id).owner == "h:3:4:b"  # who last held it
    assert store.requeue(g.id, owner="h:5:6:c").owner == "h:5:6:c"
    assert store.claim_next(owner="h:7:8:d").owner == "h:7:8:d"
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


def test_mark_interrupted_with_is_alive_fails_only_dead_or_unknown_owners(store, conv, make_plan):
    def gen(owner, claim=False):
        g = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner=owner)
        if claim:
            store.claim_generation(g.id, owner=owner)
        return g.id

    live_q, live_r = gen("live"), gen("live", claim=True)
    dead_q, dead_r = gen("dead"), gen("dead", claim=True)
    none_q, none_r = gen(None), gen(None, claim=True)
    asked: list[str] = []

    def is_alive(owner: str) -> bool:
        asked.append(owner)
        return owner == "live"

    ids = store.mark_interrupted(is_alive=is_alive)
    assert ids == sorted([dead_q, dead_r, none_q, none_r])
    assert sorted(asked) == ["dead", "live"]  # once per owner, never for None
    for i in ids:
        rec = store.get_generation(i)
        assert rec.status == "failed" and rec.error == DEFAULT_INTERRUPTED_MESSAGE
    assert [store.get_generation(i).status for i in (live_q, live_r)] == ["queued", "running"]
    assert store.mark_interrupted(is_alive=is_alive) == []
    # without is_alive: everything active, as before (a caller that knows no other process runs)
    assert store.mark_interrupted("stopped") == [live_q, live_r]


def test_mark_interrupted_spares_a_job_claimed_by_a_live_owner_meanwhile(store, conv, make_plan):
    """Between the read of owners and the write, a live process claims a job of a dead owner: it stays."""
    g = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="dead")
    other = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="dead")

    def is_alive(owner: str) -> bool:
        store.claim_generation(g.id, owner="live")  # happens while recovery is deciding
        return owner == "live"

    assert store.mark_interrupted(is_alive=is_alive) == [other.id]
    assert store.get_generation(g.id).status == "running"


def test_release_queued_clears_the_owner_of_queued_jobs_only(store, conv, make_plan):
    a = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="me")
    b = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="me")
    c = store.create_generation(conv.id, make_plan(), None, "preview", "m", owner="someone")
    store.claim_generation(b.id, owner="me")
    assert store.release_queued([a.id, b.id, c.id], "me") == [a.id]
    assert [store.get_generation(i).owner for i in (a.id, b.id, c.id)] == [None, "me", "someone"]
    assert store.release_queued([], "me") == []
    assert store.mark_interrupted(is_alive=lambda o: True) == [a.id]
