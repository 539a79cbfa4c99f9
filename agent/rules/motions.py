"""Clause matchers for what moves: the camera, "only X", atmosphere, and subjects with their actions, pace and
strength (what must not move or appear is agent.rules.negatives)."""

from __future__ import annotations

import re

from agent import camera_words as CW
from agent import vocabulary as V
from agent.edits import (
    AddAtmosphere,
    AddMotion,
    RemoveMotion,
    ScaleCamera,
    ScaleMotion,
    SetCamera,
)
from agent.compiler import conjugate
from agent.plan import MAX_ACTION_CHARS
from agent.rules import patterns as P
from agent.rules.clauses import Clause, Turn, clamp_speed, degree_of, read_pace, read_strength, take_all


def read_camera(c: Clause, turn: Turn) -> bool:
    m = c.search(CW.CAMERA_STOP)
    if m:
        c.take(m)
        take_all(c, P.CAMERA_WORD_RE)
        turn.add(SetCamera(move="static"))
        return True
    names_subject = c.has(P.SUBJECT_RE) or c.has(P.ATMOSPHERE_RE)
    names_camera = c.has(P.CAMERA_WORD_RE)
    degree = degree_of(c)
    for pattern, move, needs_camera in P.CAMERA_PATTERNS if c.has(P.ANY_CAMERA_PATTERN_RE) else ():
        m = c.search(pattern)
        if not m or (needs_camera and names_subject and not names_camera):
            continue
        family = P.CAMERA_FAMILY_RE.search(m.group(0))
        bare = family is not None and m.group(0).strip() == family.group(0)
        c.take(m)
        take_all(c, P.CAMERA_WORD_RE)
        current_move, current_speed = turn.camera()
        same = current_move == move or (bare and current_move in CW.CAMERA_FAMILY[family.group(0)])
        kind, value, _ = read_pace(c, degree, take=True)
        if move == "static":
            turn.add(SetCamera(move="static"))
        elif kind == "comparative" and same:
            turn.add(ScaleCamera(factor=value))
        elif kind == "comparative":
            turn.add(SetCamera(move=move, speed=clamp_speed(value)))
        elif kind == "absolute":
            turn.add(SetCamera(move=current_move if same else move, speed=value))
        elif not same:
            turn.add(SetCamera(move=move))
        return True
    # "slower camera", "speed up the zoom": a pace for the move already planned
    family = c.search(P.CAMERA_FAMILY_RE)
    if names_camera or family:
        kind, value, _ = read_pace(c, degree, take=False)
        if kind is None:
            return False
        read_pace(c, degree, take=True)
        take_all(c, P.CAMERA_WORD_RE)
        if family:
            c.take(family)
        c.understood = True
        current_move, _ = turn.camera()
        if current_move == "static":
            turn.notes.append("the camera is static: say which way it should move (zoom in, pan left …)")
        elif kind == "comparative":
            turn.add(ScaleCamera(factor=value))
        else:
            turn.add(SetCamera(move=current_move, speed=value))
        return True
    return False


def read_only(c: Clause, turn: Turn) -> None:
    m = c.search(P.ONLY_RE)
    if not m:
        return
    word = next(g for g in m.groups() if g)
    subject = V.SUBJECT_SYNONYMS[word]
    # keep the word for the motion matcher (it may carry an action), drop the "only"
    c.text = re.sub(r"\b(?:only|just|nothing\s+(?:else\s+)?(?:but|except))\b", lambda x: " " * len(x.group(0)), c.text)
    c.understood = True
    for mo in turn.plan.motions:
        if mo.subject != subject and turn.motion(mo.subject) is not None:
            turn.add(RemoveMotion(subject=mo.subject))
    if turn.motion(subject) is None and not c.has(P.ACTION_RE):
        turn.add(AddMotion(subject=subject, action=V.DEFAULT_ACTIONS[subject]))


def read_atmosphere(c: Clause, turn: Turn) -> bool:
    items = []
    while (m := c.search(P.ATMOSPHERE_RE)) is not None:
        item = CW.ATMOSPHERE_SYNONYMS[m.group(0)]
        c.take(m)
        if item not in items:
            items.append(item)
    if items:
        present = set(turn.plan.atmosphere)
        new = tuple(i for i in items if i not in present)
        if new:
            turn.add(AddAtmosphere(items=new))
        take_all(c, P.MORE_RE)
        take_all(c, P.STRONG_RE)
    return bool(items)


def _action(c: Clause) -> tuple[str, str] | None:
    """(canonical action, default subject) for the first verb of the clause, with a direction said after it
    ("turn to the left", "look at the camera", "wave hello")."""
    m = c.search(P.ACTION_RE)
    if not m:
        return None
    action, subject = V.ACTIONS[m.group(0)]
    c.take(m)
    d = P.DIRECTION_RE.match(c.text[m.end():])
    if d and d.group(0).strip():
        phrase = re.sub(r"^\s*(?:(?:her|his|its|their|the)\s+)?(?:(?:head|eyes|gaze)\s+)?", "", d.group(0))
        action = f"{action.split()[0]} {phrase.strip().replace('_', ' ')}".strip()
        c.text = c.text[:m.end()] + " " * len(d.group(0)) + c.text[m.end() + len(d.group(0)):]
    if action.startswith("wave"):
        hello = re.search(r"\b(hello|hi|goodbye|bye)\b", c.text)
        if hello:
            action = f"wave {hello.group(1)}"
            c.take(hello)
    return action, subject


def subject_for_action(turn: Turn, action: str, default: str) -> str:
    """The subject a verb said alone refers to: a motion already doing it, else the verb's default."""
    verb = action.split()[0]
    for mo in turn.plan.motions:
        if mo.action.split()[0] == verb and turn.motion(mo.subject) is not None:
            return mo.subject
    if default == "head" and turn.plan.template == "animals":
        return "animal"
    return default


def generic_action(noun: str, verb: str) -> str:
    """The action of a thing outside the canonical subjects names it: ("flag", "wave") → "the flag waves"."""
    plural = noun.endswith("s") and not noun.endswith("ss")
    return f"the {noun} {conjugate(verb, plural)}"[:MAX_ACTION_CHARS]


def read_motions(c: Clause, turn: Turn, *, others_used: bool, camera_used: bool) -> None:
    subjects: list[str] = []
    nouns: dict[str, str] = {}  # subject -> the thing outside the canonical subjects that was named for it
    while (m := c.search(P.SUBJECT_RE)) is not None:
        subject = V.SUBJECT_SYNONYMS[m.group(0)]
        c.take(m)
        if m.group(0) in V.GENERIC_OBJECTS:
            nouns.setdefault(subject, m.group(0))
        if subject not in subjects:
            subjects.append(subject)
    said = _action(c)
    if camera_used and not said and subjects and not P.MODIFIER_LEFT_RE.search(c.text):
        return  # "move closer to his face", "circle around the dog": the subject is the camera's target
    degree = degree_of(c)
    pace_kind, pace, pace_dir = read_pace(c, degree, take=True)
    strength_kind, strength, strength_dir = read_strength(c, degree, take=True)
    if not subjects and said and said[0] == "move":
        said = None  # "cars moving": a bare "move" says nothing about what moves
    if not subjects and said:
        subjects = [subject_for_action(turn, said[0], said[1])]
    elif said and len(subjects) > 1:
        # "a dog wagging its tail": the verb belongs to the part it names, not to the whole animal;
        # "a boat bobbing on the water": a thing outside the canonical subjects said first keeps its verb
        if subjects[0] in nouns:
            subjects = subjects[:1]
        elif said[1] in subjects:
            subjects = [said[1]]
        elif "animal" in subjects:
            subjects.remove("animal")
    if not subjects:
        if (pace_kind is None and strength_kind is None) or others_used:
            # nothing said, or the pace belonged to the camera or the atmosphere ("slow zoom in", "more wind")
            return
        c.understood = True
        speed_factor = _factor(pace_kind, pace, pace_dir, V.SPEED_DOWN, V.SPEED_UP, degree)
        intensity_factor = _factor(strength_kind, strength, strength_dir, V.INTENSITY_DOWN, V.INTENSITY_UP, degree)
        targets = turn.last_subjects or turn.previous_targets or ["all"]
        if targets == ["camera"]:
            if pace_kind is not None and turn.camera()[0] != "static":
                turn.add(ScaleCamera(factor=speed_factor))
            return
        targets = [t for t in targets if t != "camera"]
        for target in targets:
            turn.add(ScaleMotion(subject=target, speed_factor=speed_factor,  # type: ignore[arg-type]
                                 intensity_factor=intensity_factor))
        if targets == ["all"] and pace_kind is not None and turn.camera()[0] != "static":
            turn.add(ScaleCamera(factor=speed_factor))
        return

    c.understood = True
    turn.last_subjects = subjects
    for subject in subjects:
        current = turn.motion(subject)
        action = said[0] if said and said[0] != "move" else None
        noun = nouns.get(subject)
        names_other = noun is not None and current is not None and noun not in current.action
        if current is not None and not names_other and (action is None or _same_action(current.action, action)):
            if pace_kind == "comparative" or strength_kind == "comparative":
                turn.add(ScaleMotion(
                    subject=subject,  # type: ignore[arg-type]
                    speed_factor=pace if pace_kind == "comparative" else 1.0,
                    intensity_factor=strength if strength_kind == "comparative" else 1.0,
                ))
            if pace_kind == "absolute" or strength_kind == "absolute":
                turn.add(AddMotion(
                    subject=subject,  # type: ignore[arg-type]
                    action=current.action,
                    speed=pace if pace_kind == "absolute" else clamp_speed(current.speed),
                    intensity=strength if strength_kind == "absolute" else current.intensity,
                ))
            continue
        base_speed = current.speed if current is not None else 1.0
        base_intensity = current.intensity if current is not None else 0.5
        turn.add(AddMotion(
            subject=subject,  # type: ignore[arg-type]
            action=generic_action(noun, action or V.GENERIC_OBJECTS[noun][1]) if noun
            else (action or V.DEFAULT_ACTIONS[subject])[:MAX_ACTION_CHARS],
            speed=clamp_speed(pace if pace_kind == "absolute" else base_speed * (pace if pace_kind else 1.0)),
            intensity=round(min(1.0, strength if strength_kind == "absolute"
                                else base_intensity * (strength if strength_kind else 1.0)), 3),
        ))


def _same_action(current: str, said: str) -> bool:
    """"flow" or "look around" said about a motion that already does "flow gently" / "look around curiously"."""
    return current == said or current.startswith(said + " ")


def _factor(kind: str | None, value: float, direction: int, down: dict[str, float], up: dict[str, float],
            degree: str) -> float:
    """A scale factor for a modifier said about everything: a comparative as said; an absolute word with
    nothing named reads as a comparative ("make it slow" = slower, "make it subtle" = subtler)."""
    if kind is None:
        return 1.0
    if kind == "comparative":
        return value
    return down[degree] if direction < 0 else up[degree]
