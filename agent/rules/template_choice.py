"""Which template a message points at: the whole prompt scored (`choose_template`), and the clause matcher
for template names and switches ("make it a product shot", "use the anime style")."""

from __future__ import annotations

import re

from agent import template_words as TW
from agent import vocabulary as V
from agent.edits import SetTemplate
from agent.rules import patterns as P
from agent.rules.clauses import Clause, Turn, read_message

NAMED_WEIGHT = 10  # "the product template": a name outweighs any description
HAND_WEIGHT = 2  # a hand described in a prompt whose hands are in view, for the dynamic portrait
STRONG_CUE = 3
SWITCH_CUE = 4  # on a later message, a cue this strong that is not a moving thing switches the template
_DYNAMIC_WORDS = re.compile(r"\b(?:dynamic|gestures?)\b")


def template_for(message: str, *, hands_in_view: bool) -> str | None:
    """The template a message's words point at (None: no category words); the words of a history reference
    ("the cat video") do not count."""
    return template_for_text(read_message(message)[0], hands_in_view=hands_in_view)


def template_for_text(text: str, *, hands_in_view: bool) -> str | None:
    """`template_for` of a message already read (`read_message`), so it is not read twice."""
    return choose_template(_without_references(text), hands_in_view=hands_in_view)


def _without_references(text: str) -> str:
    return P.RECALL_QUERY_RE.sub(" ", P.RECALL_ORDINAL_RE.sub(" ", text))


def choose_template(text: str, *, hands_in_view: bool) -> str | None:
    """The template a (normalised) prompt points at: every cue adds its weight, the heaviest total wins and
    the earliest mention breaks ties.

    `portrait_dynamic` (gestures) is chosen only when the hands are in view (said, or described in the prompt);
    then the hands described count for it and a portrait is a dynamic one. Without that its cues count for
    `portrait_subtle`."""
    scores: dict[str, int] = {}
    first: dict[str, int] = {}

    def add(template: str, weight: int, at: int) -> None:
        scores[template] = scores.get(template, 0) + weight
        first.setdefault(template, at)

    for m in P.CUE_RE.finditer(text):
        template, weight = TW.TEMPLATE_CUES[m.group(0)]
        if template == "portrait_dynamic" and not hands_in_view:
            template = "portrait_subtle"
        add(template, weight, m.start())
    for m in P.TEMPLATE_NAMED_RE.finditer(text):
        add(TW.TEMPLATE_NAMES[m.group(1)], NAMED_WEIGHT, m.start())
    if hands_in_view:
        for m in TW.hand_mentions(text):
            add("portrait_dynamic", HAND_WEIGHT, m.start())
        if scores.get("portrait_dynamic", 0) > 0 and scores.get("fashion", 0) < TW.TEMPLATE_CUES["fashion"][1]:
            # gestures with visible hands: a portrait is a dynamic one (a headshot stays facial-only)
            scores["portrait_dynamic"] += scores.pop("portrait_subtle", 0)
    if not scores or max(scores.values()) <= 0:
        return None
    return min(scores, key=lambda t: (-scores[t], first[t]))


def names_a_scene(text: str) -> bool:
    """Does the (normalised) text say what the picture is, beyond things that move outside the canonical
    subjects? ("a flag on a pole" does not: only what it names should move)."""
    for m in P.CUE_RE.finditer(text):
        weight = TW.TEMPLATE_CUES[m.group(0)][1]
        if weight >= STRONG_CUE and m.group(0) not in V.GENERIC_OBJECTS:
            return True
    return P.TEMPLATE_NAMED_RE.search(text) is not None


def read_template(c: Clause, turn: Turn, *, first_message: bool) -> None:
    """Template names and switches in a clause; on a later message a strong category word switches too."""
    target = None
    m = c.search(P.TEMPLATE_NAMED_RE)
    if m:
        target = TW.TEMPLATE_NAMES[m.group(1)]
        c.take(m)
    else:
        target = _switch_target(c)
    if target is None:
        # Category words that are not things that move ("headshot", "anime", "portrait"): on a first message
        # choose_template read them; later, the strongest ones switch the category.
        for cue in list(P.CUE_RE.finditer(c.text)):
            template, weight = TW.TEMPLATE_CUES[cue.group(0)]
            if weight >= STRONG_CUE and cue.group(0) not in V.SUBJECT_SYNONYMS:
                c.take(cue)
                if not first_message and weight >= SWITCH_CUE and target is None:
                    target = template
        if target is None:
            return
    if target == "portrait_subtle" and turn.hands_in_view and c.has(_DYNAMIC_WORDS):
        target = "portrait_dynamic"
    if turn.template_locked:
        if target != turn.plan.template:
            turn.notes.append(f"the template chosen in the app stays {turn.plan.template}")
        return
    if target != turn.plan.template:
        turn.add(SetTemplate(template=target))


def _switch_target(c: Clause) -> str | None:
    """"switch to the product template", "make it anime": the template named after a switch phrase."""
    switch = c.search(TW.TEMPLATE_SWITCH)
    if not switch:
        return None
    tail = switch.group(1)
    name = P.TEMPLATE_NAME_RE.search(tail)
    cue = P.CUE_RE.search(tail)
    target = None
    if name and (len(tail.split()) <= 4 or TW.TEMPLATE_SWITCH_TAIL.search(tail)):
        target = TW.TEMPLATE_NAMES[name.group(0)]
    elif cue and TW.TEMPLATE_CUES[cue.group(0)][1] >= STRONG_CUE:
        target = TW.TEMPLATE_CUES[cue.group(0)][0]
    if target:
        c.understood = True
        start = switch.start(1)
        picked = name or cue
        assert picked is not None
        c.text = c.text[:start + picked.start()] + " " * len(picked.group(0)) + c.text[start + picked.end():]
    return target
