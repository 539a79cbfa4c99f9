"""Edits for long videos, story mode, smoother and larger (#12 §2 §4 §5 §6): apply, notes, JSON, the LLM grammar."""

from __future__ import annotations

import random
import re

import pytest

from agent.compiler import default_plan
from agent.edits import SetDuration, apply, edits_from_json, edits_to_json
from agent.edits_long import ScaleTransition, SetOutputFps, SetStory, SetUpscale
from agent.llm.grammar import GrammarSpec, edit_list_pattern
from agent.plan import MotionPlan, PlanError

KEYS = tuple(c * 64 for c in "abcd")


@pytest.fixture
def plan():
    return default_plan("portrait_subtle", seed=3)


def run(plan, *edits):
    return apply(plan, list(edits), rng=random.Random(0))


def test_story_order_pace_and_their_refusals(plan):
    story = plan.with_changes(story_images=KEYS[:3])
    new, notes = run(story, SetStory(order=(3, 1, 2)), ScaleTransition(index=2, factor=0.6))
    assert new.story_images == (KEYS[2], KEYS[0], KEYS[1]) and [t.pace for t in new.transitions] == [1.0, 0.6]
    assert new.duration_s == 6.0 and "3 s per transition" in notes[0]
    assert new.transition_durations()[1] > new.transition_durations()[0]  # slower gets more of the time
    same, notes = run(story, SetStory(order=(1, 5)))
    assert same.story_images == story.story_images and "picture 5 is not one of them" in notes[0]
    same, notes = run(story, ScaleTransition(index=3, factor=0.5))
    assert same == story and "no transition 3" in notes[0]
    none, notes = run(plan, SetStory(order=(1, 2)))
    assert none.story_images == () and "upload two to six" in notes[0]
    off, _ = run(story, SetStory(order=()))
    assert off.story_images == () and off.transitions == ()
    slowest, notes = run(new, ScaleTransition(index=2, factor=0.1))
    assert slowest.transitions[1].pace == 0.2 and "slowest" in notes[0]


def test_fps_upscale_and_duration_notes(plan):
    new, notes = run(plan, SetOutputFps(fps=32), SetUpscale(factor=2.0), SetDuration(seconds=12))
    assert (new.output_fps, new.upscale.describe(), new.segment_count) == (32, "2×", 3)
    assert notes == ["12 s renders as 3 segments of up to 5 s, each continuing from the last frame of the one before"]
    same, notes = run(new, SetOutputFps(fps=16))
    assert same.output_fps is None and "would not be smoother" in notes[0]
    tall, notes = run(new, SetUpscale(factor=3.0, height=720))
    assert tall.upscale.describe() == "720p" and "kept 720p" in notes[0]
    back, _ = run(tall, SetUpscale())
    assert back.upscale is None


def test_plan_contract_for_the_new_fields(plan):
    with pytest.raises(PlanError, match="story_images"):
        plan.with_changes(story_images=("nothex",) * 2)
    with pytest.raises(PlanError, match="transitions"):
        plan.with_changes(story_images=KEYS[:2], transitions=({"pace": 1.0}, {"pace": 1.0}))
    with pytest.raises(PlanError, match="0.5 s per transition"):
        plan.with_changes(story_images=KEYS[:4], duration_s=1.0)
    with pytest.raises(PlanError, match="upscale"):
        plan.with_changes(upscale={"factor": 2.0, "height": 720})
    back = MotionPlan.from_json(plan.with_changes(story_images=KEYS[:2], output_fps=32, upscale={"height": 720}).to_json())
    assert back.story_images == KEYS[:2] and back.output_fps == 32 and back.upscale.height == 720


@pytest.mark.parametrize("text", [
    '[{"op":"set_story","order":[1,3,2]}]', '[{"op":"set_story","order":[]}]',
    '[{"op":"scale_transition","index":2,"factor":0.6}]', '[{"op":"set_output_fps","fps":32}]',
    '[{"op":"set_upscale","factor":null,"height":720}]', '[{"op":"set_upscale","factor":2,"height":null}]',
])
def test_the_llm_grammar_writes_the_new_edits(text):
    assert re.fullmatch(edit_list_pattern(GrammarSpec()).regex, text)
    assert edits_from_json(edits_to_json(edits_from_json(text))) == edits_from_json(text)


def test_the_llm_grammar_refuses_out_of_range_story_edits():
    pattern = edit_list_pattern(GrammarSpec()).regex
    for bad in ('[{"op":"set_story","order":[7]}]', '[{"op":"set_output_fps","fps":120}]',
                '[{"op":"scale_transition","index":6,"factor":0.6}]'):
        assert not re.fullmatch(pattern, bad), bad
