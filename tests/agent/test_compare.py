""""compare #3 and #5": the rule planner reads a compare request with two history references, the session
resolves them (like "#12" and "the second one") into a `Comparison` on the reply; the plan never changes."""

from __future__ import annotations

import random

import pytest

from agent import new_conversation, plan_turn
from agent.edits import CompareRequest, Recall, SetDuration
from agent.replies import Comparison
from agent.rules import parse


@pytest.mark.parametrize("message, a, b", [
    ("compare #3 and #5", Recall(generation_id=3), Recall(generation_id=5)),
    ("Compare #3 with #5, please", Recall(generation_id=3), Recall(generation_id=5)),
    ("#2 vs #4", Recall(generation_id=2), Recall(generation_id=4)),
    ("show #3 and #5 side by side", Recall(generation_id=3), Recall(generation_id=5)),
    ("compare the first and the second one", Recall(index=1), Recall(index=2)),
    ("compare video 2 to the last one", Recall(generation_id=2), Recall(index=-1)),
    ("compare this one with the first video", Recall(index=-1), Recall(index=1)),
])
def test_compare_requests_are_read_with_their_two_references(message, a, b):
    result = parse(message, None)
    assert result.compare == CompareRequest(a=a, b=b)
    assert result.edits == [] and result.unparsed == []  # no Recall edits: the plan is not replaced


def test_the_rest_of_the_message_is_read_as_usual():
    result = parse("compare #3 and #5, and make it 4 seconds", None)
    assert result.compare == CompareRequest(a=Recall(generation_id=3), b=Recall(generation_id=5))
    assert SetDuration(seconds=4) in result.edits


def test_compare_alone_or_one_reference_is_not_a_compare():
    assert parse("compare the hair", None).compare is None
    assert parse("same as #3 and slower", None).compare is None


def _rendered():
    rng = random.Random(2)
    state, _ = plan_turn(new_conversation(), "a dog on the beach, slow zoom in", rng=rng)
    state = state.with_generation(3, state.plan, "dog beach")
    state, _ = plan_turn(state, "slower tail, pan left", rng=rng)
    return state.with_generation(5, state.plan, "slower tail"), rng


def test_the_reply_carries_the_resolved_comparison_and_the_plan_stays():
    state, rng = _rendered()
    after, reply = plan_turn(state, "compare #3 and #5", rng=rng)
    assert after.plan == state.plan and after.history == state.history
    assert isinstance(reply.compare, Comparison) and (reply.compare.a, reply.compare.b) == (3, 5)
    assert {c.path for c in reply.compare.changes} >= {"motions.tail.speed", "camera.move"}
    assert "Here are #3 and #5 side by side" in reply.text and "tail 40% slower" in reply.text


def test_compare_by_position_and_failures_are_said():
    state, rng = _rendered()
    _, reply = plan_turn(state, "compare the first and the second one", rng=rng)
    assert (reply.compare.a, reply.compare.b) == (3, 5)
    _, reply = plan_turn(state, "compare #3 and #3", rng=rng)
    assert reply.compare is None and "two different videos" in reply.text
    _, reply = plan_turn(new_conversation(), "compare #3 and #5", rng=rng)
    assert reply.compare is None and "nothing to compare" in reply.text
