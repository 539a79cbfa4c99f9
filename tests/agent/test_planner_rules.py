"""The rule planner on its own: message → edits, table-driven over the vocabulary."""

from __future__ import annotations

import pytest

from agent import vocabulary as V
from agent.compiler import default_plan
from agent.edits import (
    AddAtmosphere, AddMotion, AddNegative, Recall, RemoveAtmosphere, RemoveMotion, Reset, ScaleCamera, ScaleMotion,
    SetCamera, SetDuration, SetGuidance, SetPrompt, SetSeed, SetSteps, SetTemplate, Undo, MAX_EDITS_PER_TURN,
)
from agent.rules import RulePlanner, choose_template, parse
from agent.rules.clauses import split_clauses


def plan_of(template="portrait_subtle"):
    return default_plan(template, seed=1)


def ops(message, template="portrait_subtle", **kw):
    return parse(message, plan_of(template), **kw).edits


# --- synonyms ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("word,subject", [
    ("locks", "hair"), ("strands", "hair"), ("curls", "hair"), ("pup", "animal"), ("kitten", "animal"),
    ("horse", "animal"), ("sea", "water"), ("river", "water"), ("waterfall", "water"), ("waves", "water"),
    ("dress", "clothing"), ("scarf", "clothing"), ("cape", "clothing"), ("leaves", "trees"), ("branches", "trees"),
    ("flames", "fire"), ("steam", "smoke"), ("snowflakes", "snow"), ("sparkles", "particles"), ("lips", "mouth"),
    ("fingers", "hands"), ("shoulders", "body"), ("feathers", "wings"), ("whiskers", "ears"), ("petals", "flowers"),
    ("backdrop", "background"), ("sneaker", "product"), ("wheat", "grass"), ("gaze", "eyes"), ("neck", "head"),
])
def test_subject_synonyms(word, subject):
    assert V.SUBJECT_SYNONYMS[word] == subject
    edits = ops(f"the {word} sway", "portrait_subtle")
    assert any(getattr(e, "subject", None) == subject for e in edits), edits


def test_every_canonical_subject_is_reachable():
    from agent.plan import SUBJECTS

    assert set(V.SUBJECT_SYNONYMS.values()) == set(SUBJECTS)
    assert set(V.DEFAULT_ACTIONS) == set(SUBJECTS)


@pytest.mark.parametrize("message,subject,action", [
    ("she blinks", "eyes", "blink"), ("he nods", "head", "nod"), ("the tail wags", "tail", "wag"),
    ("she laughs", "mouth", "laugh"), ("breathing slowly", "body", "breathe"), ("ears twitching", "ears", "twitch"),
    ("wings flapping", "wings", "flap"), ("clouds drifting", "clouds", "drift"), ("the fire flickers", "fire", "flicker"),
    ("petals falling", "flowers", "fall"), ("turn her head to the left", "head", "turn to the left"),
    ("she looks at the camera", "head", "look at the camera"), ("the dress billows", "clothing", "billow"),
])
def test_actions(message, subject, action):
    edits = ops(message, "abstract")
    add = next(e for e in edits if isinstance(e, AddMotion))
    assert (add.subject, add.action) == (subject, action)


def test_verb_alone_refers_to_the_motion_already_doing_it():
    edits = ops("looking around faster", "animals")
    assert edits == [ScaleMotion(subject="animal", speed_factor=1.6)]


# --- degrees --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("message,factor", [
    ("slower hair", 0.6), ("slightly slower hair", 0.8), ("a bit slower hair", 0.8), ("much slower hair", 0.35),
    ("way slower hair", 0.35), ("faster hair", 1.6), ("a little faster hair", 1.25), ("much faster hair", 2.5),
    ("hair twice as fast", 2.0), ("hair half as fast", 0.5), ("hair 3x slower", 1 / 3), ("hair at half speed", 0.5),
])
def test_speed_degrees(message, factor):
    (edit,) = ops(message, "fashion")
    assert isinstance(edit, ScaleMotion) and edit.subject == "hair"
    assert edit.speed_factor == pytest.approx(factor) and edit.intensity_factor == 1.0


@pytest.mark.parametrize("message,factor", [
    ("more hair movement", 1.5), ("stronger hair", 1.5), ("subtler hair", 0.6), ("less hair motion", 0.6),
    ("much more hair", 2.0), ("slightly subtler hair", 0.8),
])
def test_intensity_degrees(message, factor):
    (edit,) = ops(message, "fashion")
    assert isinstance(edit, ScaleMotion) and edit.intensity_factor == pytest.approx(factor)
    assert edit.speed_factor == 1.0


def test_absolute_pace_for_new_motion():
    (edit,) = ops("the clouds drift very slowly", "portrait_subtle")
    assert edit == AddMotion(subject="clouds", action="drift", speed=0.3, intensity=0.5)


# --- camera ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("message,move", [
    ("zoom in", "zoom_in"), ("push in", "zoom_in"), ("slow push-in", "zoom_in"), ("move closer", "zoom_in"),
    ("zoom out", "zoom_out"), ("pull back", "dolly_out"), ("dolly in", "dolly_in"), ("dolly out", "dolly_out"),
    ("pan left", "pan_left"), ("pan to the right", "pan_right"), ("pan across to the right", "pan_right"),
    ("pan across to the left", "pan_left"), ("tilt up", "tilt_up"), ("tilt down", "tilt_down"),
    ("the camera slowly rises", "tilt_up"), ("camera descends", "tilt_down"), ("circle around", "orbit_right"),
    ("orbit left", "orbit_left"), ("orbit to the right", "orbit_right"), ("counterclockwise orbit", "orbit_left"),
    ("360 turntable", "orbit_right"), ("static camera", "static"), ("keep the camera still", "static"),
    ("no camera movement", "static"), ("stop the zoom", "static"), ("locked-off shot", "static"),
    ("tripod", "static"), ("crane up", "tilt_up"),
])
def test_camera_phrases(message, move):
    edits = ops(message, "portrait_subtle")
    assert any(isinstance(e, SetCamera) and e.move == move for e in edits), edits


def test_camera_pace_words():
    assert ops("slow zoom in", "landscape") == [SetCamera(move="zoom_in", speed=0.5)]
    assert ops("very slow zoom in", "landscape") == [SetCamera(move="zoom_in", speed=0.3)]
    assert ops("fast pan left", "landscape") == [SetCamera(move="pan_left", speed=1.6)]
    assert ops("slower zoom", "fashion") == [ScaleCamera(factor=0.6)]
    assert ops("speed up the camera", "fashion") == [ScaleCamera(factor=1.6)]
    assert ops("much slower pan", "landscape") == [ScaleCamera(factor=0.35)]


def test_ambiguous_rise_with_a_subject_is_motion():
    assert ops("smoke rises", "landscape") == [AddMotion(subject="smoke", action="rise")]


# --- durations, numbers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("message,seconds", [
    ("3s", 3.0), ("3 s", 3.0), ("3 sec", 3.0), ("4 seconds", 4.0), ("2.5 seconds", 2.5), ("three seconds", 3.0),
    ("two and a half seconds", 2.5), ("half a second", 0.5), ("a second", 1.0), ("one second", 1.0),
    ("a second and a half", 1.5), ("12 seconds", 12.0), ("a minute", 60.0), ("33 frames", 2.0),
    ("as long as possible", 30.0), ("shortest", 0.5), ("five seconds", 5.0),
])
def test_durations(message, seconds):
    assert ops(message) == [SetDuration(seconds=seconds)]


def test_longer_shorter_steps_from_current():
    assert ops("longer") == [SetDuration(seconds=4.0)]
    assert ops("a bit longer") == [SetDuration(seconds=3.5)]
    assert ops("much shorter") == [SetDuration(seconds=1.0)]
    assert ops("2 seconds longer") == [SetDuration(seconds=5.0)]


def test_longer_at_the_maximum_says_so():
    r = parse("longer", plan_of().with_changes(duration_s=30.0))
    assert r.edits == [] and r.notes == ["the clip is already at the 30 s maximum"]


# --- steps, guidance, seed --------------------------------------------------------------------------------

@pytest.mark.parametrize("message,steps", [
    ("8 steps", 8), ("eight steps", 8), ("higher quality", 8), ("more steps", 8), ("best quality", 12),
    ("slightly higher quality", 6),
])
def test_steps_up(message, steps):
    assert ops(message) == [SetSteps(steps=steps)]


def test_quality_words_go_past_the_lightning_range_up_to_the_contract_maximum():
    assert parse("higher quality", plan_of().with_changes(steps=10)).edits == [SetSteps(steps=12)]
    assert parse("higher quality", plan_of().with_changes(steps=12)).edits == [SetSteps(steps=16)]
    assert parse("best quality", plan_of().with_changes(steps=12)).edits == [SetSteps(steps=50)]
    r = parse("more steps", plan_of().with_changes(steps=50))
    assert r.edits == [] and r.notes == ["steps are already at the 50 maximum"]
    assert parse("fewer steps", plan_of().with_changes(steps=40)).edits == [SetSteps(steps=36)]


def test_steps_down():
    plan = plan_of().with_changes(steps=12)
    assert parse("draft", plan).edits == [SetSteps(steps=4)]
    assert parse("faster render", plan).edits == [SetSteps(steps=8)]
    assert parse("fewer steps", plan).edits == [SetSteps(steps=8)]
    r = parse("draft", plan_of())
    assert r.edits == [] and "minimum" in r.notes[0]


def test_guidance_forms():
    assert ops("guidance 3.5") == [SetGuidance(high=3.5, low=3.5)]
    assert ops("cfg 5 and 4") == [SetGuidance(high=5.0, low=4.0)]
    assert ops("high-noise guidance 4") == [SetGuidance(high=4.0)]
    assert ops("low noise guidance 2") == [SetGuidance(low=2.0)]
    assert ops("more guidance") == [SetGuidance(high=2.0, low=2.0)]
    r = parse("guidance 50", plan_of())
    assert r.edits == [SetGuidance(high=20.0, low=20.0)] and "maximum" in r.notes[0]


@pytest.mark.parametrize("message,edit", [
    ("same seed", SetSeed(policy="same")), ("keep the seed", SetSeed(policy="same")),
    ("new seed", SetSeed(policy="new")), ("another variation", SetSeed(policy="new")),
    ("try again", SetSeed(policy="new")), ("different seed", SetSeed(policy="new")),
    ("reroll", SetSeed(policy="new")), ("seed 42", SetSeed(policy="explicit", value=42)),
    ("use seed=7", SetSeed(policy="explicit", value=7)), ("seed #123", SetSeed(policy="explicit", value=123)),
])
def test_seed_phrases(message, edit):
    assert ops(message) == [edit]


def test_huge_seed_wraps_with_a_note():
    r = parse("seed 99999999999", plan_of())
    assert r.edits[0].value == 99999999999 % 2**31 and "maximum" in r.notes[0]


# --- negations ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("message", [
    "no blinking", "don't move the eyes", "do not move her eyes", "keep the eyes still", "stop the eyes",
    "without the eyes moving", "eyes should stay still", "freeze the eyes", "no eye movement",
])
def test_negations_remove(message):
    assert ops(message) == [RemoveMotion(subject="eyes")]


def test_no_hand_movement_adds_negative():
    assert ops("no hand movement") == [RemoveMotion(subject="hands"), AddNegative(terms=("hands",))]


def test_no_head_movement_does_not_add_negative():
    assert ops("keep the head still") == [RemoveMotion(subject="head")]


def test_negative_artifacts_and_avoid():
    assert ops("no text") == [AddNegative(terms=("text",))]
    assert ops("without flickering") == [AddNegative(terms=("flickering",))]
    assert ops("avoid blurry edges") == [AddNegative(terms=("blurry edges",))]


def test_atmosphere():
    assert ops("add fog and a breeze") == [AddAtmosphere(items=("fog",)), AddAtmosphere(items=("wind",))]
    assert ops("golden hour") == [AddAtmosphere(items=("golden hour light",))]
    plan = plan_of().with_changes(atmosphere=("wind",))
    assert parse("no wind", plan).edits == [RemoveAtmosphere(items=("wind",))]
    assert parse("remove the breeze", plan).edits == [RemoveAtmosphere(items=("wind",))]


def test_only_and_freeze_all():
    assert ops("only the eyes") == [RemoveMotion(subject="body"), RemoveMotion(subject="mouth")]
    assert ops("freeze everything") == [RemoveMotion(subject="body"), RemoveMotion(subject="eyes"),
                                        RemoveMotion(subject="mouth")]


# --- session phrases -------------------------------------------------------------------------------------

@pytest.mark.parametrize("message,edit", [
    ("undo", Undo()), ("undo that", Undo()), ("revert", Undo()), ("go back", Undo()), ("scratch that", Undo()),
    ("start over", Reset()), ("reset", Reset()), ("from scratch please", Reset()),
    ("same as #12", Recall(generation_id=12)), ("like #3", Recall(generation_id=3)),
    ("the second one", Recall(index=2)), ("rerun the first one", Recall(index=1)),
    ("like the last one", Recall(index=-1)), ("the previous video", Recall(index=-1)),
    ("the one before last", Recall(index=-2)), ("go back to the cat video", Recall(query="cat")),
    ("the one with the red dress", Recall(query="red dress")), ("rerun", Recall(index=-1)),
])
def test_session_phrases(message, edit):
    assert ops(message) == [edit]


def test_nevermind_is_a_cancel_not_an_undo():
    r = parse("never mind", plan_of())
    assert r.edits == [] and r.cancel and not r.unparsed


def test_session_edits_come_first():
    edits = ops("slower, like the last one")
    assert edits[0] == Recall(index=-1) and isinstance(edits[1], ScaleMotion)


def test_prompt_override_keeps_the_case():
    assert ops("Prompt: A Cat, Yawning.") == [SetPrompt(text="A Cat, Yawning.")]
    assert ops("clear my prompt") == [SetPrompt(text=None)]


# --- template choice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("message,template", [
    ("a dog running", "animals"), ("my cat", "animals"), ("a bird on a branch", "animals"),
    ("mountains and a lake", "landscape"), ("the ocean at dusk", "landscape"), ("a city street", "landscape"),
    ("anime girl", "animation"), ("a cartoon robot", "animation"), ("sneaker ad", "product"),
    ("a bottle of perfume", "product"), ("my watch", "product"), ("a headshot", "fashion"),
    ("a model posing", "fashion"), ("make her hair flow", "fashion"), ("she smiles", "portrait_subtle"),
    ("blinking and breathing", "portrait_subtle"), ("kaleidoscope", "abstract"), ("swirling colors", "abstract"),
    ("particles only", "abstract"), ("headshot, she smiles and blinks", "fashion"),
    ("a woman and her dog, the dog wags", "animals"),
])
def test_choose_template(message, template):
    assert choose_template(V.normalize(message), hands_in_view=False) == template


def test_gestures_need_hands_in_view():
    assert choose_template("she waves hello", hands_in_view=False) == "portrait_subtle"
    assert choose_template("she waves hello", hands_in_view=True) == "portrait_dynamic"
    assert choose_template("headshot, she waves hello", hands_in_view=True) == "fashion"


def test_first_message_sets_template_first():
    r = parse("a dog, slower tail", None)
    assert r.edits[0] == SetTemplate(template="animals")
    assert r.edits[1] == ScaleMotion(subject="tail", speed_factor=0.6)


def test_locked_template_is_not_switched():
    r = parse("switch to the anime template", plan_of("fashion"), template_locked=True)
    assert r.edits == [] and "fashion" in r.notes[0]


def test_hands_in_view_from_history():
    history = [("user", "her hands are visible"), ("assistant", "ok")]
    r = parse("she waves", plan_of(), history=history)
    assert r.edits[0] == SetTemplate(template="portrait_dynamic")
    assert AddMotion(subject="hands", action="wave") in r.edits


def test_continuation_uses_the_previous_subject():
    history = [("user", "faster tail"), ("assistant", "Tail sped up.")]
    assert parse("even faster", plan_of("animals"), history=history).edits == [ScaleMotion(subject="tail",
                                                                                          speed_factor=1.6)]
    history = [("user", "slower zoom"), ("assistant", "Camera slowed.")]
    assert parse("even slower", plan_of("fashion"), history=history).edits == [ScaleCamera(factor=0.6)]


# --- unparsed, limits --------------------------------------------------------------------------------------

def test_gibberish_is_unparsed():
    r = parse("blorp fizzle wumpus", plan_of())
    assert r.edits == [] and r.unparsed == ["blorp fizzle wumpus"]


def test_filler_is_neither_parsed_nor_unparsed():
    r = parse("ok thanks, please", plan_of())
    assert r.edits == [] and r.unparsed == []


def test_partly_understood():
    r = parse("4 seconds, and frobnicate the zorp", plan_of())
    assert r.edits == [SetDuration(seconds=4.0)] and r.unparsed == ["frobnicate the zorp"]


def test_empty_message():
    assert parse("   ", plan_of()).edits == []


def test_too_many_edits_are_cut_with_a_note():
    msg = ", ".join(["8 steps", "seed 3", "4 seconds", "pan left", "add fog", "no text", "guidance 2",
                     "slower eyes", "faster mouth", "stronger body", "add wind", "no watermark", "the clouds drift",
                     "the tree sways"])
    r = parse(msg, plan_of())
    assert len(r.edits) == MAX_EDITS_PER_TURN and "first 12" in r.notes[0]


def test_split_keeps_protected_phrases():
    assert split_clauses("sway back and forth, two and a half seconds") == [
        "sway back_and_forth", "two and_a_half seconds"]


def test_planner_object_passes_everything_to_parse():
    p, plan, message = RulePlanner(), plan_of("fashion"), "switch to the anime template"
    history = [("user", "her hands are visible"), ("assistant", "ok")]
    assert p.name == "rules"
    assert p.parse(message, plan, template_locked=True) == parse(message, plan, template_locked=True)
    assert p.parse(message, plan, template_locked=True) != p.parse(message, plan)  # the lock reached parse
    assert p.parse("she waves", plan_of(), history=history) == parse("she waves", plan_of(), history=history)
    assert p.parse("she waves", plan_of(), history=history) != p.parse("she waves", plan_of())  # so did history
