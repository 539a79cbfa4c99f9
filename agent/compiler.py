"""Plan → the `prompt` and `negative_prompt` the video model gets. Deterministic for a given plan."""

from __future__ import annotations

from agent.plan import Motion, MotionPlan

CAMERA_PHRASES: dict[str, str] = {
    "static": "the camera holds perfectly still",
    "zoom_in": "the camera zooms in",
    "zoom_out": "the camera zooms out",
    "pan_left": "the camera pans to the left",
    "pan_right": "the camera pans to the right",
    "tilt_up": "the camera tilts up",
    "tilt_down": "the camera tilts down",
    "orbit_left": "the camera orbits to the left around the subject",
    "orbit_right": "the camera orbits to the right around the subject",
    "dolly_in": "the camera dollies in",
    "dolly_out": "the camera dollies out",
}

SUBJECT_NOUNS: dict[str, str] = {
    "hair": "the hair", "head": "the head", "face": "the face", "eyes": "the eyes", "mouth": "the mouth",
    "hands": "the hands", "body": "the body", "clothing": "the clothing", "animal": "the animal",
    "tail": "the tail", "ears": "the ears", "wings": "the wings", "water": "the water",
    "clouds": "the clouds", "sky": "the sky", "trees": "the trees", "grass": "the grass",
    "flowers": "the flowers", "fire": "the fire", "smoke": "the smoke", "snow": "snow",
    "rain": "rain", "particles": "particles", "light": "the light", "product": "the product",
    "background": "the background",
}


def pace_word(speed: float) -> str:
    """Words for a speed relative to the template's normal pace (1.0)."""
    if speed < 0.4:
        return "very slowly"
    if speed < 0.85:
        return "slowly"
    if speed <= 1.2:
        return ""
    if speed <= 1.8:
        return "briskly"
    return "rapidly"


def strength_word(intensity: float) -> str:
    if intensity < 0.25:
        return "subtly"
    if intensity < 0.45:
        return "gently"
    if intensity <= 0.7:
        return ""
    return "dramatically"


def motion_phrase(m: Motion) -> str:
    words = [SUBJECT_NOUNS[m.subject], strength_word(m.intensity), m.action, pace_word(m.speed)]
    return " ".join(w for w in words if w)


def camera_phrase(plan: MotionPlan) -> str:
    phrase = CAMERA_PHRASES[plan.camera.move]
    if plan.camera.move != "static":
        pace = pace_word(plan.camera.speed)
        if pace:
            phrase = f"{phrase} {pace}"
    return phrase


def compile_prompt(plan: MotionPlan) -> str:
    if plan.prompt_override:
        return plan.prompt_override
    motions = ", ".join(motion_phrase(m) for m in plan.motions)
    sentence = (motions[0].upper() + motions[1:]) if motions else "A still, composed scene"
    parts = [sentence, camera_phrase(plan)]
    if plan.atmosphere:
        parts.append(", ".join(plan.atmosphere))
    parts.append("cinematic, smooth natural motion, high detail")
    return ", ".join(parts) + "."


def compile_negative(plan: MotionPlan) -> str:
    from agent.templates import get_template, library

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
