"""agent.edits.apply: each plan-level edit, clamps with their notes, the hand-safety rules, template switches."""

from __future__ import annotations

import logging
import random

import pytest

from agent.compiler import default_plan
from agent.edits import (
    AddAtmosphere, AddMotion, AddNegative, EditError, Recall, RemoveAtmosphere, RemoveMotion, Reset, ScaleCamera,
    ScaleMotion, SetCamera, SetDuration, SetGuidance, SetPrompt, SetSeed, SetSteps, SetTemplate, Undo, apply,
    draw_seed, edits_from_json, edits_to_json, parse_edits,
)
from agent.plan import MAX_SEED
from agent.templates import get_template
from devtools.conversations import flatten


@pytest.fixture
def fashion():
    return default_plan("fashion", seed=1234)


@pytest.fixture
def portrait():
    return default_plan("portrait_subtle", seed=1234)


def changed(a, b):
    fa, fb = flatten(a), flatten(b)
    return {k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k)}


def test_duration_clamped_high_with_the_note(fashion, rng, caplog):
    with caplog.at_level(logging.INFO, logger="agent.edits"):
        plan, notes = apply(fashion, [SetDuration(seconds=31)], rng=rng)
    assert plan.duration_s == 30.0 and plan.num_frames == 481  # the whole video; 7 chained segments (#12 §2)
    assert notes == ["31 s is longer than the 30 s maximum: set to 30.0 s",
                     "30 s renders as 7 segments of up to 5 s, each continuing from the last frame of the one before"]
    assert "clamped duration_s" in caplog.text
    assert changed(fashion, plan) == {"duration_s"}


def test_duration_clamped_low(fashion, rng):
    plan, notes = apply(fashion, [SetDuration(seconds=0.2)], rng=rng)
    assert plan.duration_s == 0.5 and plan.num_frames == 9
    assert notes == ["0.2 s is shorter than the 0.5 s minimum: set to 0.5 s"]


@pytest.mark.parametrize("seconds,frames", [(0.5, 9), (1, 17), (3, 49), (5, 81)])
def test_duration_in_range_no_note(fashion, rng, seconds, frames):
    plan, notes = apply(fashion, [SetDuration(seconds=seconds)], rng=rng)
    assert (plan.duration_s, plan.num_frames, notes) == (seconds, frames, [])


def test_steps_clamped_both_sides(fashion, rng):
    plan, notes = apply(fashion, [SetSteps(steps=30)], rng=rng)
    assert plan.steps == 30 and notes == []  # within the contract; the render's recipe may clamp it (with a note)
    plan, notes = apply(fashion, [SetSteps(steps=80)], rng=rng)
    assert plan.steps == 50 and notes == ["80 steps is more than the 50 maximum: set to 50"]
    plan, notes = apply(fashion, [SetSteps(steps=2)], rng=rng)
    assert plan.steps == 4 and notes == ["2 steps is fewer than the 4 minimum: set to 4"]


def test_scale_motion_strictly_and_only_that_motion(fashion, rng):
    plan, notes = apply(fashion, [ScaleMotion(subject="hair", speed_factor=0.6)], rng=rng)
    assert plan.motion("hair").speed == pytest.approx(0.48)
    assert changed(fashion, plan) == {"motions.hair.speed"} and notes == []


def test_scale_motion_clamps_and_says_so(fashion, rng):
    plan, notes = apply(fashion, [ScaleMotion(subject="hair", speed_factor=10)], rng=rng)
    assert plan.motion("hair").speed == 5.0
    assert notes == ["hair speed 8× is past the maximum 5×: set to 5×"]


def test_scale_intensity_caps_at_one(fashion, rng):
    plan, _ = apply(fashion, [ScaleMotion(subject="eyes", intensity_factor=10)], rng=rng)
    assert plan.motion("eyes").intensity == 1.0
    plan, notes = apply(plan, [ScaleMotion(subject="eyes", intensity_factor=2)], rng=rng)
    assert notes == ["eyes is already at full intensity"]


def test_scale_all(fashion, rng):
    plan, _ = apply(fashion, [ScaleMotion(subject="all", speed_factor=0.5)], rng=rng)
    assert [m.speed for m in plan.motions] == [0.4, 0.5]


def test_scale_missing_subject_is_noted(fashion, rng):
    plan, notes = apply(fashion, [ScaleMotion(subject="tail", speed_factor=0.5)], rng=rng)
    assert plan == fashion and notes == ["tail is not moving, so there was nothing to slow"]


def test_add_motion_replaces_in_place_and_appends(fashion, rng):
    plan, _ = apply(fashion, [AddMotion(subject="hair", action="whip around", speed=2.0, intensity=0.9),
                              AddMotion(subject="mouth", action="smile")], rng=rng)
    assert [m.subject for m in plan.motions] == ["hair", "eyes", "mouth"]
    assert plan.motion("hair").action == "whip around"


def test_remove_motion(fashion, rng):
    plan, notes = apply(fashion, [RemoveMotion(subject="eyes")], rng=rng)
    assert plan.motion("eyes") is None and changed(fashion, plan) == {
        "motions.eyes.action", "motions.eyes.speed", "motions.eyes.intensity"}
    same, notes = apply(plan, [RemoveMotion(subject="eyes")], rng=rng)
    assert same == plan and notes == []


def test_camera_set_and_scale(fashion, rng):
    plan, _ = apply(fashion, [SetCamera(move="pan_left")], rng=rng)
    assert (plan.camera.move, plan.camera.speed) == ("pan_left", 0.5)  # speed None keeps the pace
    plan, _ = apply(plan, [ScaleCamera(factor=0.5)], rng=rng)
    assert plan.camera.speed == 0.25
    still, _ = apply(plan, [SetCamera(move="static")], rng=rng)
    _, notes = apply(still, [ScaleCamera(factor=2)], rng=rng)
    assert notes == ["the camera is static, so there was no camera pace to change"]


def test_guidance(fashion, rng):
    plan, _ = apply(fashion, [SetGuidance(high=3.5)], rng=rng)
    assert (plan.guidance_scale, plan.guidance_scale_2) == (3.5, 1.0)
    plan, _ = apply(plan, [SetGuidance(high=4, low=2)], rng=rng)
    assert (plan.guidance_scale, plan.guidance_scale_2) == (4.0, 2.0)


def test_seed_policies(fashion, rng):
    same, _ = apply(fashion, [SetSeed(policy="same")], rng=rng)
    assert same.seed == 1234 and same.seed_policy == "same"
    new, _ = apply(fashion, [SetSeed(policy="new")], rng=rng)
    assert new.seed != 1234 and 0 <= new.seed <= MAX_SEED and new.seed_policy == "new"
    explicit, _ = apply(fashion, [SetSeed(policy="explicit", value=42)], rng=rng)
    assert explicit.seed == 42 and explicit.seed_policy == "explicit"
    with pytest.raises(EditError, match="needs a value"):
        apply(fashion, [SetSeed(policy="explicit")], rng=rng)


def test_new_seed_is_reproducible_from_rng(fashion):
    a, _ = apply(fashion, [SetSeed(policy="new")], rng=random.Random(9))
    b, _ = apply(fashion, [SetSeed(policy="new")], rng=random.Random(9))
    assert a.seed == b.seed


def test_draw_seed_avoids_current():
    class Stuck(random.Random):
        calls = 0

        def randrange(self, *a):
            self.calls += 1
            return 7 if self.calls == 1 else 8

    assert draw_seed(Stuck(), avoid=7) == 8


def test_negative_terms_dedup_and_compiled_first(portrait, rng):
    plan, _ = apply(portrait, [AddNegative(terms=("Hands", "text")), AddNegative(terms=("hands",))], rng=rng)
    assert plan.negative_terms == ("hands", "text")
    assert plan.negative_prompt.startswith("hands, text, ")


def test_atmosphere_add_remove_and_cap(portrait, rng):
    plan, _ = apply(portrait, [AddAtmosphere(items=("wind", "fog")), RemoveAtmosphere(items=("fog",))], rng=rng)
    assert plan.atmosphere == ("wind",)
    items = tuple(f"item {i}" for i in range(8))
    plan, notes = apply(plan, [AddAtmosphere(items=items)], rng=rng)
    assert len(plan.atmosphere) == 8 and plan.atmosphere[-1] == "item 7"
    assert notes == ["at most 8 atmosphere items: kept the newest"]


def test_prompt_override(portrait, rng):
    plan, _ = apply(portrait, [SetPrompt(text="my own words")], rng=rng)
    assert plan.prompt == "my own words" and plan.prompt_override == "my own words"
    plan, _ = apply(plan, [SetPrompt(text=None)], rng=rng)
    assert plan.prompt_override is None and plan.prompt.startswith("A gentle living portrait")


def test_session_ops_are_refused(fashion, rng):
    for op in (Undo(), Reset(), Recall(index=1)):
        with pytest.raises(EditError, match="plan_turn"):
            apply(fashion, [op], rng=rng)


# --- safety ---------------------------------------------------------------------------------------------

def test_fashion_never_moves_hands(fashion, rng):
    plan, notes = apply(fashion, [AddMotion(subject="hands", action="wave")], rng=rng, hands_in_view=True)
    assert plan.motion("hands") is None
    assert "hands" in plan.negative_terms and "hands" in plan.negative_prompt
    assert notes and "facial-only" in notes[0]


def test_hands_need_to_be_in_view_outside_portrait_dynamic(portrait, rng):
    plan, notes = apply(portrait, [AddMotion(subject="hands", action="wave")], rng=rng)
    assert plan.motion("hands") is None and "visible" in notes[0]
    plan, notes = apply(portrait, [AddMotion(subject="hands", action="wave")], rng=rng, hands_in_view=True)
    assert plan.motion("hands").action == "wave" and notes == []


def test_portrait_dynamic_only_with_hands_in_view(portrait, rng):
    plan, notes = apply(portrait, [SetTemplate(template="portrait_dynamic")], rng=rng)
    assert plan.template == "portrait_subtle" and "visible" in notes[0]
    plan, notes = apply(portrait, [SetTemplate(template="portrait_dynamic")], rng=rng, hands_in_view=True)
    assert plan.template == "portrait_dynamic" and plan.motion("hands") is not None


def test_hands_move_in_portrait_dynamic(rng):
    plan = default_plan("portrait_dynamic", seed=1)
    plan, notes = apply(plan, [AddMotion(subject="hands", action="clap")], rng=rng)
    assert plan.motion("hands").action == "clap" and notes == []


def test_switch_to_fashion_drops_hand_motion(rng):
    plan = default_plan("portrait_dynamic", seed=1)
    plan, notes = apply(plan, [SetTemplate(template="fashion")], rng=rng)
    assert plan.template == "fashion" and plan.motion("hands") is None
    assert "hands" in plan.negative_prompt


# --- template switch ------------------------------------------------------------------------------------

def test_template_switch_keeps_what_the_person_changed(fashion, rng):
    edited, _ = apply(fashion, [ScaleMotion(subject="hair", speed_factor=0.5), SetDuration(seconds=5),
                                AddAtmosphere(items=("wind",))], rng=rng)
    plan, _ = apply(edited, [SetTemplate(template="landscape")], rng=rng)
    land = get_template("landscape")
    assert plan.template == "landscape" and plan.seed == 1234
    assert plan.motion("hair").speed == 0.4  # changed by the person: kept
    assert plan.motion("eyes") is None  # fashion default: replaced
    assert {m.subject for m in land.motions} <= {m.subject for m in plan.motions}
    assert plan.duration_s == 5.0  # changed: kept
    assert plan.camera == land.camera  # untouched: follows the template
    assert plan.atmosphere == ("wind", "soft natural light")
    assert plan.steps == land.steps


def test_same_template_is_a_no_op(fashion, rng):
    plan, notes = apply(fashion, [SetTemplate(template="fashion")], rng=rng)
    assert plan == fashion and notes == []


def test_apply_returns_compiled_plan(fashion, rng):
    plan, _ = apply(fashion, [AddMotion(subject="clouds", action="drift")], rng=rng)
    assert "the clouds drift" in plan.prompt


def test_edit_json_round_trip():
    edits = [SetTemplate(template="animals"), AddMotion(subject="tail", action="wag", speed=1.5),
             Recall(query="cat"), SetSeed(policy="explicit", value=42)]
    assert edits_from_json(edits_to_json(edits)) == edits
    with pytest.raises(Exception, match="invalid edit list"):
        parse_edits([{"op": "recall", "query": ""}])
