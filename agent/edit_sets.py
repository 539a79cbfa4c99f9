"""Edits as a set: exact repeats collapse, and pairs that contradict each other are found ("zoom in" and
"zoom out", "pan left" and a still camera, "faster" and "slower" for the same thing, two durations).

The rule planner keeps the last of a contradictory pair and says so (`last_wins`); the LLM planner refuses
such an answer (`contradictions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.edits import Edit


def collapse(edits: Sequence[Edit]) -> list[Edit]:
    """The edits with exact repeats left out (three identical 0.6× slowdowns are one), in order."""
    return list(dict.fromkeys(edits))  # frozen edits hash by value: one pass, order kept


def _direction(factor: float) -> int:
    return 0 if abs(factor - 1.0) < 1e-9 else (1 if factor > 1 else -1)


def contradict(a: Edit, b: Edit) -> bool:
    """Do `a` and `b` ask for opposite things?"""
    ops = {a.op, b.op}
    if ops == {"set_camera"}:
        return a.move != b.move  # type: ignore[union-attr]
    if ops == {"scale_camera"}:
        return _direction(a.factor) * _direction(b.factor) < 0  # type: ignore[union-attr]
    if ops == {"add_motion", "remove_motion"} or ops == {"scale_motion"}:
        if a.subject != b.subject:  # type: ignore[union-attr]
            return False
        if ops == {"scale_motion"}:
            return any(_direction(getattr(a, f)) * _direction(getattr(b, f)) < 0
                       for f in ("speed_factor", "intensity_factor"))
        return True
    if ops == {"set_duration"}:
        return a.seconds != b.seconds  # type: ignore[union-attr]
    if ops == {"set_steps"}:
        return a.steps != b.steps  # type: ignore[union-attr]
    if ops == {"set_template"}:
        return a.template != b.template  # type: ignore[union-attr]
    if ops == {"seed"}:
        return (a.policy, a.value) != (b.policy, b.value)  # type: ignore[union-attr]
    if ops == {"add_negative", "remove_negative"}:
        return bool(set(a.terms) & set(b.terms))  # type: ignore[union-attr]
    if ops == {"add_atmosphere", "remove_atmosphere"}:
        return bool(set(a.items) & set(b.items))  # type: ignore[union-attr]
    if ops <= {"end_frame", "loop"}:  # end frame and loop (#12 §1): what the clip ends on
        return a.on != b.on if a.op == b.op else a.on and b.on  # type: ignore[union-attr]
    if ops == {"variations"}:
        return a.count != b.count  # type: ignore[union-attr]
    return False


def _keys(edit: Edit) -> list[tuple[str, ...]]:
    """What an edit sets; only edits that share a key can contradict each other."""
    op = edit.op
    if op in ("set_camera", "scale_camera", "set_duration", "set_steps", "set_template", "seed", "variations"):
        return [(op,)]
    if op in ("end_frame", "loop"):
        return [("end",)]
    if op in ("add_motion", "remove_motion"):
        return [("motion", edit.subject)]  # type: ignore[union-attr]
    if op == "scale_motion":
        return [("scale", edit.subject)]  # type: ignore[union-attr]
    if op in ("add_negative", "remove_negative"):
        return [("negative", t) for t in edit.terms]  # type: ignore[union-attr]
    if op in ("add_atmosphere", "remove_atmosphere"):
        return [("atmosphere", i) for i in edit.items]  # type: ignore[union-attr]
    return []


def contradictions(edits: Sequence[Edit]) -> list[tuple[int, int]]:
    """Index pairs (i < j): edit j contradicts i, the last earlier edit that sets the same thing (one pass)."""
    last: dict[tuple[str, ...], int] = {}
    pairs: list[tuple[int, int]] = []
    for j, e in enumerate(edits):
        for key in _keys(e):
            i = last.get(key)
            if i is not None and (not pairs or pairs[-1] != (i, j)) and contradict(edits[i], e):
                pairs.append((i, j))
            last[key] = j
    return pairs


def describe(edit: Edit) -> str:
    """An edit in a few words, for a note: "pan left", "a still camera", "hair slower", "4 s"."""
    op = edit.op
    if op == "set_camera":
        return "a still camera" if edit.move == "static" else edit.move.replace("_", " ")  # type: ignore[union-attr]
    if op == "scale_camera":
        return "a slower camera" if edit.factor < 1 else "a faster camera"  # type: ignore[union-attr]
    if op == "add_motion":
        return f"{edit.subject} moving"  # type: ignore[union-attr]
    if op == "remove_motion":
        return f"{edit.subject} still"  # type: ignore[union-attr]
    if op == "scale_motion":
        words = []
        if _direction(edit.speed_factor):  # type: ignore[union-attr]
            words.append("slower" if edit.speed_factor < 1 else "faster")  # type: ignore[union-attr]
        if _direction(edit.intensity_factor):  # type: ignore[union-attr]
            words.append("subtler" if edit.intensity_factor < 1 else "stronger")  # type: ignore[union-attr]
        who = "everything" if edit.subject == "all" else edit.subject  # type: ignore[union-attr]
        return f"{who} {' and '.join(words) or 'unchanged'}"
    if op == "set_duration":
        return f"{edit.seconds:g} s"  # type: ignore[union-attr]
    if op == "set_steps":
        return f"{edit.steps} steps"  # type: ignore[union-attr]
    if op == "set_template":
        return f"the {edit.template} template"  # type: ignore[union-attr]
    if op == "seed":
        return {"same": "the same seed", "new": "a new seed"}.get(edit.policy, f"seed {edit.value}")  # type: ignore[union-attr]
    if op in ("add_negative", "remove_negative"):
        return ("no " if op == "add_negative" else "allowing ") + ", ".join(edit.terms)  # type: ignore[union-attr]
    if op in ("add_atmosphere", "remove_atmosphere"):
        return ("" if op == "add_atmosphere" else "no ") + ", ".join(edit.items)  # type: ignore[union-attr]
    if op in ("end_frame", "loop"):
        return ("" if edit.on else "no ") + ("end picture" if op == "end_frame" else "loop")  # type: ignore[union-attr]
    if op == "variations":
        return f"{edit.count} variations"  # type: ignore[union-attr]
    return op.replace("_", " ")


def last_wins(edits: Sequence[Edit]) -> tuple[list[Edit], list[str]]:
    """Drop the earlier edit of each contradictory pair; a note for each says which one was kept."""
    pairs = contradictions(edits)
    dropped = {i for i, _ in pairs}
    notes = [f"you asked for {describe(edits[i])} and {describe(edits[j])}: I went with the last one "
             f"({describe(edits[j])})" for i, j in pairs if j not in dropped]
    return [e for k, e in enumerate(edits) if k not in dropped], list(dict.fromkeys(notes))
