"""Questions get answers, not edits, with every planner; replies say in words everything that changed, with no
numbers the person never saw and plain names for the settings (issue #17 items 5 and 6)."""

from __future__ import annotations

import random

import pytest

from agent import new_conversation, plan_turn
from agent.edits import ParseResult, SetDuration
from agent.llm import HybridPlanner, LLMConfig, LLMPlanner
from agent.replies import GUIDANCE_LABELS, relative
from agent.rules import RulePlanner, questions_only


def talk(*messages, template=None, planner=None):
    state, rng, replies = new_conversation(template), random.Random(5), []
    for m in messages:
        state, reply = plan_turn(state, m, rng=rng, planner=planner)
        replies.append(reply)
    return state, replies


def test_the_first_reply_says_everything_asked_even_what_the_template_already_did():
    _, (r,) = talk("make her hair flow gently in the wind, slow zoom in")
    assert "the hair flows gently" in r.text and "wind" in r.text and "slow zoom in" in r.text
    assert "→" not in r.text and "×" not in r.text and "0." not in r.text  # no template numbers


@pytest.mark.parametrize("message, said", [
    ("slower hair", "Hair 40% slower."),
    ("faster camera", "Camera 60% faster."),
    ("much slower camera", "Camera 65% slower."),
    ("twice as fast hair", "Hair twice as fast."),
    ("subtler hair", "Hair moves 40% less."),
    ("pan left slowly", "Camera: slow pan left."),
    ("more guidance", "Prompt strength raised (early and late steps)."),
    ("guidance 4", "Prompt strength 4 (early and late steps)."),
    ("high-noise guidance 3", "Prompt strength (early steps) 3."),
])
def test_later_replies_say_changes_relative_to_before_in_plain_words(message, said):
    state, replies = talk("make her hair flow in the wind, slow zoom in", message)
    assert replies[-1].text.startswith(said), replies[-1].text


def test_relative_words():
    assert relative(0.6, "slower", "faster") == "40% slower"
    assert relative(1.5, "slower", "faster") == "50% faster"
    assert relative(3.0, "less", "more") == "3 times as much"
    assert relative(1.0, "slower", "faster") == ""


def test_the_diff_names_guidance_as_the_plan_panel_does():
    _, replies = talk("a dog", "guidance 3")
    assert GUIDANCE_LABELS["guidance_scale"] in replies[-1].diff and "guidance 2" not in replies[-1].diff


QUESTIONS = [
    ("what can you do?", "slow zoom in"),
    ("can you help me?", "what should move"),
    ("what's the plan?", "Now:"),
    ("what camera move is this?", "Slow zoom in"),
    ("is the camera moving?", "pushes in"),
    ("why is it slow?", "steps"),
    ("what seed is this?", "The seed is"),
    ("how fast is the hair?", "The hair flows"),
    ("what are the eyes doing?", "blink"),
    ("what does prompt strength mean?", "how closely each step follows the prompt"),
    ("how many steps?", "prompt strength (early steps)"),
    ("why is the sky blue?", "nothing changed"),
    ("write me a poem", "only help with this video"),
    ("what's the weather", "only help with this video"),
]


@pytest.mark.parametrize("question, answer", QUESTIONS)
def test_questions_are_answered_from_the_plan_and_change_nothing(question, answer):
    state, (_, r) = talk("make her hair flow in the wind, slow zoom in", question)
    before, _ = talk("make her hair flow in the wind, slow zoom in")
    assert answer in r.text, r.text
    assert state.plan == before.plan and "Nothing to change" not in r.text


def test_a_request_phrased_as_a_question_is_still_an_edit():
    state, (_, r) = talk("a dog", "can you make the tail slower?")
    assert "Tail 40% slower" in r.text


class _NoModel:
    """An LLM side that must not be asked."""

    config = LLMConfig(model="stub", mode="always")
    calls = 0

    def propose(self, *args, **kwargs):
        self.calls += 1
        raise AssertionError("the model was asked about a question")


def _ask(planner, *questions):
    """A plan made by the rules, then `questions` with `planner`: (states, replies)."""
    rng = random.Random(5)
    state, _ = plan_turn(new_conversation(), "a dog", rng=rng)
    out = []
    for q in questions:
        after, reply = plan_turn(state, q, rng=rng, planner=planner)
        assert after.plan == state.plan
        out.append(reply.text)
    return out


def test_the_hybrid_answers_questions_with_the_rules_even_when_the_model_always_leads():
    llm = _NoModel()
    hybrid = HybridPlanner(RulePlanner(), llm, llm.config)
    assert _ask(hybrid, "what seed is this?", "nevermind") == _ask(None, "what seed is this?", "nevermind")
    assert llm.calls == 0


def test_the_llm_only_planner_routes_questions_to_the_same_answers():
    llm = LLMPlanner(LLMConfig(model="stub"), loader=lambda cfg: pytest.fail("the model was loaded for a question"))
    asked = ("what camera move is this?", "write me a poem", "why is the sky blue?")
    assert _ask(llm, *asked) == _ask(None, *asked)


def test_questions_only_is_none_for_an_edit_or_a_mixed_message():
    assert questions_only("make it 4 seconds", None) is None
    assert questions_only("what seed is this? and make it 4 seconds", None) is None
    asked = questions_only("what can you do?", None)
    assert isinstance(asked, ParseResult) and asked.answers and asked.edits == []
    assert SetDuration(seconds=4) in RulePlanner().parse("make it 4 seconds", None).edits


def test_a_question_as_the_first_message_starts_no_plan_even_when_it_names_a_subject():
    state, (r,) = talk("what are the eyes doing?")
    assert state.plan is None and "There is no plan yet" in r.text
    state, (_, r) = talk("a dog", "what are the clouds doing?")
    assert "The clouds do not move in this plan" in r.text
