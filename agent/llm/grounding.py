"""Grounding: does a message name what an edit changes? Small models invent edits ("make it 4 seconds" →
also a new camera move), so the LLM planner keeps only the edits whose target the message names, in the
words of agent.vocabulary: a subject or its verb, the camera, a number, a category, a seed ...

The same words decide which edits conflict when rules and LLM are merged (`target_key`) and which of the
rules' unparsed fragments the LLM answered (`is_covered`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent import camera_words as CW
from agent import template_words as TW
from agent import vocabulary as V
from agent.edits import SESSION_OPS

if TYPE_CHECKING:
    from agent.edits import Edit

# A camera edit is kept only when the message says that move: every word of one of its alternatives
# ("zoom out" for zoom_out; "zoom" alone is a zoom in), not only the word "camera".
MOVE_WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "zoom_in": (("zoom", "in"), ("push",), ("closer",), ("zoom",)), "zoom_out": (("zoom", "out"), ("zoom", "away"),
                                                                                 ("pull",), ("widen",), ("wider",)),
    "pan_left": (("pan", "left"), ("truck", "left"), ("camera", "left")),
    "pan_right": (("pan", "right"), ("truck", "right"), ("camera", "right"), ("pan",)),
    "tilt_up": (("tilt", "up"), ("crane", "up"), ("rise",), ("rises",), ("tilt",)),
    "tilt_down": (("tilt", "down"), ("crane", "down"), ("lower",), ("descend",)),
    "orbit_left": (("orbit", "left"), ("circle", "left"), ("around", "left"), ("counterclockwise",),
                   ("anticlockwise",)),
    "orbit_right": (("orbit",), ("circle",), ("around",), ("360",), ("turntable",), ("clockwise",)),
    "dolly_in": (("dolly",), ("forward",), ("push",), ("closer",)),
    "dolly_out": (("dolly", "out"), ("dolly", "back"), ("pull",), ("back",)),
    "static": (("still",), ("static",), ("steady",), ("fixed",), ("locked",), ("tripod",), ("stop",), ("freeze",)),
}
# the direction that makes a word mean the opposite move ("zoom" is zoom_in unless "out" is said too)
MOVE_EXCLUDES: dict[str, tuple[str, ...]] = {"zoom_in": ("out", "away"), "pan_right": ("left",), "tilt_up": ("down",),
                                             "orbit_right": ("left", "counterclockwise", "anticlockwise"),
                                             "dolly_in": ("out", "back", "away")}
_BARE_MOVES = ("zoom", "pan", "tilt", "orbit", "dolly", "circle", "around")
PACE_WORDS = ("slow", "fast", "quick", "speed", "pace", "calm", "steady", "gentle", "rapid")
SEED_WORDS = ("seed", "variation", "reroll", "retry", "shuffle", "random", "randomize", "version", "take")

OP_WORDS: dict[str, tuple[str, ...]] = {
    "set_duration": ("second", "sec", "longer", "shorter", "duration", "length", "long", "short") + V.SPOKEN_NUMBERS,
    "set_steps": ("step", "quality", "draft", "render", "detail", "sharp") + V.SPOKEN_NUMBERS,
    "set_guidance": ("guidance", "cfg", "adherence"),
    "undo": ("undo", "back", "revert", "previous", "before"),
    "reset": ("reset", "over", "scratch", "restart", "default"),
    "recall": ("#", "same", "like", "last", "first", "second", "third", "previous", "earlier", "rerun", "one"),
    # end frame, loop, variations (#12 §1, §3)
    "end_frame": ("end", "finish", "land", "last", "final", "morph", "transition", "picture", "photo", "image", "frame"),
    "loop": ("loop", "seamless", "endless", "starts", "started", "began"),
    "variations": ("variation", "version", "variant", "option", "alternative", "seed", "take", "different", "single",
                   "one", "few", "several", "dozen") + V.SPOKEN_NUMBERS,
    "pick": ("like", "love", "prefer", "pick", "choose", "take", "keep", "variation", "version", "first", "second",
             "third", "fourth", "fifth", "sixth", "seventh", "eighth"),
}
_TOKEN = re.compile(r"#|[a-z0-9']+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _mentions(tokens: Sequence[str], word: str) -> bool:
    """`word` (or a form of it: "flows", "flowing", "waves") is among the message's tokens."""
    for t in tokens:
        if t == word or (len(word) >= 3 and t.startswith(word)) or (len(t) >= 4 and word.startswith(t)):
            return True
    return False


def mentions_any(tokens: Sequence[str], words: Sequence[str]) -> bool:
    return any(_mentions(tokens, w) for w in words)


def _names_any(tokens: Sequence[str], words: Sequence[str]) -> bool:
    """One of `words` is among the tokens as a whole word, singular or plural ("cam" is not "campfire")."""
    return any(t == w or t in (w + "s", w + "es") or w in (t + "s", t + "es") for t in tokens for w in words)


def content_words(fragments: Sequence[str]) -> list[str]:
    """Words of `fragments` that could carry an instruction (filler and punctuation left out)."""
    return [t for t in tokens(" ".join(fragments)) if t not in V.FILLER and (len(t) > 2 or t[0].isdigit() or t == "#")]


def subject_words(subject: str) -> tuple[str, ...]:
    """The subject and the words people use for it (its single-word synonyms and hints)."""
    synonyms = tuple(w for w, s in V.SUBJECT_SYNONYMS.items() if s == subject and " " not in w)
    return (subject,) + V.SUBJECT_HINTS.get(subject, ()) + synonyms


def is_grounded(edit: Edit, text: str) -> bool:
    """Does the message name what `edit` changes? (a subject, the camera, a duration, a seed ...)"""
    toks = tokens(text)
    has_digit = any(t[0].isdigit() for t in toks if t)
    op = edit.op
    if op in ("add_motion", "remove_motion", "scale_motion"):
        subject = edit.subject  # type: ignore[union-attr]
        if mentions_any(toks, subject_words(subject)):
            return True
        return op == "add_motion" and mentions_any(toks, content_words([edit.action])[:1])  # type: ignore[union-attr]
    if op == "set_camera":
        return says_move(toks, edit.move)  # type: ignore[union-attr]
    if op == "scale_camera":
        said_camera = mentions_any(toks, CW.CAMERA_MOVE_WORDS) or _names_any(toks, CW.CAMERA_WORDS)
        return said_camera and mentions_any(toks, PACE_WORDS)
    if op == "seed":
        return mentions_any(toks, SEED_WORDS) or ("again" in toks and bool({"try", "different"} & set(toks)))
    if op in ("set_duration", "set_steps"):
        return has_digit or mentions_any(toks, OP_WORDS[op])
    if op == "set_template":
        return _names_any(toks, TW.TEMPLATE_WORDS.get(edit.template, ()))  # type: ignore[union-attr]
    if op in ("add_negative", "remove_negative"):  # every term must be named ("no hands" → "hands"), not just any "no"
        return all(mentions_any(toks, content_words([t])) for t in edit.terms)  # type: ignore[union-attr]
    if op in ("add_atmosphere", "remove_atmosphere"):
        return all(mentions_any(toks, content_words([item])) for item in edit.items)  # type: ignore[union-attr]
    if op == "recall":
        return has_digit or mentions_any(toks, OP_WORDS["recall"])
    if op in OP_WORDS:
        return mentions_any(toks, OP_WORDS[op])
    return False


def says_move(toks: Sequence[str], move: str) -> bool:
    """Does the message say this camera move ("pan" and "left" for pan_left; "zoom" without "out" for zoom_in)?"""
    alternatives = MOVE_WORDS[move]
    if any(w in toks for w in MOVE_EXCLUDES.get(move, ())):  # "zoom out": the bare "zoom" is not a zoom in
        alternatives = tuple(a for a in alternatives if len(a) > 1 or a[0] not in _BARE_MOVES)
    return any(all(mentions_any(toks, [w]) for w in alternative) for alternative in alternatives)


def is_covered(fragment: str, edits: Sequence[Edit]) -> bool:
    """Is `fragment` filler, or does one of `edits` come from it?"""
    return not content_words([fragment]) or any(is_grounded(e, fragment) for e in edits)


def target_key(edit: Edit) -> tuple[str, ...]:
    """What an edit changes; two edits with the same key conflict (the rule planner's wins)."""
    op = edit.op
    if op in ("add_motion", "remove_motion", "scale_motion"):
        return ("motion", edit.subject)  # type: ignore[union-attr]
    if op in ("set_camera", "scale_camera"):
        return ("camera",)
    if op in ("add_atmosphere", "remove_atmosphere"):
        return ("atmosphere",)
    if op in SESSION_OPS:
        return ("session",)
    return (op,)
