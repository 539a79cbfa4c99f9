"""History references resolved through a real (temporary) store's generation records."""

from __future__ import annotations

import random

import pytest

from agent import new_conversation, plan_turn
from agent.history import generation_refs


class Chat:
    """A conversation the way the app keeps it: messages and generations written to the store."""

    def __init__(self, store, seed=1):
        self.store = store
        self.conv = store.create_conversation("test")
        self.state = new_conversation(conversation_id=self.conv.id)
        self.rng = random.Random(seed)

    def say(self, text):
        self.store.append_message(self.conv.id, "user", text)
        self.state, reply = plan_turn(self.state, text, rng=self.rng, store=self.store)
        self.store.append_message(self.conv.id, "assistant", reply.text, plan=self.state.plan.to_dict())
        return reply

    def render(self, status="succeeded"):
        gen = self.store.create_generation(self.conv.id, self.state.plan.to_dict(), None, "preview", "preview-v1")
        if status != "queued":
            self.store.claim_generation(gen.id)
        if status == "succeeded":
            gen = self.store.finish_generation(gen.id, "succeeded", video_path=f"videos/{gen.id}.mp4")
        elif status == "failed":
            gen = self.store.finish_generation(gen.id, "failed", error="out of memory")
        return gen

    @property
    def plan(self):
        return self.state.plan


@pytest.fixture
def store(tmp_path, db_url):
    """A real, empty store on each database (tests/conftest.py's db_url: SQLite and PostgreSQL)."""
    from storage import open_store

    s = open_store(url=db_url, home=tmp_path)
    yield s
    s.close()


@pytest.fixture
def chat(store):
    c = Chat(store)
    c.say("a cat blinking slowly")
    c.cat = c.render()
    c.say("actually it is a landscape, 5 seconds")
    c.land = c.render()
    c.say("new seed, 2 seconds")
    c.third = c.render()
    return c


def test_plans_are_stored_as_json_dicts(chat):
    rec = chat.store.get_generation(chat.cat.id)
    assert isinstance(rec.plan, dict) and rec.plan["template"] == "animals"


def test_same_as_id(chat):
    reply = chat.say(f"same as #{chat.land.id}")
    assert chat.plan.to_dict() == {**chat.land.plan, "prompt": chat.plan.prompt}
    assert f"#{chat.land.id}" in reply.text


def test_rerun_the_second_one_with_8_steps(chat):
    chat.say("rerun the second one with 8 steps")
    assert chat.plan.template == "landscape" and chat.plan.duration_s == 5.0
    assert chat.plan.seed == chat.land.plan["seed"] and chat.plan.steps == 8


def test_like_the_last_one_but_slower(chat):
    chat.say("pan left, seed 5")
    chat.say("like the last one but slower")
    last = chat.third.plan
    assert chat.plan.seed == last["seed"] and chat.plan.duration_s == last["duration_s"]
    assert chat.plan.camera.move == last["camera"]["move"]
    for m in chat.plan.motions:
        before = next(x for x in last["motions"] if x["subject"] == m.subject)
        assert m.speed < before["speed"]


def test_go_back_to_the_cat_video(chat):
    chat.say("go back to the cat video")
    assert chat.plan.template == "animals" and chat.plan.seed == chat.cat.plan["seed"]


def test_query_matches_the_words_said_before_a_generation(chat):
    labels = [g.label for g in generation_refs(chat.state, chat.store)]
    assert "cat blinking" in labels[0] and "landscape" in labels[1] and "cat" not in labels[1]


def test_failed_generations_are_not_counted_as_videos(chat):
    chat.say("10 steps")
    failed = chat.render(status="failed")
    chat.say("same as the last one")
    assert chat.plan.seed == chat.third.plan["seed"] and chat.plan.steps == 4
    chat.say(f"same as #{failed.id}")  # but an explicit id still works
    assert chat.plan.steps == 10


def test_missing_references_are_said(chat):
    before = chat.plan
    reply = chat.say("same as #999")
    assert chat.plan == before and "#999" in reply.text
    reply = chat.say("rerun the ninth one")
    assert chat.plan == before and "3 videos" in reply.text
    reply = chat.say("go back to the submarine video")
    assert chat.plan == before and "submarine" in reply.text


def test_generation_from_another_conversation_by_id(chat, store):
    other = Chat(store, seed=2)
    other.say("a sneaker, orbit left")
    sneaker = other.render()
    chat.say(f"same as #{sneaker.id}")
    assert chat.plan.template == "product" and chat.plan.camera.move == "orbit_left"


def test_no_generations_yet(store):
    c = Chat(store)
    c.say("a dog")
    reply = c.say("like the last one")
    assert "no earlier videos" in reply.text


def test_undo_after_recall(chat):
    before = chat.plan
    chat.say(f"same as #{chat.cat.id}")
    chat.say("undo")
    assert chat.plan == before


def test_without_store_uses_state_generations():
    state = new_conversation()
    rng = random.Random(1)
    state, _ = plan_turn(state, "a horse", rng=rng)
    state = state.with_generation(12, state.plan, label="a horse")
    state, _ = plan_turn(state, "8 steps", rng=rng)
    state, reply = plan_turn(state, "same as #12", rng=rng)
    assert state.plan.steps == 4 and "#12" in reply.text


def test_compare_two_generations_resolved_through_the_store(chat):
    plan_before = chat.plan
    reply = chat.say(f"compare #{chat.cat.id} and #{chat.land.id}")
    assert reply.compare is not None and (reply.compare.a, reply.compare.b) == (chat.cat.id, chat.land.id)
    assert chat.plan == plan_before  # nothing changed
    assert "side by side" in reply.text and "Landscape" in reply.text  # the differences, in words
    assert any(c.path == "template" for c in reply.compare.changes)
    reply = chat.say("compare the second one with the last one")
    assert (reply.compare.a, reply.compare.b) == (chat.land.id, chat.third.id)
    assert "a different seed" in reply.text


def test_compare_with_a_reference_that_points_nowhere_says_so(chat):
    reply = chat.say(f"compare #{chat.cat.id} and #999")
    assert reply.compare is None and "#999" in reply.text and "nothing to compare" in reply.text
