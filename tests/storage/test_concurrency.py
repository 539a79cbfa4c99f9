"""Transactions and concurrent writers (threads and processes) on one database, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage import open_store
from storage.models import Generation

REPO = Path(__file__).resolve().parents[2]


def test_a_failing_write_transaction_leaves_nothing(store, conv, make_plan):
    with pytest.raises(RuntimeError, match="crash between steps"):
        with store._write() as s:
            s.add(Generation(conversation_id=conv.id, plan=make_plan(), backend="preview", model_id="m",
                             status="queued", attempts=0, cancel_requested=False))
            s.flush()
            raise RuntimeError("crash between steps")
    assert store.counts()["generations"] == 0


def test_status_is_never_null_or_unknown(store, conv, make_plan):
    insert = ("INSERT INTO generations (plan, backend, model_id, status, attempts, cancel_requested, created_at) "
              "VALUES ('{}', 'p', 'm', :status, 0, false, '2026-01-01')")
    null = 'NOT NULL constraint failed: generations.status|null value in column "status" of relation "generations"'
    with pytest.raises(IntegrityError, match=null):
        with store._write() as s:
            s.execute(text(insert), {"status": None})
    check = 'CHECK constraint failed: ck_generations_status|violates check constraint "ck_generations_status"'
    with pytest.raises(IntegrityError, match=check):
        with store._write() as s:
            s.execute(text(insert), {"status": "done"})


CRASH_SCRIPT = """
import os, sys
from storage import open_store
from storage.models import Generation
store = open_store(home=sys.argv[1])
g = store.create_generation(None, {"template": "animals", "seed": 1}, None, "preview", "m")
store.claim_generation(g.id)
with store._write() as s:
    s.add(Generation(plan={}, backend="preview", model_id="m", status="queued", attempts=0,
                     cancel_requested=False))
    s.flush()
    s.query(Generation).filter_by(id=g.id).update({"status": "succeeded"})
    s.flush()
    os._exit(3)  # the process dies mid-transaction
"""


def test_process_killed_mid_transaction_keeps_a_consistent_db(tmp_path):
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(home)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    with open_store(home=home) as store:
        assert store.counts()["generations"] == 1
        assert store.get_generation(1).status == "running"  # the uncommitted change is gone
        assert store.mark_interrupted() == [1]
        with store._read() as s:
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_threads_write_and_claim_concurrently(store, conv, make_plan):
    n_threads, per_thread = 4, 15
    errors: list[BaseException] = []
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                g = store.create_generation(conv.id, make_plan(seed=t * 1000 + i), None, "preview", "m")
                store.append_message(conv.id, "user", f"t{t} m{i}")
                if (got := store.claim_next()) is not None:
                    store.update_progress(got.id, "denoising", 1, 2)
                    store.finish_generation(got.id, "failed", error=f"t{t}")
                    with lock:
                        claimed.append(got.id)
                assert store.get_generation(g.id).seed == t * 1000 + i
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    total = n_threads * per_thread
    assert store.counts()["generations"] == total and store.counts()["messages"] == total
    # every claim went to exactly one thread
    assert len(claimed) == len(set(claimed))
    by_status = store.info().generations_by_status
    assert by_status["failed"] == len(claimed) and by_status["queued"] == total - len(claimed)
    assert by_status["running"] == 0


WORKER_SCRIPT = """
import json, sys
from storage import open_store
store = open_store(url=sys.argv[3] or None, home=sys.argv[1])
mine = []
while (g := store.claim_next()) is not None:
    store.update_progress(g.id, "denoising", 1, 1)
    store.finish_generation(g.id, "failed", error="worker " + sys.argv[2])
    mine.append(g.id)
print(json.dumps(mine))
"""


def test_processes_share_one_queue_without_double_claims(tmp_path, make_plan, db_url):
    home = tmp_path / "home"
    with open_store(url=db_url, home=home) as store:
        for i in range(40):
            store.create_generation(None, make_plan(seed=i), None, "preview", "m")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(home), str(w), db_url or ""], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    all_ids = [i for r in results for i in r]
    assert sorted(all_ids) == list(range(1, 41))
    with open_store(url=db_url, home=home) as store:
        errors = Counter(g.error for g in store.list_gallery(page_size=100).items)
    assert sum(errors.values()) == 40 and set(errors) <= {"worker 0", "worker 1", "worker 2"}
