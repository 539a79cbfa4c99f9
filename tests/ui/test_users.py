"""Many users in the studio: each person's chats, renders and gallery are their own; shared renders show to all;
the per-person quota refuses one job too many with a sentence; an admin sees every person's queue."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture
def runner(tmp_path, db_url):
    """A store on each database and a runner that only queues jobs (the shared queue, no workers here)."""
    from generation.jobs import Runner
    from storage import open_store

    store = open_store(url=db_url, home=tmp_path / "home")
    r = Runner(store, devices=(), shared_queue=True, recover=False)
    yield r
    r.close()
    store.close()


def _picture() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def test_each_person_has_their_own_chats_renders_and_quota(runner):
    from storage import NotFoundError, QuotaExceededError
    from vividflow.studio import Studio, _SeenBy

    store = runner.store
    ann = Studio.fresh(store, user="ann")
    ann.set_image(_picture(), "a.png", 64, 48, "png")
    ann.chat("make her hair flow gently")
    first = ann.submit(runner, "preview", "preview-warp-1", quota=2)
    ann.submit(runner, "preview", "preview-warp-1", quota=2)
    with pytest.raises(QuotaExceededError, match="ann already has 2 job.s. queued or running"):
        ann.submit(runner, "preview", "preview-warp-1", quota=2)
    assert store.get_conversation(ann.conversation_id).user_id == "ann" and first.user_id == "ann"

    bob = Studio.resume(store, user="bob")  # ann's conversation is not his to resume
    assert bob.conversation_id is None and bob.user == "bob"
    with pytest.raises(NotFoundError):
        Studio.resume(store, ann.conversation_id, user="bob")
    with pytest.raises(NotFoundError):
        _SeenBy(store, "bob").get_generation(first.id)  # "like #1" in bob's chat does not reach ann's render
    with pytest.raises(NotFoundError):
        bob.rerun(runner, first.id, new_seed=False)
    assert Studio.resume(store, user="ann").conversation_id == ann.conversation_id

    store.share_generation(first.id, user="ann")
    mine = bob.rerun(runner, first.id, new_seed=True, quota=2)  # bob's own render of ann's shared one
    assert (mine.user_id, mine.parent_id, mine.conversation_id) == ("bob", first.id, None)
    assert [g.id for g in store.list_gallery(viewer="bob").items] == [mine.id, first.id]


def _gallery(kit, monkeypatch, user: str):
    from streamlit.testing.v1 import AppTest

    import ui.services

    monkeypatch.setattr(ui.services, "current_user", lambda: user)  # as if `user` signed in (st.user)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "streamlit_app.py"), default_timeout=30)
    at.run()
    at.switch_page(kit.GALLERY).run()
    assert not at.exception, at.exception
    return at


def _cards(at) -> list[int]:
    return [int(m.value.split("**")[1].lstrip("#")) for m in at.markdown if m.value.startswith("**#")]


def test_gallery_shows_ones_own_and_shared_renders_and_the_queue_to_admins(kit, monkeypatch):
    own = kit.finished_generation(user="ann")
    private = kit.finished_generation(user="bob")
    shared = kit.finished_generation(user="bob", shared=True)
    waiting = kit.store().create_generation(None, own.plan, own.source_image_id, "preview", "m", user="carol",
                                            owner="another-host:1:2:x", lease_s=600)  # queued there, live lease
    at = _gallery(kit, monkeypatch, "ann")
    assert _cards(at) == [shared.id, own.id] and private.id not in _cards(at)
    assert any("shared by bob" in c.value for c in at.caption)
    assert len(at.dataframe) == 0  # ann is no admin: no queue
    at.toggle(key="g.mine").set_value(True).run()
    assert _cards(at) == [own.id]
    at.toggle(key="g.mine").set_value(False).run()

    at.button(key=f"g.open.{shared.id}").click().run()
    assert at.button(key=f"g.delete.{shared.id}").disabled  # bob's: ann may rerun or branch, not delete
    at.button(key=f"g.open.{own.id}").click().run()
    at.toggle(key=f"g.share.{own.id}").set_value(True).run()
    assert not at.exception and kit.store().get_generation(own.id).shared

    monkeypatch.setenv("VIVIDFLOW_ADMINS", "ann")
    monkeypatch.setenv("VIVIDFLOW_QUEUE_QUOTA", "1")
    kit.store().create_generation(None, own.plan, own.source_image_id, "preview", "m", user="ann",
                                  owner="another-host:1:2:x", lease_s=600)  # her one queued job: quota full
    at = _gallery(kit, monkeypatch, "ann")
    table = at.dataframe[0].value
    assert list(table["person"]) == ["carol", "ann"] and list(table["#"])[0] == waiting.id
    assert any("carol: 1 queued, 0 running" in c.value for c in at.caption)
    at.button(key=f"g.open.{own.id}").click().run()
    at.button(key=f"g.rerun.{own.id}").click().run()
    assert not at.exception
    assert any("ann already has 1 job(s) queued or running" in e.value for e in at.error)
