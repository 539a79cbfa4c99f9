"""Clause matchers for words that mean an edit beyond their letters: "more cinematic" (a look, not stronger
motion), "steadier" / "less shaky" (a calmer camera and no shake), "the other way" / "mirror it" (the opposite
camera move at the same pace), "half as long" / "double it" (relative durations) and "change the sky to
sunset" / "sunset instead of golden hour" (a light that replaces the one there)."""

from __future__ import annotations

import re

from agent import camera_words as CW
from agent import vocabulary as V
from agent.edits import AddAtmosphere, AddMotion, AddNegative, RemoveAtmosphere, ScaleCamera, SetCamera, SetDuration
from agent.rules import patterns as P
from agent.rules.clauses import Clause, Turn, take_all
from agent.rules.references import targets_of

CINEMATIC_LOOK = ("shallow depth of field", "film grain")
CINEMATIC_CAMERA = ("dolly_in", 0.5)  # a static camera gets a slow push; a moving one slows to this pace at most
STEADIER_FACTOR = 0.6
SHAKE_TERM = "camera shake"
OPPOSITE_MOVES: dict[str, str] = {
    "zoom_in": "zoom_out", "pan_left": "pan_right", "tilt_up": "tilt_down", "orbit_left": "orbit_right",
    "dolly_in": "dolly_out",
}
OPPOSITE_MOVES |= {b: a for a, b in OPPOSITE_MOVES.items()}

CINEMATIC_RE = re.compile(
    r"\b(?:more|make\s+(?:it|this)|look|looks|feel|feels|bit|little)\s+(?:more\s+)?"
    r"(?:cinematic|filmic|film-like|movie-like)\b(?!\s+light)"
    r"|\bcinematic\s+(?:look|feel|style|vibe)\b|\b(?:film|movie)\s+(?:look|feel)\b"
    r"|\blike\s+(?:a|in\s+a)\s+(?:movie|film)\b|^\s*(?:more\s+)?cinematic\s*$"
)
STEADIER_RE = re.compile(
    r"\b(?:less|not\s+so|too|way\s+too)\s+(?:shaky|jittery|wobbly|jerky|bumpy)\b|\bsteadier\b"
    r"|\bmore\s+(?:stable|steady)\b|\bstabili[sz]e[ds]?\b|\bsmoother\s+camera\b|\bcalm(?:er)?\s+(?:the\s+)?camera\b"
    r"|\bcamera\s+(?:calmer|smoother|less\s+shaky)\b"
)
REVERSE_RE = re.compile(
    r"\b(?:the\s+)?other\s+way(?:\s+(?:round|around))?\b|\b(?:the\s+)?(?:other|opposite)\s+direction\b"
    r"|\breverse(?:\s+(?:the\s+)?(?:camera(?:\s+(?:move|movement|direction))?|it|that|direction|move|movement))?\b"
    r"|\bmirror\s+(?:it|that|the\s+(?:camera|move|movement))\b|\bflip\s+(?:the\s+)?(?:direction|camera|move|it)\b"
)
_SIDES = {"left": "right", "right": "left", "up": "down", "down": "up"}
_SIDE_RE = re.compile(r"\b(left|right|up|down)\b")
RELATIVE_DURATION: tuple[tuple[re.Pattern[str], float | None], ...] = (
    (re.compile(r"\bhalf[\s_]as[\s_]long\b|\bhalf\s+(?:the|that|its)\s+(?:length|duration|time)\b"
                r"|\bhalve\s+(?:it|that|the\s+(?:length|duration|clip|time))\b"
                r"|\b(?:cut|shorten)\s+(?:it|that|the\s+(?:clip|length|duration))\s+(?:in|by)\s+half\b"), 0.5),
    (re.compile(r"\btwice[\s_]as[\s_]long\b|\bdouble\s+(?:it|that|the\s+(?:length|duration|clip|time))\b"
                r"|\bdouble\s+(?:the\s+)?length\b|\b(?:two|2)\s*(?:x|times)\s+(?:as\s+)?long(?:er)?\b"), 2.0),
    (re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:x|times)\s+(?:as\s+)?(?:long|longer)\b"), None),
)
LIGHT_CHANGE_RE = re.compile(
    r"\b(?:change|make|turn|switch|set)\s+(?:the\s+|it\s+)?(?:sky|light|lighting|time\s+of\s+day|time|mood|"
    r"atmosphere|scene|it)?\s*(?:to|into|at)\b"
)
INSTEAD_OF_RE = re.compile(r"\b(?:instead\s+of|rather\s+than)\s+(?:the\s+)?(" + V.alternation(CW.ATMOSPHERE_SYNONYMS)
                           + r")\b")


def read_meanings(c: Clause, turn: Turn) -> None:
    """The matchers of this module, in order."""
    read_cinematic(c, turn)
    read_steadier(c, turn)
    read_reverse(c, turn)
    read_relative_duration(c, turn)
    read_light_change(c, turn)


def read_cinematic(c: Clause, turn: Turn) -> None:
    m = c.search(CINEMATIC_RE)
    if m is None:
        return
    c.take(m)
    new = tuple(i for i in CINEMATIC_LOOK if i not in turn.plan.atmosphere)
    if new:
        turn.add(AddAtmosphere(items=new))
    move, speed = turn.camera()
    if move == "static":
        turn.add(SetCamera(move=CINEMATIC_CAMERA[0], speed=CINEMATIC_CAMERA[1]))
    elif speed > CINEMATIC_CAMERA[1]:
        turn.add(SetCamera(move=move, speed=CINEMATIC_CAMERA[1]))  # type: ignore[arg-type]


def read_steadier(c: Clause, turn: Turn) -> None:
    m = c.search(STEADIER_RE)
    if m is None:
        return
    c.take(m)
    take_all(c, P.CAMERA_WORD_RE)
    if turn.camera()[0] != "static":
        turn.add(ScaleCamera(factor=STEADIER_FACTOR))
    turn.add(AddNegative(terms=(SHAKE_TERM,)))


def read_reverse(c: Clause, turn: Turn) -> None:
    m = c.search(REVERSE_RE)
    if m is None:
        return
    c.take(m)
    named = [(w, V.SUBJECT_SYNONYMS[w.group(0)]) for w in P.SUBJECT_RE.finditer(c.text)]
    if not named:  # "the other way" right after "turn her head to the left" is about the head
        named = [(None, s) for s in targets_of(turn.previous_message) if s != "camera"]
    for word, subject in named:
        current = turn.motion(subject)
        if current is not None and _SIDE_RE.search(current.action):
            if word is not None:
                c.take(word)
            action = _SIDE_RE.sub(lambda s: _SIDES[s.group(1)], current.action)
            turn.add(AddMotion(subject=subject, action=action, speed=current.speed,  # type: ignore[arg-type]
                               intensity=current.intensity))
            return
    take_all(c, P.CAMERA_WORD_RE)
    move, speed = turn.camera()
    if move == "static":
        turn.notes.append("the camera is static, so there is no move to reverse: say which way it should move")
        return
    turn.add(SetCamera(move=OPPOSITE_MOVES[move], speed=round(speed, 3)))  # type: ignore[arg-type]


def read_relative_duration(c: Clause, turn: Turn) -> None:
    for pattern, factor in RELATIVE_DURATION:
        m = c.search(pattern)
        if m is None:
            continue
        c.take(m)
        if factor is None:
            factor = float(m.group(1))
        if factor <= 0:
            turn.notes.append(f"a clip cannot be {factor:g} times as long: kept {turn.duration():g} s")
            return
        turn.add(SetDuration(seconds=min(3600.0, turn.duration() * factor)))
        return


def read_light_change(c: Clause, turn: Turn) -> None:
    """"change the sky to sunset": the words before the light are not a sky motion; "instead of golden hour"
    takes that light out (a new time-of-day light replaces the old one in `apply` anyway)."""
    while (m := c.search(INSTEAD_OF_RE)) is not None:
        c.take(m)
        item = CW.ATMOSPHERE_SYNONYMS[m.group(1)]
        if item in turn.plan.atmosphere:
            turn.add(RemoveAtmosphere(items=(item,)))
    m = c.search(LIGHT_CHANGE_RE)
    if m is not None and P.ATMOSPHERE_RE.search(c.text, m.end()):
        c.take(m)
