"""Many users: records belong to a person, each sees their own and shared ones, a per-person quota of queued
jobs, and the admin's view of the whole queue. On SQLite and PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import inspect, text

from storage import (
    LOCAL_USER,
    MIGRATIONS,
    ForbiddenError,
    NotFoundError,
    QuotaExceededError,
    UserQueue,
    migrate,
    open_store,
)
from storage.__main__ import main as storage_main
from storage.db import make_engine


def gen(store, user, conv_id=None, quota=None):
    from tests.storage.conftest import make_plan as plan

    return store.create_generation(conv_id, plan(), None, "preview", "m", user=user, quota=quota)


def test_records_belong_to_a_person_and_to_the_local_one_by_default(store):
    local = store.create_conversation("mine")
    ann = store.create_conversation("hers", user="ann@example.com")
    msg = store.append_message(ann.id, "user", "hello")
    g = gen(store, "ann@example.com", ann.id)
    assert (local.user_id, local.shared, ann.user_id) == (LOCAL_USER, False, "ann@example.com")
    assert (msg.user_id, g.user_id, g.shared, g.owner) == ("ann@example.com", "ann@example.com", False, None)
    assert store.get_conversation(ann.id).user_id == "ann@example.com" and store.list_messages(ann.id) == [msg]
    # a person renders only into their own conversation
    with pytest.raises(ForbiddenError, match=f"conversation {ann.id} belongs to another person"):
        gen(store, "bob", ann.id)
    with pytest.raises(ValueError, match="user must not be empty"):
        store.create_conversation("x", user=" ")


def test_each_person_sees_their_own_gallery_and_history_unless_shared(store):
    ann_conv = store.create_conversation("ann's", user="ann")
    bob_conv = store.create_conversation("bob's", user="bob")
    a1, a2 = gen(store, "ann", ann_conv.id), gen(store, "ann", ann_conv.id)
    b1 = gen(store, "bob", bob_conv.id)
    ids = lambda page: [g.id for g in page.items]  # noqa: E731
    assert ids(store.list_gallery(viewer="ann")) == [a2.id, a1.id]
    assert ids(store.list_gallery(viewer="bob")) == [b1.id]
    assert ids(store.list_gallery()) == [b1.id, a2.id, a1.id]  # no viewer: everyone's (CLI, admin)
    assert [c.id for c in store.list_conversations(user="bob")] == [bob_conv.id]
    with pytest.raises(NotFoundError, match=f"no generation with id {a1.id}"):
        store.get_generation(a1.id, viewer="bob")
    with pytest.raises(NotFoundError, match=f"no conversation with id {ann_conv.id}"):
        store.list_messages(ann_conv.id, viewer="bob")

    shared = store.share_generation(a1.id, user="ann")
    assert shared.shared and store.get_generation(a1.id, viewer="bob") == shared
    assert ids(store.list_gallery(viewer="bob")) == [b1.id, a1.id]
    assert ids(store.list_gallery(viewer="bob", mine_only=True)) == [b1.id]
    store.share_conversation(ann_conv.id, user="ann")
    assert [c.id for c in store.list_conversations(user="bob", include_shared=True)] == [bob_conv.id, ann_conv.id]
    assert store.list_messages(ann_conv.id, viewer="bob") == []
    # shared is read-only for others: no messages, no sharing, no delete
    with pytest.raises(ForbiddenError, match="read-only for bob"):
        store.append_message(ann_conv.id, "user", "hi", user="bob")
    with pytest.raises(ForbiddenError, match="only they can share it"):
        store.share_generation(a1.id, False, user="bob")
    with pytest.raises(ForbiddenError, match="bob cannot delete it"):
        store.delete_generation(a1.id, user="bob")
    assert not store.share_generation(a1.id, False, user="ann").shared
    assert ids(store.list_gallery(viewer="bob")) == [b1.id]
    store.delete_generation(a1.id, user="ann")
    assert ids(store.list_gallery(viewer="ann")) == [a2.id]


def test_quota_counts_queued_and_running_jobs_of_one_person(store):
    first = gen(store, "ann", quota=2)
    gen(store, "ann", quota=2)
    with pytest.raises(QuotaExceededError, match="ann already has 2 job.s. queued or running.*limit per person is 2"):
        gen(store, "ann", quota=2)
    assert gen(store, "bob", quota=2).user_id == "bob"  # per person
    store.claim_generation(first.id)
    with pytest.raises(QuotaExceededError):  # running still counts
        gen(store, "ann", quota=2)
    store.finish_generation(first.id, "failed", error="boom")
    assert store.active_jobs("ann") == 1 and gen(store, "ann", quota=2).status == "queued"
    assert gen(store, "ann").id  # no quota given: no limit
    with pytest.raises(QuotaExceededError, match="limit per person is 0"):
        gen(store, "carol", quota=0)


def test_quota_holds_when_one_person_submits_from_many_threads_at_once(store):
    results: list[str] = []
    barrier = threading.Barrier(4)

    def submit() -> None:
        barrier.wait()
        for _ in range(3):
            try:
                gen(store, "ann", quota=5)
                results.append("ok")
            except QuotaExceededError:
                results.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (results.count("ok"), results.count("refused")) == (5, 7)
    assert store.active_jobs("ann") == 5


def test_admin_queue_lists_every_persons_jobs_running_first(store, capsys):
    a1, a2 = gen(store, "ann"), gen(store, "ann")
    b1 = gen(store, "bob")
    done = gen(store, "bob")
    store.claim_generation(done.id)
    store.finish_generation(done.id, "cancelled")
    store.claim_generation(b1.id, owner="host:1:2:x")
    assert [(g.id, g.status, g.user_id) for g in store.queue_overview()] == [
        (b1.id, "running", "bob"), (a1.id, "queued", "ann"), (a2.id, "queued", "ann")]
    assert store.queue_by_user() == [UserQueue("ann", 2, 0), UserQueue("bob", 0, 1)]

    where = ["--url", store._engine.url.render_as_string(hide_password=False), "--home", str(store.home)]
    assert storage_main(["queue", *where]) == 0
    out = capsys.readouterr().out
    lines = [ln.split() for ln in out.splitlines()[1:4]]
    assert [ln[:4] for ln in lines] == [[str(b1.id), "running", "bob", "preview"],
                                       [str(a1.id), "queued", "ann", "preview"],
                                       [str(a2.id), "queued", "ann", "preview"]]
    assert "ann 2 queued, 0 running" in out and "bob 0 queued, 1 running" in out
    assert storage_main(["queue", "--json", *where]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [j["user"] for j in data["jobs"]] == ["bob", "ann", "ann"] and data["jobs"][0]["stage"] == "starting"


@pytest.fixture(params=("sqlite", "postgresql"))
def blank_url(request, tmp_path):
    if request.param == "sqlite":
        (tmp_path / "home").mkdir()
        return f"sqlite:///{tmp_path / 'home' / 'vividflow.db'}"
    return request.getfixturevalue("postgres").create_database()


def test_migration_5_gives_existing_rows_the_local_user_and_keeps_them(blank_url, tmp_path):
    from tests.storage.conftest import make_plan

    engine = make_engine(blank_url)
    assert migrate(engine, MIGRATIONS[:4]) == 4
    stamp = "'2026-01-01 10:00:00'"
    with engine.begin() as c:
        c.execute(text(f"INSERT INTO conversations (id, title, created_at, updated_at) VALUES (7, 'old', {stamp}, {stamp})"))
        c.execute(text(f"INSERT INTO messages (id, conversation_id, role, text, created_at) "
                       f"VALUES (3, 7, 'user', 'hi', {stamp})"))
        c.execute(text("INSERT INTO generations (id, conversation_id, plan, seed, backend, model_id, status, attempts, "
                       f"cancel_requested, lease_retries, created_at) VALUES (5, 7, :plan, 42, 'preview', 'm', 'queued', "
                       f"0, false, 0, {stamp})"), {"plan": json.dumps(make_plan())})
    engine.dispose()
    with open_store(url=blank_url, home=tmp_path / "home") as store:
        assert "user_id" in [c["name"] for c in inspect(store._engine).get_columns("messages")]
        g = store.get_generation(5, viewer=LOCAL_USER)
        assert (g.user_id, g.shared, g.seed, g.plan) == (LOCAL_USER, False, 42, make_plan())
        conv = store.get_conversation(7, viewer=LOCAL_USER)
        assert (conv.title, conv.user_id, conv.shared) == ("old", LOCAL_USER, False)
        assert [(m.text, m.user_id) for m in store.list_messages(7)] == [("hi", LOCAL_USER)]
        assert [x.id for x in store.list_gallery(viewer=LOCAL_USER).items] == [5]
        assert store.active_jobs(LOCAL_USER) == 1
