"""Plan → the `prompt` and `negative_prompt` the video model gets. Deterministic for a given plan.

The prompt follows the style of the templates' curated prompts: a framing for the category, then each
motion as a short clause with a conjugated verb and pace words ("the hair flows gently in the wind,
slowly"), the camera move in camera language, the atmosphere, and a quality tail. `default_plan` is a
template's starting plan, compiled.
"""

from __future__ import annotations

import re

from agent.plan import Motion, MotionPlan
from agent.templates import get_template, library

# Opening framing per template, in the curated prompts' voice.
FRAMING: dict[str, str] = {
    "fashion": "A high-fashion close-up portrait",
    "portrait_subtle": "A gentle living portrait",
    "portrait_dynamic": "An expressive portrait with natural gestures",
    "animals": "A lifelike shot of an animal",
    "landscape": "A sweeping cinematic landscape",
    "animation": "An animated illustration in its original drawing style",
    "product": "A premium product shot on a clean backdrop",
    "abstract": "Abstract art in fluid motion",
}
QUALITY_TAIL: dict[str, str] = {
    "fashion": "shallow depth of field, flawless skin detail, cinematic, smooth natural motion",
    "portrait_subtle": "natural expression, shallow depth of field, cinematic, smooth natural motion",
    "portrait_dynamic": "well-formed hands, natural anatomy, cinematic, smooth natural motion",
    "animals": "detailed fur and feathers, natural behaviour, cinematic, smooth natural motion",
    "landscape": "rich natural light, vast depth, cinematic, smooth natural motion",
    "animation": "clean consistent line art, stable character design, smooth animation",
    "product": "crisp commercial lighting, sharp product detail, shape and logo unchanged, smooth motion",
    "abstract": "vivid colours, seamless flowing motion, high detail",
}

CAMERA_VERBS: dict[str, str] = {
    "zoom_in": "pushes in",
    "zoom_out": "zooms out",
    "pan_left": "pans to the left",
    "pan_right": "pans to the right",
    "tilt_up": "tilts up",
    "tilt_down": "tilts down",
    "orbit_left": "orbits to the left around the subject",
    "orbit_right": "orbits to the right around the subject",
    "dolly_in": "dollies in",
    "dolly_out": "pulls back",
}
# Kept for callers of the first compiler.
CAMERA_PHRASES: dict[str, str] = {"static": "the camera holds perfectly still"} | {
    move: f"the camera {verb}" for move, verb in CAMERA_VERBS.items()
}

SUBJECT_NOUNS: dict[str, str] = {
    "hair": "the hair", "head": "the head", "face": "the face", "eyes": "the eyes", "mouth": "the lips",
    "hands": "the hands", "body": "the body", "clothing": "the clothes", "animal": "the animal",
    "tail": "the tail", "ears": "the ears", "wings": "the wings", "water": "the water",
    "clouds": "the clouds", "sky": "the sky", "trees": "the trees", "grass": "the grass",
    "flowers": "the flowers", "fire": "the fire", "smoke": "the smoke", "snow": "snow",
    "rain": "rain", "particles": "glowing particles", "light": "the light", "product": "the product",
    "background": "the background",
}
# Subjects whose noun takes a plural verb ("the eyes blink", "the hair flows").
PLURAL_SUBJECTS = frozenset({"eyes", "mouth", "hands", "clothing", "ears", "wings", "clouds", "trees",
                             "flowers", "particles"})
# Natural, already conjugated verbs for some subject + action pairs ("the lips smile" reads badly).
ACTION_PHRASES: dict[tuple[str, str], str] = {
    ("mouth", "smile"): "curve into a smile",
    ("mouth", "smile softly"): "curve into a soft smile",
    ("mouth", "laugh"): "open into a laugh",
    ("mouth", "talk"): "move as if speaking",
    ("body", "breathe"): "rises and falls with each breath",
    ("body", "breathe slowly"): "rises and falls with slow breaths",
    ("eyes", "look around"): "look around",
    ("head", "look around"): "turns to look around",
}

ATMOSPHERE_PHRASES: dict[str, str] = {
    "wind": "a soft wind in the air",
    "fog": "drifting fog",
    "rain": "falling rain",
    "snow": "falling snow",
    "golden hour light": "warm golden-hour light",
    "sunset glow": "the glow of sunset",
    "sunrise light": "soft sunrise light",
    "storm": "a brooding storm",
    "night": "a night atmosphere",
}

PACE_WORDS = frozenset({"slowly", "quickly", "rapidly", "briskly", "fast", "gradually", "lazily", "swiftly",
                        "slow", "quick", "rapid", "motion"})
STRENGTH_WORDS = frozenset({"gently", "softly", "subtly", "naturally", "slightly", "dramatically", "strongly",
                            "wildly", "faintly", "calmly", "vigorously", "curiously", "happily", "lightly", "soft",
                            "gentle", "subtle", "slight", "dramatic", "strong", "wild", "faint"})

_IRREGULAR = {"be": "is", "have": "has", "do": "does", "go": "goes", "fly": "flies"}
_CONJUNCTIONS = frozenset({"and", "then", "or"})


def pace_word(speed: float) -> str:
    """Words for a speed relative to the template's normal pace (1.0).

    No bucket spans more than a factor 1.6, so one "slower" / "faster" (×0.6 / ×1.5) always lands in another
    bucket: the video model only sees the prompt, so a change of pace must change the words.
    """
    for limit, word in _PACE:
        if speed <= limit:
            return word
    return "at breakneck speed"


_PACE = (
    (0.25, "in extreme slow motion"),
    (0.4, "in slow motion"),
    (0.6, "slowly"),
    (0.85, "at a leisurely pace"),
    (1.2, ""),
    (1.6, "briskly"),
    (2.4, "quickly"),
    (3.5, "rapidly"),
)


def strength_word(intensity: float) -> str:
    if intensity < 0.25:
        return "subtly"
    if intensity < 0.45:
        return "gently"
    if intensity <= 0.7:
        return ""
    return "dramatically"


def third_person(verb: str) -> str:
    """flow → flows, blush → blushes, fly → flies, go → goes."""
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    if re.search(r"(?:s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def conjugate(action: str, plural: bool) -> str:
    """Conjugate a base-form verb phrase for its subject: "tilt and smile" → "tilts and smiles".

    Phrases already in the third person or -ing form, and plural subjects, are left as they are."""
    words = action.split()
    if plural or not words:
        return action
    first = words[0]
    if first.endswith(("ing", "ed")) or (first.endswith("s") and not first.endswith("ss") and len(first) > 3):
        return action
    out = [third_person(first)]
    conj_next = False
    for w in words[1:]:
        if conj_next and w.isalpha() and w not in PACE_WORDS | STRENGTH_WORDS and not w.endswith("ly"):
            out.append(third_person(w))
        else:
            out.append(w)
        conj_next = w in _CONJUNCTIONS
    return " ".join(out)


def motion_phrase(m: Motion) -> str:
    """One motion as a clause with its pace and strength: "the hair gently flows", "the clouds slowly drift".

    An action that names its own thing ("the flag ripples", for a thing outside the canonical subjects) is the
    clause; its pace and strength words follow it ("the flag ripples gently")."""
    words = set(m.action.lower().split())
    if m.action.startswith("the "):
        extra = [w for w in (strength_word(m.intensity), pace_word(m.speed)) if w and not words & set(w.split())]
        return " ".join([m.action, *extra])
    verb = ACTION_PHRASES.get((m.subject, m.action.lower())) or conjugate(m.action, m.subject in PLURAL_SUBJECTS)
    words |= set(verb.split())
    before: list[str] = []
    after = ""
    strength = strength_word(m.intensity)
    if strength and not words & STRENGTH_WORDS:
        before.append(strength)
    pace = pace_word(m.speed)
    if pace and not words & PACE_WORDS:
        if pace.endswith("ly"):
            before.append(pace)
        else:
            after = " " + pace
    lead = " and ".join(before)
    return f"{SUBJECT_NOUNS[m.subject]} {lead + ' ' if lead else ''}{verb}{after}"


def camera_phrase(plan: MotionPlan) -> str:
    move = plan.camera.move
    if move == "static":
        return CAMERA_PHRASES["static"]
    pace = pace_word(plan.camera.speed)
    verb = CAMERA_VERBS[move]
    if pace == "in slow motion":
        return f"the camera very slowly {verb}"
    if pace == "slowly":
        return f"the camera slowly {verb}"
    if pace:
        return f"the camera {verb} {pace}"
    return f"the camera smoothly {verb}"


def atmosphere_phrase(items: tuple[str, ...]) -> str:
    return ", ".join(ATMOSPHERE_PHRASES.get(a, a) for a in items)


def compile_prompt(plan: MotionPlan) -> str:
    """The positive prompt: framing, motions, camera, atmosphere, quality tail; the person's own prompt wins."""
    if plan.prompt_override:
        return plan.prompt_override
    parts = [FRAMING[plan.template]]
    parts += [motion_phrase(m) for m in plan.motions]
    if not plan.motions:
        parts.append("everything in the scene holds still")
    parts.append(camera_phrase(plan))
    if plan.atmosphere:
        parts.append(atmosphere_phrase(plan.atmosphere))
    return ", ".join(parts) + ". " + QUALITY_TAIL[plan.template][0].upper() + QUALITY_TAIL[plan.template][1:] + "."


def compile_negative(plan: MotionPlan) -> str:
    """The person's negative terms first, then the template's, then the common ones; each term once."""
    terms: list[str] = []
    for chunk in (", ".join(plan.negative_terms), get_template(plan.template).negative_prompt,
                  library().common_negative_prompt):
        for term in (t.strip() for t in chunk.split(",")):
            if term and term not in terms:
                terms.append(term)
    return ", ".join(terms)


def compile_plan(plan: MotionPlan) -> MotionPlan:
    """The plan with `prompt` and `negative_prompt` written from its other fields."""
    return plan.with_changes(prompt=compile_prompt(plan), negative_prompt=compile_negative(plan))


def default_plan(template_id: str, seed: int = 0) -> MotionPlan:
    """The starting plan of template `template_id` with `seed`, its prompts compiled."""
    t = get_template(template_id)
    plan = MotionPlan.create(
        template=t.id,
        motions=t.motions,
        camera=t.camera,
        atmosphere=t.atmosphere,
        duration_s=t.duration_s,
        steps=t.steps,
        guidance_scale=t.guidance[0],
        guidance_scale_2=t.guidance[1],
        seed=seed,
    )
    return compile_plan(plan)
