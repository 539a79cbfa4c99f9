"""Typos: a word the planner does not know is read as the vocabulary word one or two edits away ("slowy" →
"slowly", "watr" → "water", "zooom" → "zoom", "hiar" → "hair"), and the reply says what it read.

- Only words of at least `MIN_LENGTH` letters are corrected: one edit for words up to 7 letters, two from 8;
  a typo keeps its first letter (or swaps the first two).
- Never a real word: a word of the vocabulary, a filler word, or one of the common English words near the
  vocabulary (spelling_guard.toml: "tall" is not "tail", "fair" is not "hair") stays as it is.
- The nearest word must be clear: a tie between words of different meaning is left alone.

Candidates are found through a delete index (every vocabulary word with one or two letters deleted), so a
word costs a few dictionary look-ups whatever the vocabulary size: correcting a message is linear in its length.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache, lru_cache
from pathlib import Path

from agent import camera_words as CW
from agent import template_words as TW
from agent import vocabulary as V

MIN_LENGTH = 4
GUARD_FILE = Path(__file__).with_name("spelling_guard.toml")
_WORD = re.compile(r"[a-z]+")

# Words the planner acts on besides the vocabulary's tables.
EXTRA_WORDS = (
    "camera", "zoom", "pan", "tilt", "orbit", "dolly", "static", "still", "steady", "seconds", "second", "steps",
    "seed", "undo", "reset", "quality", "draft", "slow", "slowly", "slower", "faster", "fast", "quickly", "quicker",
    "gently", "gentle", "gentler", "subtle", "subtler", "softer", "calmer", "stronger", "stronger", "cinematic",
    "steadier", "reverse", "mirror", "left", "right", "around", "closer", "again", "different", "variation",
    "longer", "shorter", "half", "double", "twice", "tiny", "little", "more", "less", "without", "avoid",
    "remove", "keep", "stop", "freeze", "everything", "nothing", "only", "visible", "template", "prompt",
)


def _vocabulary_words() -> set[str]:
    words: set[str] = set(EXTRA_WORDS)
    tables = (V.SUBJECT_SYNONYMS, V.ACTIONS, CW.ATMOSPHERE_SYNONYMS, TW.TEMPLATE_CUES, TW.TEMPLATE_NAMES,
              V.NUMBER_WORDS, V.ORDINALS)
    phrases = (*V.SLOWER_WORDS, *V.FASTER_WORDS, *V.SLOW_WORDS, *V.FAST_WORDS, *V.MORE_WORDS, *V.LESS_WORDS,
               *V.GENTLE_WORDS, *V.STRONG_MOTION_WORDS, *V.MILD_WORDS, *V.STRONG_WORDS, *V.SEED_NEW, *V.SEED_SAME,
               *V.UNDO_PHRASES, *V.RESET_PHRASES, *V.QUALITY_UP, *V.QUALITY_DOWN, *V.LONGER_WORDS,
               *V.SHORTER_WORDS, *CW.CAMERA_WORDS, *CW.CAMERA_MOVE_WORDS, *V.DIRECTIONS, *V.NEGATABLE_ARTIFACTS,
               *V.GENERATION_NOUNS)
    for phrase in [*phrases, *(k for table in tables for k in table)]:
        words.update(w for w in _WORD.findall(phrase) if len(w) >= 3)
    return words


@cache
def _index() -> tuple[frozenset[str], frozenset[str], dict[str, tuple[str, ...]]]:
    """(vocabulary, words never corrected, delete index: a vocabulary word with 1–2 letters deleted → words)."""
    vocabulary = frozenset(_vocabulary_words())
    guard = tomllib.loads(GUARD_FILE.read_text(encoding="utf-8"))["words"].split()
    known = vocabulary | V.FILLER | frozenset(guard)
    deletes: dict[str, set[str]] = {}
    for word in vocabulary:
        if len(word) < MIN_LENGTH:
            continue
        for d in _deletes(word, 2):
            deletes.setdefault(d, set()).add(word)
    return vocabulary, frozenset(known), {k: tuple(sorted(v)) for k, v in deletes.items()}


@cache
def _longest(vocabulary: frozenset[str]) -> int:
    return max(map(len, vocabulary))


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w)) if len(w) > 1}
        out |= frontier
    return out


def distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbours."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


def _cost(typo: str, word: str) -> float:
    """The edit distance, with the likeliest single slips a little cheaper: a letter left out ("slowy" for
    "slowly") before a letter too many ("seeed") or two letters swapped ("tial"), before a wrong letter."""
    d = distance(typo, word)
    if d != 1:
        return float(d)
    if len(word) == len(typo) + 1:
        return 0.8
    if len(word) == len(typo) - 1 or sorted(word) == sorted(typo):
        return 0.9
    return 1.0


_SUFFIXES = ("ing", "ings", "ed", "ion", "ions", "s", "er", "ers", "ly", "ness", "ment", "ments", "y")


def _plausible(typo: str, word: str) -> bool:
    """Typos keep the first letter (or swap the first two); a different ending on the same stem is another
    form of a real word ("distorting" is not "distortions")."""
    if typo[0] != word[0] and typo[:2] != word[1::-1]:
        return False
    if typo.endswith("y") and typo[:-1] in (word, word[:-1]) and word[-1:] in ("", "e", typo[-2]):
        return False  # "wavy", "shaky", "watery": adjectives of the word, not typos of it
    stem = 0
    while stem < min(len(typo), len(word)) and typo[stem] == word[stem]:
        stem += 1
    return not (stem >= 6 and typo.endswith(_SUFFIXES))


def max_edits(word: str) -> int:
    return 1 if len(word) < 8 else 2


@lru_cache(maxsize=4096)
def suggest(word: str) -> str | None:
    """The vocabulary word `word` is a typo of, or None (known word, too short, too far, or unclear)."""
    if len(word) < MIN_LENGTH or not word.isalpha():
        return None
    vocabulary, known, deletes = _index()
    limit = max_edits(word)
    if word in known or len(word) > _longest(vocabulary) + limit:
        return None  # known, or too long to be a few letters off any word (and a long word's deletes are many)
    candidates = {c for d in _deletes(word, limit) for c in deletes.get(d, ()) if _plausible(word, c)}
    scored = sorted((_cost(word, c), c) for c in candidates)
    best = [c for d, c in scored if d == scored[0][0] and d <= limit] if scored else []
    if not best:
        return None
    if len(best) > 1 and len({c[:4] for c in best}) > 1:
        return None  # a tie between different words ("cap": "camp" or "cape"?)
    return max(best, key=lambda c: (c[0] == word[0], len(c)))


def correct(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The normalised `text` with typos replaced, and the (typo, word) pairs that were replaced."""
    fixes: list[tuple[str, str]] = []

    def fix(m: re.Match[str]) -> str:
        word = m.group(0)
        found = suggest(word)
        if found is None:
            return word
        if (word, found) not in fixes:
            fixes.append((word, found))
        return found

    return re.sub(r"(?<![\w'#-])[a-z]+(?![\w'-])", fix, text), fixes


READ_AS = "I read "


def read_note(fixes: list[tuple[str, str]]) -> str:
    """What the reply says about the typos it read: "I read “slowy” as “slowly”"."""
    return READ_AS + ", ".join(f"“{typo}” as “{word}”" for typo, word in fixes)
