"""The planner never raises on odd input: every message gives a valid plan and a reply."""

from __future__ import annotations

import random

import pytest

from agent import MotionPlan, new_conversation, plan_turn
from agent import camera_words as CW
from agent import template_words as TW
from agent import vocabulary as V
from devtools.conversations import CONVERSATIONS

ODD = [
    "0x faster", "1000 times slower", "100 times faster hair", "seed -5", "-3 seconds", "0 seconds", "0 steps",
    "#0", "same as #0", "99999999999999999999 steps", "seed 99999999999999999999999", "guidance 1000",
    "cfg 0", "0 frames", "1 frames", "100000 frames", "9999 minutes", "half a second longer", "the 0th one",
    "rerun the tenth one", "prompt:", "prompt: " + "x" * 3000, "avoid " + "y" * 200, "no " + "z" * 100,
    "hair " * 200, "🙂🙂🙂", "ÄÖÜ ß", "\n\t", "((()))", "slower slower slower faster", "undo undo undo",
    "no no no", "not not not the hair", "only only the the hair", "the one with the", "go back to the video",
    "turn " + "left " * 50, "a" * 4000, "0.000001 seconds", "1e9 seconds", "seed 0", "seed 2147483647",
    "seed 2147483648", "12.5.3 seconds", "3..5 s", "make it 3 s and 4 s and 5 s",
]


@pytest.mark.parametrize("message", ODD)
def test_odd_messages(message):
    rng = random.Random(1)
    state, _ = plan_turn(new_conversation(), "a dog", rng=rng)
    state, reply = plan_turn(state, message, rng=rng)
    MotionPlan.from_json(state.plan.to_json())
    assert reply.text


def test_random_word_salad_from_the_vocabulary():
    words = (list(V.SUBJECT_SYNONYMS) + list(V.ACTIONS) + list(CW.ATMOSPHERE_SYNONYMS) + list(TW.TEMPLATE_CUES)
             + list(V.MILD_WORDS + V.STRONG_WORDS + V.SLOWER_WORDS + V.FASTER_WORDS + V.MORE_WORDS + V.LESS_WORDS)
             + list(V.SEED_NEW + V.SEED_SAME + V.UNDO_PHRASES + V.RESET_PHRASES + V.QUALITY_UP + V.QUALITY_DOWN)
             + ["no", "not", "without", "only", "and", "but", "with", ",", "#3", "7", "0.5", "seconds", "steps",
                "seed", "guidance", "the second one", "zoom in", "pan left", "orbit", "keep", "still", "camera"])
    r = random.Random(42)
    for template in (None, "fashion", "portrait_dynamic"):
        state = new_conversation(template)
        for _ in range(150):
            message = " ".join(r.choice(words) for _ in range(r.randint(1, 12)))
            state, reply = plan_turn(state, message, rng=r)
            MotionPlan.from_json(state.plan.to_json())
            if state.plan.template == "fashion":
                assert state.plan.motion("hands") is None, message
            assert reply.text


def test_all_conversation_messages_in_any_order():
    messages = [t.say for c in CONVERSATIONS for t in c.turns]
    r = random.Random(3)
    r.shuffle(messages)
    state = new_conversation()
    for m in messages:
        state, reply = plan_turn(state, m, rng=r)
        assert MotionPlan.from_json(state.plan.to_json()) == state.plan and reply.text
