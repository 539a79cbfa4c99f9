"""The prompt compiler: cinematic, deterministic, no doubled adverbs, person's terms first in the negative."""

from __future__ import annotations

import re

import pytest

from agent.compiler import (
    camera_phrase, compile_negative, compile_plan, compile_prompt, conjugate, default_plan, motion_phrase, third_person,
)
from agent.plan import Motion
from agent.templates import all_templates


@pytest.mark.parametrize("verb,out", [("flow", "flows"), ("blush", "blushes"), ("fly", "flies"), ("go", "goes"),
                                      ("sway", "sways"), ("touch", "touches"), ("fix", "fixes")])
def test_third_person(verb, out):
    assert third_person(verb) == out


def test_conjugate_phrases():
    assert conjugate("tilt and smile", plural=False) == "tilts and smiles"
    assert conjugate("look around curiously", plural=False) == "looks around curiously"
    assert conjugate("sweep across the surface", plural=False) == "sweeps across the surface"
    assert conjugate("blink", plural=True) == "blink"
    assert conjugate("flowing", plural=False) == "flowing"


@pytest.mark.parametrize("motion,text", [
    (Motion(subject="hair", action="flow", speed=1.0, intensity=0.5), "the hair flows"),
    (Motion(subject="hair", action="flow gently", speed=0.6, intensity=0.4), "the hair slowly flows gently"),
    (Motion(subject="eyes", action="blink", speed=1.0, intensity=0.3), "the eyes gently blink"),
    (Motion(subject="clouds", action="drift", speed=0.3, intensity=0.5), "the clouds drift in slow motion"),
    (Motion(subject="tail", action="wag", speed=2.0, intensity=0.9), "the tail dramatically and quickly wags"),
    (Motion(subject="mouth", action="smile", speed=1.0, intensity=0.5), "the lips curve into a smile"),
])
def test_motion_phrases(motion, text):
    assert motion_phrase(motion) == text


@pytest.mark.parametrize("start", [1.0, 0.8, 0.5])
@pytest.mark.parametrize("factor", [0.6, 1.5])
def test_every_slower_or_faster_step_changes_the_words(start, factor):
    # The video model only sees the prompt: a pace change that leaves the words alone is lost.
    from agent.compiler import pace_word
    speed = start
    # between the slowest words (≤ 0.25×) and the fastest (> 3.5×)
    while 0.25 < min(speed, speed * factor) and max(speed, speed * factor) <= 3.5:
        assert pace_word(speed) != pace_word(speed * factor), (speed, factor)
        speed *= factor


def test_no_word_is_doubled_in_any_template_prompt():
    for t in all_templates():
        prompt = default_plan(t.id, seed=1).prompt
        words = re.findall(r"[a-z]+", prompt.lower())
        assert not any(a == b for a, b in zip(words, words[1:])), prompt
        assert "gently gently" not in prompt and "slowly slowly" not in prompt


def test_camera_language():
    plan = default_plan("portrait_subtle", seed=1)
    assert camera_phrase(plan) == "the camera holds perfectly still"
    assert camera_phrase(plan.with_changes(camera={"move": "zoom_in", "speed": 0.5})) == "the camera slowly pushes in"
    assert camera_phrase(plan.with_changes(camera={"move": "pan_left", "speed": 1.0})) == \
        "the camera smoothly pans to the left"
    assert camera_phrase(plan.with_changes(camera={"move": "orbit_right", "speed": 2.0})) == \
        "the camera orbits to the right around the subject quickly"


def test_prompt_reads_like_the_curated_ones():
    plan = default_plan("fashion", seed=1).with_changes(atmosphere=("soft studio light", "wind"))
    assert compile_prompt(plan) == (
        "A high-fashion close-up portrait, the hair flows gently at a leisurely pace, the eyes blink naturally, the camera "
        "slowly pushes in, soft studio light, a soft wind in the air. Shallow depth of field, flawless skin "
        "detail, cinematic, smooth natural motion.")


def test_prompt_without_motions():
    plan = default_plan("landscape", seed=1).with_changes(motions=())
    assert "everything in the scene holds still" in compile_prompt(plan)


def test_a_template_start_is_compiled_and_compiling_again_changes_nothing():
    for t in all_templates():
        plan = default_plan(t.id, seed=3)
        assert compile_plan(plan) == plan
        assert compile_plan(plan.with_changes(prompt="", negative_prompt="")) == plan


def test_override_wins():
    plan = default_plan("animals", seed=1).with_changes(prompt_override="my words")
    assert compile_prompt(plan) == "my words"


def test_negative_terms_first_and_each_once():
    plan = default_plan("fashion", seed=1).with_changes(negative_terms=("hands", "text"))
    neg = compile_negative(plan)
    terms = [t.strip() for t in neg.split(",")]
    assert terms[:2] == ["hands", "text"] and len(terms) == len(set(terms))
    assert "arms" in terms  # the fashion template's own terms
    assert "watermark" in terms  # the common ones


def test_every_template_compiles_within_limits():
    for t in all_templates():
        plan = compile_plan(default_plan(t.id, seed=1))
        assert 40 < len(plan.prompt) < 2000 and plan.negative_prompt
