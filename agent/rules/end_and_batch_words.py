"""Clause matchers for the end frame, the seamless loop and variations (#12 §1, §3): "end on this picture",
"don't end on that picture", "make it loop", "no loop", "give me 4 variations", "try 3 different seeds",
"just one", "I like the third one". They run before the seed, history and negation matchers, so "different
seeds" is not a new seed, "the third one" is a pick from the batch and "no loop" is not a negative term."""

from __future__ import annotations

import re

from agent import vocabulary as V
from agent.end_and_batch import MAX_VARIATIONS, PickVariation, SetEndFrame, SetLoop, SetVariations
from agent.rules.clauses import Clause, Turn, number_value

_PICTURE = r"(?:picture|photo|image|pic|frame|shot|one|upload)"
_WHICH = r"(?:this|that|the|my|our)\s+(?:(?:second|other|last|new|uploaded|end|final|2nd)\s+)*"
_NOT = r"(?:do\s+not|never|no\s+longer|stop|quit)\s+"

END_OFF_RE = re.compile(
    rf"\b{_NOT}(?:end|finish|land|stop)(?:ing|s)?\s+(?:on|with|at|in)\s+{_WHICH}{_PICTURE}s?\b"
    rf"|\b(?:no|without\s+(?:an?|the)|remove\s+the|drop\s+the|forget\s+the|clear\s+the)\s+(?:end|last|final)\s+"
    rf"(?:frame|picture|photo|image)\b"
)
END_ON_RE = re.compile(
    rf"\b(?:end|finish|land|stop)(?:ing|s)?\s+(?:on|with|at|in)\s+{_WHICH}{_PICTURE}s?\b"
    rf"|\b(?:use\s+{_WHICH}{_PICTURE}\s+as|make\s+{_WHICH}{_PICTURE})\s+(?:the\s+)?(?:end|last|final)\s+"
    rf"(?:frame|picture|image|photo)\b"
    rf"|\b(?:morph|transition|blend|turn|go)(?:s|ing)?\s+(?:in)?to\s+{_WHICH}{_PICTURE}\b"
    rf"|\b(?:the\s+)?(?:end|last|final)\s+(?:frame|picture|image|photo)\s+is\s+{_WHICH}{_PICTURE}\b"
)
LOOP_OFF_RE = re.compile(
    r"\b(?:no|not\s+an?|without\s+(?:an?|the)|stop\s+the|turn\s+off\s+the|remove\s+the|drop\s+the|forget\s+the)"
    r"\s+(?:seamless\s+|perfect\s+)?loop(?:ing|s)?\b"
    r"|\b(?:do\s+not|stop|never)\s+(?:make\s+it\s+)?loop(?:ing)?\b|\bloop(?:ing)?\s+off\b|\bunloop\b"
)
LOOP_ON_RE = re.compile(
    r"\b(?:seamless(?:ly)?|perfect(?:ly)?|endless(?:ly)?|infinite)\s+loop(?:s|ing|ed|able)?\b"
    r"|\bloop(?:s|ing|ed|able)?\b"
    r"|\b(?:end|finish)(?:s)?\s+(?:where|how)\s+it\s+(?:starts|started|began|begins)\b"
    r"|\breturn(?:s)?\s+to\s+the\s+(?:first|start(?:ing)?)\s+frame\b"
)
_COUNT = r"(\d+|" + V.alternation(w for w in V.NUMBER_WORDS if w.isalpha() and w not in ("a", "an", "zero")) \
    + r"|a\s+few|a\s+couple\s+of|a\s+couple|several|some|a\s+dozen|a\s+bunch\s+of)"  # words grouped by letter
_KINDS = r"(?:variations?|versions?|variants?|options|alternatives|takes|different\s+(?:ones|takes|versions|seeds))"
VARIATIONS_RE = re.compile(
    rf"\b{_COUNT}\s+(?:more\s+|other\s+|different\s+|random\s+|new\s+)*(?:{_KINDS}|seeds)\b"
    rf"|\b(?:give\s+me|show\s+me|make|try|render|generate)\s+(?:some\s+)?{_KINDS}\b"
)
SINGLE_RE = re.compile(
    r"\b(?:no\s+(?:more\s+)?variations|just\s+(?:one|a\s+single)(?:\s+(?:clip|video|version))?"
    r"|only\s+one\s+(?:clip|video|version)|a\s+single\s+(?:clip|video|version)|one\s+clip\s+only)\b"
)
_ORD = r"(" + V.alternation(w for w, i in V.ORDINALS.items() if 1 <= i <= MAX_VARIATIONS) + r"|[1-8])"
PICK_RE = re.compile(
    rf"\b(?:i\s+(?:like|love|prefer|want|pick|choose|will\s+take)|pick|choose|take|go\s+with|keep)\s+"
    rf"(?:the\s+|number\s+|#\s*)?{_ORD}(?:\s+(?:one|variation|version|variant|clip|video))?\b"
    rf"|\b(?:variation|version|variant)\s+(?:number\s+|#\s*)?([1-8])\b"
)
_FEW = {"a few": 4, "several": 4, "some": 4, "a couple": 2, "a couple of": 2, "a dozen": 12, "a bunch of": 6}


def read_end_and_batch(c: Clause, turn: Turn) -> None:
    """End frame, loop, variations and picking one of a batch, in this clause."""
    m = c.search(END_OFF_RE)
    if m:
        c.take(m)
        turn.add(SetEndFrame(on=False))
    m = c.search(END_ON_RE)
    if m:
        c.take(m)
        turn.add(SetEndFrame(on=True))
    m = c.search(LOOP_OFF_RE)
    if m:
        c.take(m)
        turn.add(SetLoop(on=False))
    else:
        m = c.search(LOOP_ON_RE)
        if m:
            c.take(m)
            turn.add(SetLoop(on=True))
    m = c.search(SINGLE_RE)
    if m:
        c.take(m)
        turn.add(SetVariations(count=1))
    m = c.search(VARIATIONS_RE)
    if m:
        c.take(m)
        turn.add(SetVariations(count=_count(m.group(1))))
    m = c.search(PICK_RE)
    if m:
        c.take(m)
        word = m.group(1) or m.group(2)
        turn.add(PickVariation(index=V.ORDINALS[word] if word in V.ORDINALS else int(word)))


def _count(word: str | None) -> int:
    """"4" → 4, "three" → 3, "a few" → 4; no number ("give me variations") → 4."""
    if word is None:
        return 4
    word = re.sub(r"\s+", " ", word)
    if word in _FEW:
        return _FEW[word]
    value = number_value(word)
    return max(1, min(int(value), 100)) if value is not None else 4
