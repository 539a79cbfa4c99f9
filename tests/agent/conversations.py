"""Test conversations with machine-checkable expected outcomes, shared by the tests and bench/llm_eval.py.

    from tests.agent.conversations import CONVERSATIONS, run_case, check, failures
    states, replies = run_case(case, planner=my_planner)     # plan_turn turn by turn (rng seeded)
    ok = check(case, states, replies)                         # True when every turn meets its expectations
    why = failures(case, states, replies)                     # the reasons when not

A `Case` is a list of `Turn`s. Each turn says, for the plan after it:
- `expect`: path -> expected value. Paths: "template", "motions.<subject>" ("present"/"absent"),
  "motions.<subject>.action|speed|intensity", "camera.move", "camera.speed", "atmosphere", "duration_s",
  "num_frames", "steps", "guidance_scale", "guidance_scale_2", "seed", "seed_policy", "negative_terms",
  "prompt_override", "prompt", "negative_prompt", and "reply" (the reply text). Values: a plain value
  (equality, floats to 1e-6), or a tuple (op, operand) with op one of "<", "<=", ">", ">=", "==", "!=" (the
  operand may be "prev": the same path before this turn), "has"/"lacks" (an item of a tuple field),
  "contains"/"excludes" (a substring, case-insensitive, of a text field).
- `changed`: patterns of the plan keys that change in this turn; every other key must stay equal. A
  pattern is a flat key ("duration_s", "motions.hair.speed", "camera.move") or has a glob ("motions.tail.*",
  "motions.*"); a trailing "?" makes it optional (may change). A pattern without "?" must match at least one
  changed key. The keys compared are the plan's fields except the derived ones (prompt, negative_prompt,
  num_frames). On a first turn "before" is the chosen template's default plan with the plan's own seed.
- `render`: after this turn, record a generation of the plan (id = case.first_generation_id + count), with
  the turn's text as its label, so later turns can say "the second one", "#12", "the cat video".
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from agent.plan import MotionPlan

Expect = dict[str, Any]


@dataclass(frozen=True)
class Turn:
    say: str
    expect: Expect = field(default_factory=dict)
    changed: tuple[str, ...] = ()
    render: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    turns: tuple[Turn, ...]
    template: str | None = None  # a template locked in the app
    first_generation_id: int = 1
    tags: tuple[str, ...] = ()


def T(say: str, expect: Expect | None = None, changed: Sequence[str] = (), render: bool = False) -> Turn:
    return Turn(say=say, expect=dict(expect or {}), changed=tuple(changed), render=render)


def C(name: str, *turns: Turn, template: str | None = None, first_generation_id: int = 1,
      tags: Sequence[str] = ()) -> Case:
    return Case(name=name, turns=tuple(turns), template=template, first_generation_id=first_generation_id,
                tags=tuple(tags))


ABSENT = "absent"
PRESENT = "present"
LT_PREV = ("<", "prev")
GT_PREV = (">", "prev")
SAME = ("==", "prev")

# Every key a template switch may touch.
SWITCH = ("template", "motions.*?", "camera.*?", "atmosphere?", "duration_s?", "steps?", "guidance_scale?",
          "guidance_scale_2?")

CONVERSATIONS: tuple[Case, ...] = (
    # --- the examples ----------------------------------------------------------------------
    C("issue: hair in the wind, slow zoom, then slower hair same seed",
      T("make her hair flow in the wind, slow zoom in",
        {"motions.hair": PRESENT, "camera.move": "zoom_in", "camera.speed": ("<", 1.0),
         "atmosphere": ("has", "wind"), "prompt": ("contains", "hair")},
        ["atmosphere", "motions.hair.*?", "camera.speed?"]),
      T("slower hair, same seed",
        {"motions.hair.speed": LT_PREV, "seed": SAME, "camera.move": SAME, "camera.speed": SAME,
         "duration_s": SAME},
        ["motions.hair.speed", "seed_policy?"]),
      tags=("issue", "scale_motion", "seed", "set_camera", "atmosphere")),
    C("issue: headshot, smiles and blinks, no hand movement",
      T("headshot, she smiles and blinks, no hand movement",
        {"template": "fashion", "motions.hands": ABSENT, "motions.mouth": PRESENT, "motions.eyes": PRESENT,
         "negative_prompt": ("contains", "hands")},
        ["motions.mouth.*", "motions.eyes.*?", "negative_terms?"]),
      tags=("issue", "set_template", "add_motion", "remove_motion", "add_negative", "safety")),
    C("issue: 12 seconds is clamped to 5 and said",
      T("make it 12 seconds", {"duration_s": 5.0, "num_frames": 81, "reply": ("contains", "5")},
        ["duration_s"]),
      tags=("issue", "set_duration", "clamp")),
    C("issue: gibberish leaves the plan unchanged and asks what should move",
      T("add a gentle breeze", {"atmosphere": ("has", "wind")}, ["atmosphere"]),
      T("blorp fizzle wumpus", {"reply": ("contains", "what should move")}, []),
      tags=("issue", "gibberish")),
    C("issue: gibberish as the first message gives a valid plan and asks",
      T("qwxz vbnm plok", {"reply": ("contains", "what should move")}, []),
      tags=("issue", "gibberish")),

    # --- template choice from the first message ------------------------------------------------------
    C("template: dog → animals",
      T("a dog looking at the camera", {"template": "animals", "motions.animal": PRESENT},
        ["motions.animal.*?", "motions.head.*?"]), tags=("set_template",)),
    C("template: kitten → animals",
      T("my kitten, make the tail flick", {"template": "animals", "motions.tail": PRESENT},
        ["motions.tail.*?"]), tags=("set_template",)),
    C("template: bird flapping wings → animals",
      T("a bird flapping its wings", {"template": "animals", "motions.wings": PRESENT},
        ["motions.wings.*"]), tags=("set_template", "add_motion")),
    C("template: mountains → landscape",
      T("mountains at sunrise, clouds drifting", {"template": "landscape", "motions.clouds": PRESENT,
                                                  "atmosphere": ("has", "sunrise light")},
        ["atmosphere", "motions.clouds.*?"]), tags=("set_template", "atmosphere")),
    C("template: ocean waves → landscape",
      T("ocean waves crashing on the shore", {"template": "landscape", "motions.water.action": "crash"},
        ["motions.water.*"]), tags=("set_template", "add_motion")),
    C("template: city skyline → landscape",
      T("a city skyline at night", {"template": "landscape", "atmosphere": ("has", "night")},
        ["atmosphere"]), tags=("set_template", "atmosphere")),
    C("template: anime → animation",
      T("anime girl, her hair flutters", {"template": "animation", "motions.hair": PRESENT},
        ["motions.hair.*?"]), tags=("set_template",)),
    C("template: cartoon → animation",
      T("a cartoon character blinking", {"template": "animation", "motions.eyes": PRESENT},
        ["motions.eyes.*?"]), tags=("set_template",)),
    C("template: sneaker → product",
      T("a sneaker on a pedestal, slow orbit", {"template": "product", "camera.move": "orbit_right",
                                                "camera.speed": ("<", 1.0)},
        ["camera.*?"]), tags=("set_template", "set_camera")),
    C("template: perfume bottle → product",
      T("perfume bottle, light sweeping across it", {"template": "product", "motions.light": PRESENT},
        ["motions.light.*?", "motions.product.*?"]), tags=("set_template",)),
    C("template: watch → product, push in",
      T("luxury watch, push in", {"template": "product", "camera.move": "zoom_in"}, ["camera.move"]),
      tags=("set_template", "set_camera")),
    C("template: model headshot → fashion",
      T("a model headshot", {"template": "fashion"}, []), tags=("set_template",)),
    C("template: smile and blink → portrait_subtle",
      T("she smiles and blinks", {"template": "portrait_subtle", "motions.mouth": PRESENT,
                                  "motions.eyes": PRESENT},
        ["motions.mouth.*?", "motions.eyes.*?"]), tags=("set_template",)),
    C("template: old photo breathing → portrait_subtle",
      T("old family photo of my grandma, gentle breathing", {"template": "portrait_subtle",
                                                             "motions.body": PRESENT},
        ["motions.body.*?"]), tags=("set_template",)),
    C("template: kaleidoscope → abstract",
      T("a kaleidoscope swirling", {"template": "abstract", "motions.particles": PRESENT},
        ["motions.particles.*?"]), tags=("set_template",)),
    C("template: swirling particles → abstract",
      T("abstract swirling particles, slow zoom out", {"template": "abstract", "camera.move": "zoom_out"},
        ["camera.*", "motions.particles.*?"]), tags=("set_template", "set_camera")),
    C("template: waves hello with hands in view → portrait_dynamic",
      T("her hands are in the frame, she waves hello", {"template": "portrait_dynamic",
                                                        "motions.hands": PRESENT}, ["motions.hands.*?"]),
      tags=("set_template", "safety")),
    C("template: waves hello without hands in view stays subtle",
      T("she waves hello", {"template": "portrait_subtle", "motions.hands": ABSENT,
                            "reply": ("contains", "visible")}, []),
      tags=("set_template", "safety")),
    C("template: locked in the app wins over words",
      T("a dog wagging its tail", {"template": "landscape", "motions.tail": PRESENT},
        ["motions.tail.*"]),
      template="landscape", tags=("set_template", "lock")),
    C("template: locked fashion refuses a switch",
      T("switch to the anime template", {"template": "fashion", "reply": ("contains", "fashion")}, []),
      template="fashion", tags=("set_template", "lock")),
    C("template: explicit switch later",
      T("her hair flows", {"template": "fashion"}, ["motions.hair.*?"]),
      T("actually make it a product shot", {"template": "product"}, SWITCH),
      tags=("set_template",)),
    C("template: switch by category style",
      T("a cat", {"template": "animals"}, []),
      T("use the anime style", {"template": "animation", "seed": SAME}, SWITCH),
      tags=("set_template",)),

    # --- motions --------------------------------------------------------------------------------------
    C("motion: add tail wag to a dog",
      T("a dog", {"template": "animals"}, []),
      T("make the tail wag faster", {"motions.tail.speed": GT_PREV}, ["motions.tail.speed"]),
      tags=("scale_motion",)),
    C("motion: add a new subject",
      T("a woman smiling", {"template": "portrait_subtle"}, ["motions.mouth.*?"]),
      T("her scarf flutters too", {"motions.clothing": PRESENT, "motions.clothing.action": "flutter"},
        ["motions.clothing.*"]),
      tags=("add_motion",)),
    C("motion: synonyms locks → hair",
      T("portrait of a woman", {"template": "portrait_subtle"}, []),
      T("her locks sway gently", {"motions.hair": PRESENT, "motions.hair.intensity": ("<", 0.5)},
        ["motions.hair.*"]),
      tags=("add_motion", "synonyms")),
    C("motion: synonyms river → water",
      T("mountain valley", {"template": "landscape"}, []),
      T("the river rushes faster", {"motions.water.speed": GT_PREV}, ["motions.water.*"]),
      tags=("scale_motion", "synonyms")),
    C("motion: synonyms leaves → trees",
      T("a forest", {"template": "landscape"}, []),
      T("leaves rustling", {"motions.trees.action": "rustle"}, ["motions.trees.action"]),
      tags=("add_motion", "synonyms")),
    C("motion: synonyms cape → clothing",
      T("a cartoon hero", {"template": "animation"}, []),
      T("his cape billowing dramatically", {"motions.clothing": PRESENT,
                                            "motions.clothing.intensity": (">", 0.6)},
        ["motions.clothing.*"]),
      tags=("add_motion", "synonyms")),
    C("motion: synonyms puppy → animal, pup head",
      T("my pup", {"template": "animals"}, []),
      T("pup jumps", {"motions.animal.action": "jump"}, ["motions.animal.action", "motions.animal.*?"]),
      tags=("add_motion", "synonyms")),
    C("motion: fire and smoke",
      T("a campfire at night", {"motions.fire": PRESENT}, ["motions.fire.*", "atmosphere", "motions.*?",
                                                           "template?", "camera.*?", "duration_s?"]),
      T("smoke rising slowly", {"motions.smoke": PRESENT, "motions.smoke.speed": ("<", 1.0)},
        ["motions.smoke.*"]),
      tags=("add_motion",)),
    C("motion: snow falling",
      T("a snowy village", {"template": "landscape", "atmosphere": ("has", "snow")}, ["atmosphere"]),
      T("snowflakes falling", {"motions.snow": PRESENT, "motions.snow.action": "fall"},
        ["motions.snow.*"]),
      tags=("add_motion", "atmosphere")),
    C("motion: turn head left",
      T("portrait of a man", {"template": "portrait_subtle"}, []),
      T("he turns his head to the left", {"motions.head.action": ("contains", "left")}, ["motions.head.*"]),
      tags=("add_motion",)),
    C("motion: remove with 'no'",
      T("a dog", {"template": "animals"}, []),
      T("no tail wagging", {"motions.tail": ABSENT}, ["motions.tail.*"]),
      tags=("remove_motion",)),
    C("motion: remove with 'keep X still'",
      T("a woman, breathing", {"template": "portrait_subtle"}, ["motions.body.*?"]),
      T("keep her mouth still", {"motions.mouth": ABSENT}, ["motions.mouth.*"]),
      tags=("remove_motion",)),
    C("motion: remove with 'stop the X'",
      T("a lake with clouds", {"template": "landscape"}, []),
      T("stop the clouds", {"motions.clouds": ABSENT}, ["motions.clouds.*"]),
      tags=("remove_motion",)),
    C("motion: remove with 'don't move X'",
      T("a cat", {"template": "animals"}, []),
      T("don't move the ears", {"motions.ears": ABSENT}, ["motions.ears.*"]),
      tags=("remove_motion",)),
    C("motion: remove with 'without'",
      T("a cartoon girl", {"template": "animation"}, []),
      T("without the background moving", {"motions.background": ABSENT}, ["motions.background.*"]),
      tags=("remove_motion",)),
    C("motion: only the hair",
      T("close-up portrait, model", {"template": "fashion"}, []),
      T("only the hair should move", {"motions.hair": PRESENT, "motions.eyes": ABSENT}, ["motions.eyes.*"]),
      tags=("remove_motion",)),
    C("motion: everything still",
      T("a forest lake", {"template": "landscape"}, []),
      T("freeze everything", {"motions.water": ABSENT, "motions.clouds": ABSENT, "motions.trees": ABSENT},
        ["motions.*"]),
      tags=("remove_motion",)),
    C("motion: hands removed add hands to negative (portrait)",
      T("portrait of a grandpa", {"template": "portrait_subtle"}, []),
      T("no hand movement", {"negative_terms": ("has", "hands"), "negative_prompt": ("contains", "hands")},
        ["negative_terms"]),
      tags=("remove_motion", "add_negative", "safety")),

    # --- scale motion ---------------------------------------------------------------------------------
    C("scale: slower hair",
      T("her hair flows", {"template": "fashion"}, ["motions.hair.*?"]),
      T("slower hair", {"motions.hair.speed": LT_PREV}, ["motions.hair.speed"]),
      tags=("scale_motion",)),
    C("scale: much slower is slower than slower",
      T("her hair flows", {}, ["motions.hair.*?"]),
      T("much slower hair", {"motions.hair.speed": ("<", 0.48)}, ["motions.hair.speed"]),
      tags=("scale_motion", "degree")),
    C("scale: slightly slower is a small step",
      T("her hair flows", {}, ["motions.hair.*?"]),
      T("make the hair slightly slower", {"motions.hair.speed": ("<", "prev")}, ["motions.hair.speed"]),
      tags=("scale_motion", "degree")),
    C("scale: faster clouds",
      T("a valley with clouds", {"template": "landscape"}, []),
      T("faster clouds", {"motions.clouds.speed": GT_PREV}, ["motions.clouds.speed"]),
      tags=("scale_motion",)),
    C("scale: twice as fast tail",
      T("a puppy", {"template": "animals"}, []),
      T("tail twice as fast", {"motions.tail.speed": 2.0}, ["motions.tail.speed"]),
      tags=("scale_motion", "degree")),
    C("scale: more blinking raises intensity",
      T("she smiles and blinks", {"template": "portrait_subtle"}, ["motions.mouth.*?", "motions.eyes.*?"]),
      T("more blinking", {"motions.eyes.intensity": GT_PREV}, ["motions.eyes.intensity"]),
      tags=("scale_motion", "intensity")),
    C("scale: subtler smile lowers intensity",
      T("portrait, she smiles", {"template": "portrait_subtle"}, ["motions.mouth.*?"]),
      T("subtler smile", {"motions.mouth.intensity": LT_PREV}, ["motions.mouth.intensity"]),
      tags=("scale_motion", "intensity")),
    C("scale: stronger water",
      T("a waterfall", {"template": "landscape"}, []),
      T("stronger water", {"motions.water.intensity": GT_PREV}, ["motions.water.intensity"]),
      tags=("scale_motion", "intensity")),
    C("scale: everything slower scales all motions and the camera",
      T("a meadow with trees and clouds, pan right", {"template": "landscape"}, ["camera.*?", "motions.*?"]),
      T("slower", {"motions.clouds.speed": LT_PREV, "motions.water.speed": LT_PREV,
                   "motions.trees.speed": LT_PREV, "camera.speed": LT_PREV},
        ["motions.clouds.speed", "motions.water.speed", "motions.trees.speed", "camera.speed", "motions.*.speed?"]),
      tags=("scale_motion", "scale_camera")),
    C("scale: more subtle overall",
      T("a cat", {"template": "animals"}, []),
      T("make it more subtle", {"motions.animal.intensity": LT_PREV, "motions.tail.intensity": LT_PREV},
        ["motions.animal.intensity", "motions.ears.intensity", "motions.tail.intensity"]),
      tags=("scale_motion", "intensity")),
    C("scale: faster hair then even faster",
      T("anime character", {"template": "animation"}, []),
      T("faster hair", {"motions.hair.speed": GT_PREV}, ["motions.hair.speed"]),
      T("even faster", {"motions.hair.speed": GT_PREV}, ["motions.hair.speed"]),
      tags=("scale_motion", "degree")),
    C("scale: a bit more wind on the hair means stronger hair",
      T("model headshot", {"template": "fashion"}, []),
      T("hair a bit stronger", {"motions.hair.intensity": GT_PREV}, ["motions.hair.intensity"]),
      tags=("scale_motion", "degree")),
    C("scale: slowest is clamped and said",
      T("her hair flows", {}, ["motions.hair.*?"]),
      T("hair 100 times slower", {"motions.hair.speed": 0.05, "reply": ("contains", "minimum")},
        ["motions.hair.speed"]),
      tags=("scale_motion", "clamp")),

    # --- camera ---------------------------------------------------------------------------------------
    C("camera: push in", T("a lake", {}, ["template?"]),
      T("push in", {"camera.move": "zoom_in"}, ["camera.move"]), tags=("set_camera",)),
    C("camera: pull back",
      T("a cartoon cat", {"template": "animation"}, ["motions.animal.*?"]),
      T("pull back slowly", {"camera.move": "dolly_out", "camera.speed": ("<", 1.0)}, ["camera.*"]),
      tags=("set_camera",)),
    C("camera: pan across to the right",
      T("a sneaker", {"template": "product"}, []),
      T("pan across to the right", {"camera.move": "pan_right"}, ["camera.move"]), tags=("set_camera",)),
    C("camera: pan left",
      T("a city skyline", {"template": "landscape"}, []),
      T("pan left", {"camera.move": "pan_left", "camera.speed": SAME}, ["camera.move"]), tags=("set_camera",)),
    C("camera: circle around",
      T("a dog", {"template": "animals"}, []),
      T("circle around the dog", {"camera.move": ("contains", "orbit")}, ["camera.move"]), tags=("set_camera",)),
    C("camera: orbit left",
      T("a perfume bottle", {"template": "product"}, []),
      T("orbit to the left", {"camera.move": "orbit_left"}, ["camera.move"]), tags=("set_camera",)),
    C("camera: slowly rise",
      T("a waterfall", {"template": "landscape"}, []),
      T("the camera slowly rises", {"camera.move": "tilt_up", "camera.speed": ("<", 1.0)}, ["camera.*"]),
      tags=("set_camera",)),
    C("camera: tilt down",
      T("a mountain", {"template": "landscape"}, []),
      T("tilt down", {"camera.move": "tilt_down"}, ["camera.move"]), tags=("set_camera",)),
    C("camera: dolly in fast",
      T("a woman smiling, her hands are visible", {"template": "portrait_subtle"}, ["motions.mouth.*?"]),
      T("fast dolly in", {"camera.move": "dolly_in", "camera.speed": (">", 1.0)}, ["camera.*"]),
      tags=("set_camera",)),
    C("camera: zoom out",
      T("abstract art", {"template": "abstract"}, []),
      T("zoom out", {"camera.move": "zoom_out"}, ["camera.move"]), tags=("set_camera",)),
    C("camera: static",
      T("a beach", {"template": "landscape"}, []),
      T("keep the camera still", {"camera.move": "static"}, ["camera.move"]), tags=("set_camera",)),
    C("camera: no camera movement",
      T("a fox", {"template": "animals"}, []),
      T("no camera movement", {"camera.move": "static"}, ["camera.move"]), tags=("set_camera",)),
    C("camera: slower zoom scales the camera only",
      T("a kitten", {"template": "animals"}, []),
      T("slower zoom", {"camera.move": "zoom_in", "camera.speed": LT_PREV}, ["camera.speed"]),
      tags=("scale_camera",)),
    C("camera: faster camera",
      T("a sneaker", {"template": "product"}, []),
      T("faster camera", {"camera.speed": GT_PREV}, ["camera.speed"]), tags=("scale_camera",)),
    C("camera: much slower pan",
      T("a forest", {"template": "landscape"}, []),
      T("much slower pan", {"camera.speed": ("<", 0.3)}, ["camera.speed"]), tags=("scale_camera", "degree")),

    # --- atmosphere -----------------------------------------------------------------------------------
    C("atmosphere: add fog",
      T("a lake", {}, ["template?"]), T("add some fog", {"atmosphere": ("has", "fog")}, ["atmosphere"]),
      tags=("atmosphere",)),
    C("atmosphere: golden hour",
      T("portrait of a woman", {}, []),
      T("golden hour light", {"atmosphere": ("has", "golden hour light"),
                              "prompt": ("contains", "golden")}, ["atmosphere"]), tags=("atmosphere",)),
    C("atmosphere: remove wind",
      T("her hair blowing in the wind", {"atmosphere": ("has", "wind")}, ["atmosphere", "motions.hair.*?"]),
      T("no wind", {"atmosphere": ("lacks", "wind")}, ["atmosphere"]), tags=("atmosphere",)),

    # --- duration -------------------------------------------------------------------------------------
    C("duration: 3s", T("a dog", {}, []), T("3s", {"duration_s": 3.0, "num_frames": 49}, ["duration_s?"]),
      tags=("set_duration",)),
    C("duration: four seconds",
      T("a dog", {}, []), T("make it four seconds", {"duration_s": 4.0, "num_frames": 65}, ["duration_s"]),
      tags=("set_duration", "numbers")),
    C("duration: half a second",
      T("a cat", {}, []), T("half a second", {"duration_s": 0.5, "num_frames": 9}, ["duration_s"]),
      tags=("set_duration", "numbers")),
    C("duration: two and a half seconds",
      T("a cat", {}, []), T("two and a half seconds", {"duration_s": 2.5}, ["duration_s"]),
      tags=("set_duration", "numbers")),
    C("duration: longer",
      T("a cat", {}, []), T("longer", {"duration_s": GT_PREV}, ["duration_s"]), tags=("set_duration",)),
    C("duration: a bit shorter",
      T("a cat", {}, []), T("a bit shorter", {"duration_s": LT_PREV}, ["duration_s"]), tags=("set_duration",)),
    C("duration: too short is clamped",
      T("a cat", {}, []),
      T("0.1 seconds", {"duration_s": 0.5, "reply": ("contains", "minimum")}, ["duration_s"]),
      tags=("set_duration", "clamp")),
    C("duration: a minute is clamped",
      T("a valley", {}, []),
      T("make it a minute long", {"duration_s": 5.0, "reply": ("contains", "maximum")}, ["duration_s"]),
      tags=("set_duration", "clamp")),
    C("duration: 1.5 s",
      T("a valley", {}, []), T("1.5 s please", {"duration_s": 1.5, "num_frames": 25}, ["duration_s"]),
      tags=("set_duration",)),

    # --- steps and guidance ---------------------------------------------------------------------------
    C("steps: 8 steps",
      T("a dog", {}, []), T("8 steps", {"steps": 8}, ["steps"]), tags=("set_steps",)),
    C("steps: higher quality",
      T("a dog", {}, []), T("higher quality", {"steps": GT_PREV}, ["steps"]), tags=("set_steps",)),
    C("steps: more steps",
      T("a dog", {}, []), T("more steps", {"steps": GT_PREV}, ["steps"]), tags=("set_steps",)),
    C("steps: draft after quality",
      T("a dog", {}, []), T("10 steps", {"steps": 10}, ["steps"]),
      T("draft", {"steps": LT_PREV}, ["steps"]), tags=("set_steps",)),
    C("steps: faster render lowers steps, not motion",
      T("a sneaker", {"template": "product"}, []),
      T("faster render", {"steps": LT_PREV}, ["steps"]), tags=("set_steps",)),
    C("steps: 30 steps is kept (the base recipe runs up to 50)",
      T("a sneaker", {}, []), T("30 steps", {"steps": 30}, ["steps"]), tags=("set_steps",)),
    C("steps: 80 steps is clamped",
      T("a sneaker", {}, []), T("80 steps", {"steps": 50, "reply": ("contains", "50")}, ["steps"]),
      tags=("set_steps", "clamp")),
    C("steps: best quality is the maximum",
      T("a sneaker", {}, []), T("best quality", {"steps": 12}, ["steps"]), tags=("set_steps",)),
    C("guidance: guidance 3.5",
      T("a cat", {}, []), T("guidance 3.5", {"guidance_scale": 3.5, "guidance_scale_2": 3.5},
                            ["guidance_scale", "guidance_scale_2"]), tags=("set_guidance",)),
    C("guidance: cfg 4 and 3",
      T("a cat", {}, []), T("cfg 4 and 3", {"guidance_scale": 4.0, "guidance_scale_2": 3.0},
                            ["guidance_scale", "guidance_scale_2"]), tags=("set_guidance",)),

    # --- seeds ----------------------------------------------------------------------------------------
    C("seed: new seed",
      T("a cat", {}, []), T("new seed", {"seed": ("!=", "prev")}, ["seed", "seed_policy?"]), tags=("seed",)),
    C("seed: another variation",
      T("a cat", {}, []), T("another variation", {"seed": ("!=", "prev")}, ["seed", "seed_policy?"]),
      tags=("seed",)),
    C("seed: try again",
      T("a cat", {}, []), T("try again", {"seed": ("!=", "prev")}, ["seed", "seed_policy?"]), tags=("seed",)),
    C("seed: seed 42",
      T("a cat", {}, []), T("seed 42", {"seed": 42}, ["seed", "seed_policy?"]), tags=("seed",)),
    C("seed: same seed",
      T("a cat", {}, []), T("same seed", {"seed": SAME}, ["seed_policy?"]), tags=("seed",)),
    C("seed: refinement keeps the seed",
      T("a cat", {}, []), T("slower tail", {"seed": SAME, "motions.tail.speed": LT_PREV},
                            ["motions.tail.speed"]), tags=("seed", "scale_motion")),

    # --- negatives and prompt -------------------------------------------------------------------------
    C("negative: avoid text",
      T("a sneaker", {}, []), T("avoid text on the shoe", {"negative_terms": ("has", "text on the shoe")},
                                ["negative_terms"]), tags=("add_negative",)),
    C("negative: no watermark",
      T("a sneaker", {}, []), T("no watermark", {"negative_terms": ("has", "watermark")}, ["negative_terms"]),
      tags=("add_negative",)),
    C("negative: allowed again",
      T("a sneaker", {}, []), T("no watermark", {"negative_terms": ("has", "watermark")}, ["negative_terms"]),
      T("the watermark is fine now", {"negative_terms": ("lacks", "watermark")}, ["negative_terms"]),
      tags=("add_negative", "remove_negative")),
    C("negative: stop avoiding hands in a headshot",
      T("headshot, she smiles and blinks, no hand movement", {"negative_terms": ("has", "hands")},
        ["template?", "motions.*?", "camera.*?", "atmosphere?", "negative_terms"]),
      T("stop avoiding hands", {"negative_terms": ("lacks", "hands"), "motions.hands": ABSENT,
                                "negative_prompt": ("contains", "hands")}, ["negative_terms"]),
      tags=("remove_negative", "safety")),
    C("prompt: own prompt then back",
      T("a cat", {}, []),
      T("prompt: a cat yawning in the sun", {"prompt_override": "a cat yawning in the sun",
                                             "prompt": "a cat yawning in the sun"}, ["prompt_override"]),
      T("use the automatic prompt", {"prompt_override": None}, ["prompt_override"]),
      tags=("set_prompt",)),

    # --- safety -----------------------------------------------------------------------------------------
    C("safety: fashion refuses hand gestures",
      T("fashion headshot", {"template": "fashion"}, []),
      T("she waves hello", {"motions.hands": ABSENT, "negative_prompt": ("contains", "hands"),
                            "reply": ("contains", "facial")}, ["negative_terms?"]),
      tags=("safety",)),
    C("safety: fashion refuses hands even when said visible",
      T("beauty close-up, her hands are visible", {"template": "fashion"}, []),
      T("she adjusts her hair with her hands", {"motions.hands": ABSENT}, ["negative_terms?", "motions.hair.*?"]),
      tags=("safety",)),
    C("safety: switch to fashion drops hand motion",
      T("her hands are visible, she waves hello", {"template": "portrait_dynamic", "motions.hands": PRESENT},
        ["motions.hands.*?"]),
      T("make it a fashion headshot", {"template": "fashion", "motions.hands": ABSENT},
        SWITCH + ("negative_terms?",)),
      tags=("safety", "set_template")),
    C("safety: portrait hands only when in view",
      T("portrait of a man", {"template": "portrait_subtle"}, []),
      T("he waves", {"motions.hands": ABSENT, "template": "portrait_subtle"}, []),
      T("his hands are visible in the photo, he waves", {"motions.hands": PRESENT,
                                                          "template": "portrait_dynamic"}, SWITCH),
      tags=("safety",)),

    # --- undo, reset ------------------------------------------------------------------------------------
    C("undo: returns the previous plan",
      T("a dog", {}, []),
      T("slower tail", {"motions.tail.speed": LT_PREV}, ["motions.tail.speed"]),
      T("undo", {"motions.tail.speed": GT_PREV}, ["motions.tail.speed"]),
      tags=("undo",)),
    C("undo: twice",
      T("a dog", {}, []),
      T("5 seconds", {"duration_s": 5.0}, ["duration_s"]),
      T("8 steps", {"steps": 8}, ["steps"]),
      T("undo", {"steps": 4, "duration_s": 5.0}, ["steps"]),
      T("undo", {"duration_s": 3.0}, ["duration_s"]),
      tags=("undo",)),
    C("undo: nothing to undo",
      T("undo", {"reply": ("contains", "nothing to undo")}, []), tags=("undo",)),
    C("reset: start over",
      T("a dog", {}, []),
      T("slower tail, 5 seconds, pan left", {}, ["motions.tail.speed", "duration_s", "camera.move"]),
      T("start over", {"duration_s": 3.0, "camera.move": "zoom_in", "seed": SAME},
        ["motions.tail.speed", "duration_s", "camera.move"]),
      tags=("reset",)),

    # --- multi-edit turns -------------------------------------------------------------------------------
    C("multi: several edits in one message",
      T("a puppy", {"template": "animals"}, []),
      T("slower tail, 4 seconds, 8 steps, seed 7",
        {"motions.tail.speed": LT_PREV, "duration_s": 4.0, "steps": 8, "seed": 7},
        ["motions.tail.speed", "duration_s", "steps", "seed", "seed_policy?"]),
      tags=("multi",)),
    C("multi: partly understood",
      T("a puppy", {}, []),
      T("make it 4 seconds and flibber the gronk", {"duration_s": 4.0, "reply": ("contains", "did not understand")},
        ["duration_s"]),
      tags=("multi", "gibberish")),
    C("multi: long refinement chain",
      T("make her hair flow in the wind, slow zoom in", {"template": "fashion"},
        ["atmosphere", "motions.hair.*?", "camera.speed?"]),
      T("faster hair", {"motions.hair.speed": GT_PREV}, ["motions.hair.speed"]),
      T("pan left instead", {"camera.move": "pan_left"}, ["camera.move"]),
      T("add fog", {"atmosphere": ("has", "fog")}, ["atmosphere"]),
      T("5 seconds, higher quality", {"duration_s": 5.0, "steps": GT_PREV}, ["duration_s", "steps"]),
      T("undo", {"duration_s": 3.0, "steps": 4}, ["duration_s", "steps"]),
      tags=("multi",)),

    # --- more phrasing ------------------------------------------------------------------------------------
    C("template: a default plan takes its template from later category words",
      T("make it 4 seconds", {"template": "portrait_subtle", "duration_s": 4.0}, ["duration_s"]),
      T("it is a cat sitting on a sofa", {"template": "animals", "duration_s": 4.0}, SWITCH),
      tags=("set_template",)),
    C("template: a chosen template is not switched by a subject",
      T("mountains at dawn", {"template": "landscape"}, ["atmosphere"]),
      T("a bird flies across the sky", {"template": "landscape", "motions.animal": PRESENT},
        ["motions.animal.*", "motions.sky.*?"]),
      tags=("set_template", "add_motion")),
    C("template: dog breed → animals",
      T("a golden retriever in a park", {"template": "animals"}, []), tags=("set_template",)),
    C("camera: the camera's target does not start moving",
      T("a portrait of a young man", {"template": "portrait_subtle"}, []),
      T("I want the camera to move closer to his face", {"camera.move": "zoom_in", "motions.face": ABSENT},
        ["camera.move"]),
      tags=("set_camera",)),
    C("scale: keep everything but slower blinking",
      T("a portrait of a young man", {}, []),
      T("keep everything else the same but make the blinking slower", {"motions.eyes.speed": LT_PREV},
        ["motions.eyes.speed"]),
      tags=("scale_motion",)),
    C("duration: 'set duration to 2' and 'a 4-second clip'",
      T("a sneaker", {"template": "product"}, []),
      T("set duration to 2", {"duration_s": 2.0}, ["duration_s"]),
      T("a 4-second clip", {"duration_s": 4.0}, ["duration_s"]),
      tags=("set_duration",)),
    C("steps: 'increase the steps to 10'",
      T("a sneaker", {}, []), T("increase the steps to 10", {"steps": 10}, ["steps"]), tags=("set_steps",)),
    C("guidance: '3.5 guidance'",
      T("a sneaker", {}, []), T("use 3.5 guidance", {"guidance_scale": 3.5}, ["guidance_scale", "guidance_scale_2"]),
      tags=("set_guidance",)),
    C("motion: bare 'moving' names nothing",
      T("a city at night", {"template": "landscape"}, ["atmosphere"]),
      T("cars moving, lights flickering", {"motions.body": ABSENT, "motions.light": PRESENT},
        ["motions.light.*", "motions.background.*?"]),
      tags=("add_motion",)),
    C("motion: eyes follow the camera while it pans",
      T("a woman", {}, []),
      T("her eyes follow the camera as it pans right", {"camera.move": "pan_right",
                                                        "motions.eyes.action": ("contains", "follow")},
        ["camera.move", "motions.eyes.action"]),
      tags=("add_motion", "set_camera")),

    # --- history references -----------------------------------------------------------------------------
    C("history: same as #12",
      T("a dog", {}, [], render=True),
      T("10 steps, 5 seconds", {"steps": 10}, ["steps", "duration_s"], render=True),
      T("same as #11", {"steps": 4, "duration_s": 3.0}, ["steps", "duration_s"]),
      T("same as #12", {"steps": 10, "duration_s": 5.0}, ["steps", "duration_s"]),
      first_generation_id=11, tags=("recall",)),
    C("history: rerun the second one with 8 steps",
      T("a cat", {}, [], render=True),
      T("5 seconds", {}, ["duration_s"], render=True),
      T("new seed, 2 seconds", {}, ["seed", "duration_s", "seed_policy?"], render=True),
      T("rerun the second one with 8 steps", {"duration_s": 5.0, "steps": 8},
        ["steps", "duration_s", "seed", "seed_policy?"]),
      tags=("recall",)),
    C("history: like the last one but slower",
      T("a horse", {}, [], render=True),
      T("pan left, seed 5", {}, ["camera.move", "seed", "seed_policy?"]),
      T("like the last one but slower",
        {"camera.move": "zoom_in", "motions.tail.speed": ("<", 1.0), "motions.animal.speed": ("<", 1.0)},
        ["camera.*", "seed", "seed_policy?", "motions.*.speed"]),
      tags=("recall", "scale_motion")),
    C("history: go back to the cat video",
      T("a cat", {"template": "animals"}, [], render=True),
      T("actually it is a landscape", {"template": "landscape"}, SWITCH, render=True),
      T("go back to the cat video", {"template": "animals"}, SWITCH),
      tags=("recall",)),
    C("history: no such generation",
      T("a cat", {}, []),
      T("same as #99", {"reply": ("contains", "#99")}, []),
      tags=("recall",)),
)


# --- running and checking -------------------------------------------------------------------------------

_MOTION_FIELDS = ("action", "speed", "intensity")


def flatten(plan: MotionPlan) -> dict[str, Any]:
    """The comparable keys of a plan (derived prompt, negative_prompt and num_frames left out)."""
    out: dict[str, Any] = {"template": plan.template}
    for m in plan.motions:
        for f in _MOTION_FIELDS:
            out[f"motions.{m.subject}.{f}"] = getattr(m, f)
    out.update({
        "camera.move": plan.camera.move, "camera.speed": plan.camera.speed, "atmosphere": tuple(plan.atmosphere),
        "duration_s": plan.duration_s, "steps": plan.steps, "guidance_scale": plan.guidance_scale,
        "guidance_scale_2": plan.guidance_scale_2, "seed": plan.seed, "seed_policy": plan.seed_policy,
        "negative_terms": tuple(plan.negative_terms), "prompt_override": plan.prompt_override,
    })
    return out


def value(plan: MotionPlan, path: str) -> Any:
    if path.startswith("motions."):
        parts = path.split(".")
        m = plan.motion(parts[1])
        if len(parts) == 2:
            return m
        return getattr(m, parts[2]) if m is not None else None
    if path.startswith("camera."):
        return getattr(plan.camera, path.split(".")[1])
    return getattr(plan, path)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-6
    return a == b


def _check_value(path: str, actual: Any, expected: Any, before: Any) -> str | None:
    if expected == PRESENT:
        return None if actual is not None else f"{path}: expected present, is absent"
    if expected == ABSENT:
        return None if actual is None else f"{path}: expected absent, is {actual}"
    if not isinstance(expected, tuple):
        return None if _equal(actual, expected) else f"{path}: expected {expected!r}, got {actual!r}"
    op, operand = expected
    if operand == "prev":
        operand = before
    if op in ("has", "lacks"):
        inside = operand in tuple(actual or ())
        ok = inside if op == "has" else not inside
        return None if ok else f"{path}: expected {op} {operand!r}, got {actual!r}"
    if op in ("contains", "excludes"):
        inside = str(operand).lower() in str(actual or "").lower()
        ok = inside if op == "contains" else not inside
        return None if ok else f"{path}: expected to {op[:-1]} {operand!r}, got {actual!r}"
    if actual is None or operand is None:
        return f"{path}: cannot compare {actual!r} {op} {operand!r}"
    ok = {"<": actual < operand, "<=": actual <= operand, ">": actual > operand, ">=": actual >= operand,
          "==": _equal(actual, operand), "!=": not _equal(actual, operand)}[op]
    return None if ok else f"{path}: expected {op} {operand!r}, got {actual!r}"


def _changed_keys(before: MotionPlan, after: MotionPlan) -> set[str]:
    a, b = flatten(before), flatten(after)
    return {k for k in set(a) | set(b) if not _equal(a.get(k), b.get(k))}


def _check_changes(changed: set[str], patterns: Sequence[str]) -> list[str]:
    problems = []
    plain = [p.rstrip("?") for p in patterns]
    for key in sorted(changed):
        if not any(fnmatch.fnmatchcase(key, p) for p in plain):
            problems.append(f"{key} changed but should not have")
    for p in patterns:
        if not p.endswith("?") and not any(fnmatch.fnmatchcase(k, p) for k in changed):
            problems.append(f"{p} should have changed but did not")
    return problems


def run_case(case: Case, planner: Any = None, rng_seed: int = 1234) -> tuple[list[Any], list[Any]]:
    """Run a case through agent.session.plan_turn (no store: generations are kept in the state)."""
    from agent.session import new_conversation, plan_turn

    rng = random.Random(rng_seed)
    state = new_conversation(template=case.template)
    states, replies = [], []
    next_id = case.first_generation_id
    for turn in case.turns:
        state, reply = plan_turn(state, turn.say, planner=planner, rng=rng)
        if turn.render and state.plan is not None:
            state = state.with_generation(next_id, state.plan, label=turn.say)
            next_id += 1
        states.append(state)
        replies.append(reply)
    return states, replies


def failures(case: Case, states: Sequence[Any], replies: Sequence[Any] | None = None) -> list[str]:
    """Why a run of `case` (its states, and replies for "reply" checks) misses its expectations; [] = passed."""
    from agent.templates import get_template

    problems: list[str] = []
    if len(states) != len(case.turns):
        return [f"{len(states)} states for {len(case.turns)} turns"]
    previous: MotionPlan | None = None
    for i, (turn, state) in enumerate(zip(case.turns, states)):
        plan = state.plan
        where = f"turn {i + 1} ({turn.say!r})"
        if plan is None:
            problems.append(f"{where}: no plan")
            continue
        before = previous
        if before is None:
            before = get_template(plan.template).default_plan(seed=plan.seed)
        for path, expected in turn.expect.items():
            if path == "reply":
                if replies is None:
                    continue
                actual, prev_value = str(replies[i]), None
            else:
                actual, prev_value = value(plan, path), value(before, path)
                if path.startswith("motions.") and path.count(".") == 1 and expected not in (PRESENT, ABSENT):
                    problems.append(f"{where}: {path} takes 'present' or 'absent'")
                    continue
            problem = _check_value(path, actual, expected, prev_value)
            if problem:
                problems.append(f"{where}: {problem}")
        problems += [f"{where}: {p}" for p in _check_changes(_changed_keys(before, plan), turn.changed)]
        previous = plan
    return problems


def check(case: Case, states: Sequence[Any], replies: Sequence[Any] | None = None) -> bool:
    """True when the run meets every expectation of the case."""
    return not failures(case, states, replies)
