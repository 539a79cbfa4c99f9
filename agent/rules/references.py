"""Clause matchers for what a message refers to in the conversation: "bring them back" (the subjects the last
message was about move again), "the same for the trees" (the last message's motion edits, on the trees), and
what the last message was about (`targets_of`), which "make it slower" and "even faster" act on."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from agent import template_words as TW
from agent import vocabulary as V
from agent.edits import AddMotion, CompareRequest, Edit, Recall, RemoveMotion, ScaleMotion
from agent.rules import patterns as P
from agent.rules.clauses import Clause, Turn
from agent.templates import get_template

BRING_BACK_RE = re.compile(
    r"\b(?:bring|put|add|get)\s+(?:(?:them|it|those|that|these|him|her)\s+)?back(?:\s+(?:them|it|those))?\b"
    r"|\brestore\s+(?:them|it|those|that)\b|\b(?:them|it|they)\s+(?:can\s+)?move\s+again\b"
)
SAME_FOR_RE = re.compile(r"\b(?:do\s+)?(?:the\s+)?same\s+(?:thing\s+)?(?:for|with|to)\b"
                         r"|\b(?:do\s+)?(?:that|this|it)\s+(?:for|to|with)\s+(?=(?:the\s+|her\s+|his\s+|its\s+)?\w)"
                         r"|\b(?:and\s+)?(?:the\s+)?\w+\s+too\s+please\b")
_MOTION_EDITS = (AddMotion, RemoveMotion, ScaleMotion)

# "compare #3 and #5", "compare the first and the second one", "#2 vs #4", "show #3 and #5 side by side"
_ORD = V.alternation(V.ORDINALS)
_GEN = V.alternation(V.GENERATION_NOUNS)
_REF = (r"(?:#\s*(\d+)|\b(?:generation|video|clip|take|render|number)\s+#?\s*(\d+)\b"
        r"|\b(" + _ORD + r")\b(?:\s+(?:" + _GEN + r")\b)?|\b(this(?:\s+one)?|it|the\s+current\s+one)\b)")
REF_RE = re.compile(_REF)
_R = r"(?:the\s+|my\s+)?" + re.sub(r"\((?!\?)", "(?:", _REF)  # the same reference, without groups
COMPARE_RE = re.compile(
    r"\b(?:compare|comparing)\s+" + _R + r"\s*(?:,|\band\b|\bwith\b|\bto\b|\bagainst\b|\bvs\b\.?|\bversus\b|&)\s*" + _R
    + r"(?:\s+side\s+by\s+side)?"
    r"|\b(?:show|play|put)\s+(?:me\s+)?" + _R + r"\s+and\s+" + _R + r"\s+side\s+by\s+side\b"
    r"|(?<![\w#])" + _R + r"\s+(?:vs\.?|versus)\s+" + _R
)


def read_compare(text: str) -> tuple[CompareRequest | None, str]:
    """A compare request in a (read) message, and the text without it (the rest is read as usual)."""
    m = COMPARE_RE.search(text)
    if m is None:
        return None, text
    refs = [_recall(r) for r in REF_RE.finditer(m.group(0))]
    if len(refs) < 2:
        return None, text
    return CompareRequest(a=refs[0], b=refs[-1]), text[:m.start()] + " " * (m.end() - m.start()) + text[m.end():]


def _recall(m: re.Match[str]) -> Recall:
    number, numbered, ordinal, this = m.groups()
    if number or numbered:
        return Recall(generation_id=max(1, int(number or numbered)))
    if ordinal:
        return Recall(index=V.ORDINALS[ordinal])
    return Recall(index=-1)  # "this one": the latest video


def targets_of(message: str) -> list[str]:
    """What a message was about (a fresh list; computed once per message, see `_targets`)."""
    return list(_targets(message))


@lru_cache(maxsize=32)
def _targets(message: str) -> tuple[str, ...]:
    """What a message was about: the subjects it named (not the words that only say what the picture is,
    like "a cat" or "a forest"), else ["camera"] when it named the camera or a camera move, else []."""
    text = V.normalize(message)
    subjects = []
    for m in P.SUBJECT_RE.finditer(text):
        cue = TW.TEMPLATE_CUES.get(m.group(0))
        s = V.SUBJECT_SYNONYMS[m.group(0)]
        if (cue is None or cue[1] < 3) and s not in subjects:
            subjects.append(s)
    if subjects:
        return tuple(subjects)
    camera_move = any(p.search(text) for p, _, needs_camera in P.CAMERA_PATTERNS if not needs_camera)
    if P.CAMERA_WORD_RE.search(text) or P.CAMERA_FAMILY_RE.search(text) or camera_move:
        return ("camera",)
    return ()


def _named(c: Clause) -> list[str]:
    subjects = []
    while (m := c.search(P.SUBJECT_RE)) is not None:
        c.take(m)
        s = V.SUBJECT_SYNONYMS[m.group(0)]
        if s not in subjects:
            subjects.append(s)
    return subjects


def read_bring_back(c: Clause, turn: Turn) -> None:
    """"bring them back": the subjects named, else the ones the last message was about, move again with the
    template's motion for them (or their usual one)."""
    m = c.search(BRING_BACK_RE)
    if m is None:
        return
    c.take(m)
    subjects = _named(c) or [t for t in turn.previous_targets if t != "camera"]
    if not subjects:
        turn.notes.append("bring back what? Name it (“bring the clouds back”)")
        return
    defaults = {mo.subject: mo for mo in get_template(turn.plan.template).motions}
    for subject in subjects:
        if turn.motion(subject) is not None:
            continue
        base = defaults.get(subject)
        turn.add(AddMotion(subject=subject,  # type: ignore[arg-type]
                           action=base.action if base else V.DEFAULT_ACTIONS[subject],
                           speed=base.speed if base else 1.0, intensity=base.intensity if base else 0.5))


def read_same_for(c: Clause, turn: Turn, previous_edits: Callable[[], list[Edit]]) -> None:
    """"the same for the trees": the last message's motion edits again, on the subjects named here."""
    m = c.search(SAME_FOR_RE)
    if m is None or not P.SUBJECT_RE.search(c.text, m.start()):
        return
    c.take(m)
    subjects = _named(c)
    done = [e for e in previous_edits() if isinstance(e, _MOTION_EDITS) and e.subject != "all"]
    if not done:
        turn.notes.append("the last message changed no motion, so there is nothing to repeat for "
                          + ", ".join(subjects))
        return
    for subject in subjects:
        for e in done:
            turn.add(e.model_copy(update={"subject": subject}))
