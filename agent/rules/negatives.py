"""Clause matchers for what must not move or appear: negations ("no hand movement", "keep the head still"),
safety words that become negative terms ("don't let her face get distorted", "no text or logos", "avoid
extra fingers": never a motion), and terms allowed again ("text is fine now", "remove the no-hands thing")."""

from __future__ import annotations

import re

from agent import camera_words as CW
from agent import vocabulary as V
from agent.edits import AddNegative, RemoveAtmosphere, RemoveMotion, RemoveNegative
from agent.rules import patterns as P
from agent.rules.clauses import Clause, Turn
from agent.rules.motions import subject_for_action

# what was said about a thing's damage -> the adjective of its negative term ("distorting" -> "distorted face")
_DAMAGE: dict[str, str] = {}
for _adjective, _words in {
    "distorted": "distorted distort distorting undistorted un-distorted intact weird wonky messed",
    "warped": "warped warp warping unwarped", "deformed": "deformed deform deforming undeformed malformed mangled",
    "melted": "melted melt melting", "morphing": "morphed morph morphing", "stretched": "stretched stretch stretching",
    "blurry": "blurry blurred blur blurring", "smeared": "smeared smear", "glitchy": "glitchy glitch",
}.items():
    _DAMAGE.update(dict.fromkeys(_words.split(), _adjective))
_DAMAGED = r"(" + "|".join(sorted(_DAMAGE, key=len, reverse=True)) + r")(?:\s+up)?"
_OWNER = r"(?:her|his|their|its|the|my|your)\s+"
# "don't let her face get distorted", "her face should not warp", "without distorting the logo"
DAMAGE_RES = (
    re.compile(r"\b(?:do\s+not|never)\s+let\s+" + _OWNER + r"(\w+)\s+(?:get|become|look|go|be|end\s+up|turn)\s+"
               + _DAMAGED + r"\b"),
    re.compile(r"\b" + _OWNER + r"(\w+)\s+(?:should|must|can|does|do|will)\s*(?:not|never)\s+"
               r"(?:get\s+|be\s+|become\s+|look\s+)?" + _DAMAGED + r"\b"),
    re.compile(r"\bwithout\s+(distorting|warping|deforming|melting|morphing|stretching|blurring)\s+(?:" + _OWNER + ")?"
               + r"(\w+)\b"),
    re.compile(r"\bkeep\s+" + _OWNER + r"(\w+)\s+(undistorted|intact|unwarped|undeformed|un-distorted)\b"),
)
# "no logo distortion", "without face warping": the thing and its damage, as said
NO_DAMAGE_RE = re.compile(r"\b(?:no|without|avoid)\s+(?:any\s+)?([a-z]+)\s+(distortions?|warping|deformation|morphing|"
                          r"melting|stretching|artifacts)\b")
NO_THING_RE = re.compile(
    r"\b(?:remove|drop|delete|forget|undo|lose|cancel|scrap|get\s+rid\s+of|take\s+(?:out|away))\s+(?:the\s+|that\s+)?"
    r"no[- ]([a-z]+(?:-[a-z]+)?)(?:\s+(?:thing|rule|part|bit|one|setting|term|restriction|negative))?\b"
)


def _remove_subject(turn: Turn, subject: str) -> None:
    turn.add(RemoveMotion(subject=subject))  # type: ignore[arg-type]
    term = V.NEGATIVE_TERMS_ON_REMOVE.get(subject)
    if term:
        turn.add(AddNegative(terms=(term,)))


def _allow_res(term: str) -> tuple[re.Pattern[str], ...]:
    t = re.escape(term)
    return (
        re.compile(rf"\b(?:stop avoiding|do not avoid|don't avoid|dont avoid|allow|permit)\s+(?:the\s+|any\s+)?{t}"
                   rf"(?:\s+again)?\b"),
        re.compile(rf"\b{t}\s+(?:is|are)\s+(?:fine|ok|okay|allowed)(?:\s+now|\s+again)?\b"),
        re.compile(rf"\b(?:remove|drop|take)\s+(?:the\s+)?{t}\s+(?:from|out of)\s+the\s+negative(?:\s+prompt)?\b"),
    )


def _negative_named(turn: Turn, said: str) -> str | None:
    """The negative term of the plan that `said` names ("hand" → "hands", "no-text" → "text")."""
    said = said.replace("-", " ").strip()
    for term in turn.plan.negative_terms:
        if said in (term, term + "s", term.rstrip("s")) or term.startswith(said + " ") or term.endswith(" " + said):
            return term
    return None


def read_allow(c: Clause, turn: Turn) -> None:
    """"text is fine now", "stop avoiding hands", "remove the no-hands thing": a negative term comes out again."""
    while (m := c.search(NO_THING_RE)) is not None:
        c.take(m)
        term = _negative_named(turn, m.group(1))
        if term is None:
            turn.notes.append(f"“no {m.group(1)}” is not among the things I avoid, so there was nothing to remove")
        else:
            turn.add(RemoveNegative(terms=(term,)))
    for term in turn.plan.negative_terms:
        for pattern in _allow_res(term):
            if (m := c.search(pattern)) is not None:
                c.take(m)
                turn.add(RemoveNegative(terms=(term,)))
                break


def read_damage(c: Clause, turn: Turn) -> None:
    """Safety words about a thing ("don't let her face get distorted"): a negative term, never a motion."""
    while (m := c.search(NO_DAMAGE_RE)) is not None and m.group(1) not in V.FILLER:
        c.take(m)
        turn.add(AddNegative(terms=(f"{m.group(1)} {m.group(2)}"[:40],)))
    for pattern in DAMAGE_RES:
        while (m := c.search(pattern)) is not None:
            c.take(m)
            noun, said = (m.group(2), m.group(1)) if pattern is DAMAGE_RES[2] else (m.group(1), m.group(2))
            turn.add(AddNegative(terms=(f"{_DAMAGE.get(said, 'distorted')} {noun}"[:40],)))


def read_negations(c: Clause, turn: Turn) -> None:
    read_damage(c, turn)
    if (m := c.search(P.FREEZE_ALL_RE)) is not None:
        c.take(m)
        for mo in turn.plan.motions:
            if turn.motion(mo.subject) is not None:
                turn.add(RemoveMotion(subject=mo.subject))
        for subject in turn.added_subjects():
            if turn.motion(subject) is not None:
                turn.add(RemoveMotion(subject=subject))  # type: ignore[arg-type]
    m = c.search(P.AVOID_RE)
    if m:
        c.take(m)
        for said in re.split(r"\s*(?:,|\bor\b|\band\b|\bnor\b)\s*", m.group(1)):
            term = " ".join(w for w in said.split() if w not in ("movement", "motion", "any", "no"))[:40].strip()
            if term:
                turn.add(AddNegative(terms=(term,)))
    while (m := c.search(P.ARTIFACT_RE)) is not None:
        c.take(m)
        turn.add(AddNegative(terms=(m.group(1),)))
        while (more := P.ARTIFACT_MORE_RE.match(c.text, m.end())) is not None:  # "no text or logos"
            c.take(more)
            turn.add(AddNegative(terms=(more.group(1),)))
            m = more
    while (m := c.search(P.NEGATED_ACTION_RE)) is not None:
        c.take(m)
        action, default = V.ACTIONS[m.group(1)]
        _remove_subject(turn, subject_for_action(turn, action, default))
    for pattern in P.NEGATION_RES:
        while (m := c.search(pattern)) is not None:
            word = m.group(1)
            c.take(m)
            _take_motion_word(c, m.end())
            if word == "light":
                word = "the light"
            if word in CW.ATMOSPHERE_SYNONYMS and word not in V.SUBJECT_SYNONYMS:
                turn.add(RemoveAtmosphere(items=(CW.ATMOSPHERE_SYNONYMS[word],)))
            else:
                _remove_subject(turn, V.SUBJECT_SYNONYMS[word])


def _take_motion_word(c: Clause, at: int) -> None:
    """After "no tail", also use up "wagging" / "movement", so it does not read as a new motion."""
    m = P.MOTION_WORD_RE.match(c.text, at)
    if m:
        c.take(m)
