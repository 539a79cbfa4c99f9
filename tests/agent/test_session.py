"""agent.session.plan_turn: state, undo, template lock, replies and diffs, planners, reproducibility."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from agent import ConversationState, MotionPlan, RulePlanner, new_conversation, plan_turn
from agent.compiler import default_plan
from agent.edits import AddMotion, ParseResult, ScaleMotion, SetDuration
from agent.replies import FieldChange, Reply, plan_diff
from agent.session import MAX_TURNS_KEPT
from devtools.conversations import CONVERSATIONS, run_case


def talk(*messages, template=None, seed=1234, **kw):
    state, rng, replies = new_conversation(template), random.Random(seed), []
    for m in messages:
        state, reply = plan_turn(state, m, rng=rng, **kw)
        replies.append(reply)
    return state, replies


def test_issue_example_reply_and_diff():
    state, (r1, r2) = talk("make her hair flow in the wind, slow zoom in", "slower hair, same seed")
    seed = state.plan.seed
    assert r1.text.startswith("Started from the Fashion / facial only template")
    assert "wind" in r1.text and "slow zoom in" in r1.text and "the hair flows" in r1.text  # all that was asked
    assert "→" not in r1.text and "×" not in r1.text  # no template numbers the person never saw
    assert r2.text == f"Hair 40% slower, seed {seed} kept."
    assert r2.diff == f"hair speed 0.8 → 0.48, seed kept {seed}"
    assert r2.changes == (FieldChange("motions.hair.speed", 0.8, 0.48),)
    assert str(r2) == r2.text and r2.planner == "rules" and r2.understood


def test_clamp_is_said():
    state, (r,) = talk("make it 31 seconds")  # the whole video, up to 30 s in chained segments (#12 §2)
    assert state.plan.duration_s == 30.0
    assert "31 s is longer than the 30 s maximum: set to 30.0 s" in r.text and "7 segments" in r.text


def test_story_pictures_before_and_after_the_first_message_and_undo():
    keys = ("a" * 64, "b" * 64, "c" * 64)
    state = new_conversation().with_story_pictures(keys)
    state, r = plan_turn(state, "portrait of a woman", rng=random.Random(1))
    assert state.plan.story_images == keys and state.plan.duration_s == 6.0  # 3 s per transition
    state, r = plan_turn(state, "go from the third picture to the first", rng=random.Random(1))
    assert state.plan.story_images == (keys[2], keys[0]) and "story of 2 pictures" in r.text.lower()
    state = state.with_story_pictures(keys[:2])  # a new upload replaces them; undo brings the old ones back
    assert state.plan.story_images == keys[:2]
    state, _ = plan_turn(state, "undo", rng=random.Random(1))
    assert state.plan.story_images == (keys[2], keys[0])


def test_gibberish_keeps_the_plan_and_asks():
    state, _ = talk("a dog")
    before = state.plan
    state2, reply = plan_turn(state, "xkcd plorf zzzt", rng=random.Random(1))
    assert state2.plan == before
    assert state2.history == state.history  # nothing to undo was added
    assert "what should move" in reply.text and not reply.understood and reply.unparsed == ("xkcd plorf zzzt",)
    MotionPlan.from_json(state2.plan.to_json())  # still valid


def test_first_message_gibberish_gives_the_default_plan():
    state, (reply,) = talk("xkcd plorf zzzt")
    assert state.plan == default_plan("portrait_subtle", seed=state.plan.seed)
    assert "what should move" in reply.text


def test_empty_message_asks():
    state, _ = talk("a dog")
    state2, reply = plan_turn(state, "  ", rng=random.Random(1))
    assert state2.plan == state.plan and "What should move" in reply.text


def test_replies_are_one_or_two_sentences():
    sentence_end = re.compile(r"[.?!](?:\s|$)")
    for case in CONVERSATIONS:
        _, replies = run_case(case)
        for r in replies:
            assert 1 <= len(sentence_end.findall(r.text)) <= 2, (case.name, r.text)


def test_reply_caps_long_lists():
    _, replies = talk("a dog", "8 steps, seed 3, 4 seconds, pan left, add fog, no text, guidance 2")
    assert "and 3 more changes" in replies[-1].text  # the two prompt strengths set alike are one item
    assert len(replies[-1].changes) == 8


def test_seeds_are_reproducible_and_random():
    a, _ = talk("a dog", "new seed", seed=7)
    b, _ = talk("a dog", "new seed", seed=7)
    c, _ = talk("a dog", "new seed", seed=8)
    assert a.plan == b.plan and a.plan.seed != c.plan.seed


def test_default_rng_draws_fresh_seeds():
    seeds = {plan_turn(new_conversation(), "a dog")[0].plan.seed for _ in range(5)}
    assert len(seeds) > 1


def test_undo_chain_and_bounds():
    state, replies = talk("a dog", "4 seconds", "8 steps", "undo", "undo", "undo")
    assert state.plan.duration_s == 3.0 and state.plan.steps == 4
    assert "nothing to undo" in replies[-1].text
    assert state.history == ()


def test_unchanged_turns_do_not_fill_the_undo_history():
    state, _ = talk("a dog", "zzzz qqq", "same seed", "4 seconds")
    # "same seed" changes seed_policy only; "4 seconds" changes the duration
    assert [p.duration_s for p in state.history] == [3.0, 3.0]


def test_reset_keeps_template_and_seed():
    state, replies = talk("a dog", "slower tail, 5 seconds, add fog", "start over")
    default = default_plan("animals", seed=state.plan.seed)
    assert state.plan == default
    assert "Started over from the animals template" in replies[-1].text
    state, _ = plan_turn(state, "undo", rng=random.Random(1))
    assert state.plan.duration_s == 5.0


def test_template_lock_from_the_start():
    state, (r,) = talk("a dog wagging its tail", template="product")
    assert state.plan.template == "product" and state.template_locked
    assert state.plan.motion("tail") is not None


def test_template_lock_later_switches_the_plan():
    state, _ = talk("a dog", "slower tail")
    state = state.lock_template("landscape")
    state, reply = plan_turn(state, "5 seconds", rng=random.Random(1))
    assert state.plan.template == "landscape" and state.plan.duration_s == 5.0
    assert state.plan.motion("tail").speed == 0.6  # the person's change survives the switch
    with pytest.raises(KeyError, match="choose one of"):
        state.lock_template("nope")


def test_hands_in_view_is_remembered():
    state, replies = talk("portrait of a woman", "her hands are visible", "she waves hello")
    assert state.hands_in_view
    assert state.plan.template == "portrait_dynamic" and state.plan.motion("hands") is not None


def test_fashion_safety_in_a_conversation():
    state, replies = talk("headshot, she smiles and blinks, no hand movement", "now she waves at the camera")
    assert state.plan.template == "fashion" and state.plan.motion("hands") is None
    assert "hands" in state.plan.negative_prompt
    assert "facial-only" in replies[-1].text


def test_turns_are_kept_short():
    state, _ = talk(*[f"{n} seconds" for n in (1, 2, 3, 4, 5, 1, 2, 3, 4, 5)])
    assert len(state.turns) == MAX_TURNS_KEPT
    assert state.turns[-2] == ("user", "5 seconds")


def test_state_is_frozen():
    state = new_conversation()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.plan = None  # type: ignore[misc]


class StubPlanner:
    name = "stub"

    def __init__(self, result=None, error=None):
        self.result, self.error, self.calls = result, error, []

    def parse(self, message, plan, *, history=(), template_locked=False):
        self.calls.append((message, plan, tuple(history), template_locked))
        if self.error:
            raise self.error
        return self.result


def test_any_planner_can_be_passed():
    stub = StubPlanner(ParseResult(edits=[ScaleMotion(subject="tail", speed_factor=0.5)], planner="hybrid"))
    state, _ = talk("a dog")
    state, reply = plan_turn(state, "whatever", planner=stub, rng=random.Random(1))
    assert state.plan.motion("tail").speed == 0.5 and reply.planner == "hybrid"
    message, plan, history, locked = stub.calls[0]
    assert plan.template == "animals" and history[0] == ("user", "a dog") and locked is False


def test_planner_edits_still_go_through_safety():
    stub = StubPlanner(ParseResult(edits=[AddMotion(subject="hands", action="wave")], planner="llm"))
    state, _ = talk("model headshot")
    state, reply = plan_turn(state, "wave", planner=stub, rng=random.Random(1))
    assert state.plan.motion("hands") is None and "facial-only" in reply.text


def test_failing_planner_falls_back_to_rules():
    stub = StubPlanner(error=TimeoutError("took 20 s"))
    state, reply = plan_turn(new_conversation(), "make it 4 seconds", planner=stub, rng=random.Random(1))
    assert state.plan.duration_s == 4.0 and reply.planner == "rules"
    assert "stub planner failed" in reply.text


def test_planner_sees_the_locked_template_start():
    stub = StubPlanner(ParseResult(edits=[SetDuration(seconds=2)]))
    state, _ = plan_turn(new_conversation("abstract"), "x", planner=stub, rng=random.Random(1))
    assert stub.calls[0][1].template == "abstract" and stub.calls[0][3] is True
    assert state.plan.duration_s == 2.0


def test_plan_diff_paths():
    a = default_plan("fashion", seed=1)
    b = a.with_changes(camera={"move": "pan_left", "speed": 0.5}, atmosphere=("wind",), seed=2)
    changes = plan_diff(a, b)
    assert [c.path for c in changes] == ["camera.move", "atmosphere", "seed"]
    assert str(changes[1]) == "atmosphere +wind -soft studio light"
    assert plan_diff(None, a) == (FieldChange("template", None, "fashion"),)


def test_reply_type():
    _, (r,) = talk("a dog")
    assert isinstance(r, Reply) and r.diff.startswith("new animals plan, seed ")


def test_rule_planner_is_the_default():
    state, reply = plan_turn(new_conversation(), "a dog", rng=random.Random(1), planner=RulePlanner())
    state2, reply2 = plan_turn(new_conversation(), "a dog", rng=random.Random(1))
    assert state == state2 and reply == reply2
    assert isinstance(state, ConversationState)


def test_template_guess_is_replaced_by_later_category_words():
    state, _ = talk("make it 4 seconds")
    assert state.template_guessed and state.plan.template == "portrait_subtle"
    state, reply = plan_turn(state, "it's a puppy", rng=random.Random(1))
    assert state.plan.template == "animals" and state.plan.duration_s == 4.0 and not state.template_guessed
    assert "Switched to the Animals template" in reply.text  # the title the template picker shows


def test_a_restored_state_is_not_treated_as_a_guess():
    plan = default_plan("animals", seed=5)
    state = ConversationState(plan=plan)  # as the app rebuilds it from stored messages
    state, _ = plan_turn(state, "the woman next to the dog smiles", rng=random.Random(1))
    assert state.plan.template == "animals"
