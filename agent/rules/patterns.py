"""The rule planner's compiled patterns: the words of agent.vocabulary as whole-word regexes, and the
phrase patterns of durations, steps, guidance, seeds, history references, negations and templates.
Built once at import."""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent import camera_words as CW
from agent import template_words as TW
from agent import vocabulary as V


def _words(phrases: Sequence[str]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w#])" + V.alternation(phrases) + r"(?![\w])")


SUBJECT_RE = _words(tuple(V.SUBJECT_SYNONYMS))
GENERIC_RE = _words(tuple(V.GENERIC_OBJECTS))
ACTION_RE = _words(tuple(V.ACTIONS))
DIRECTION_RE = re.compile(r"^\s*(?:her\s+|his\s+|its\s+|their\s+|the\s+)?(?:head\s+|eyes\s+|gaze\s+)?"
                          + V.alternation(V.DIRECTIONS) + r"\b")
ATMOSPHERE_RE = _words(tuple(CW.ATMOSPHERE_SYNONYMS))
MILD_RE = _words(V.MILD_WORDS)
STRONG_RE = _words(V.STRONG_WORDS)
SLOWER_RE = _words(V.SLOWER_WORDS)
FASTER_RE = _words(V.FASTER_WORDS)
SLOW_RE = _words(V.SLOW_WORDS)
FAST_RE = _words(V.FAST_WORDS)
MORE_RE = _words(V.MORE_WORDS)
LESS_RE = _words(V.LESS_WORDS)
GENTLE_RE = _words(V.GENTLE_WORDS)
STRONGLY_RE = _words(V.STRONG_MOTION_WORDS)
_NUM = r"(\d+(?:\.\d+)?)"
TIMES_RE = re.compile(
   r"\b(?:" + V.alternation(V.TIMES_WORDS) + r"|" + _NUM + r"\s*(?:x|times))\s+(?:as\s+)?"
   r"(fast|faster|quick|quicker|slow|slower|the\s+speed|speed)\b"
)
HALF_SPEED_RE = re.compile(r"\bhalf\s+(?:the\s+)?speed\b|\bhalf\s+as\s+fast\b")
DOUBLE_SPEED_RE = re.compile(r"\bdouble\s+(?:the\s+)?speed\b")
CAMERA_WORD_RE = _words(CW.CAMERA_WORDS)
CAMERA_PATTERNS = tuple((re.compile(p), move, needs) for p, move, needs in CW.CAMERA_PATTERNS)
# any of the camera patterns: one search tells whether the 32 need trying at all
ANY_CAMERA_PATTERN_RE = re.compile("|".join(f"(?:{p})" for p, _, _ in CW.CAMERA_PATTERNS))
CAMERA_FAMILY_RE = _words(tuple(CW.CAMERA_FAMILY))

_NUMBER_WORD = V.alternation(k for k in V.NUMBER_WORDS if k not in ("a", "an"))
_ANY_NUMBER = r"(\d+(?:\.\d+)?|" + _NUMBER_WORD + r"|a|an)"
DURATION_DELTA_RE = re.compile(
   _ANY_NUMBER + r"(?:\s+and_a_half)?\s*(?:s|sec|secs|second|seconds)\s+(longer|shorter|more|less)\b"
)
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)[\s-]*(?:s|sec|secs|second|seconds)\b"
                         r"|\b(?:duration|length|clip\s+length|runtime)\s*(?:to|of|=|:|at|is)?\s*(\d+(?:\.\d+)?)\b")
DURATION_WORDS_RE = re.compile(r"\b(" + _NUMBER_WORD + r")(\s+and_a_half)?\s+(?:second|seconds|secs)\b")
HALF_SECOND_RE = re.compile(r"\b(?:half\s+a\s+second|a\s+half\s+second|half\s+second)\b")
ONE_AND_HALF_RE = re.compile(r"\ba\s+second\s+and_a_half\b")
A_SECOND_RE = re.compile(r"\b(?:a|one)\s+second\b(?!\s+(?:" + "|".join(V.GENERATION_NOUNS) + r"|longer|shorter)\b)")
MINUTES_RE = re.compile(_ANY_NUMBER + r"\s*(?:min|mins|minute|minutes)\b")
FRAMES_RE = re.compile(r"\b(\d+)\s*frames\b")
LONGER_RE = _words(V.LONGER_WORDS)
SHORTER_RE = _words(V.SHORTER_WORDS)
LONGEST_RE = _words(V.LONGEST_WORDS)
SHORTEST_RE = _words(V.SHORTEST_WORDS)

STEPS_RE = re.compile(r"\b(\d+|" + _NUMBER_WORD + r")\s*(?:inference\s+|sampling\s+|denoising\s+)?steps?\b"
                      r"|\bsteps?\s*(?:to|=|:|at|of)\s*(\d+)\b")
QUALITY_UP_RE = _words(V.QUALITY_UP)
QUALITY_MAX_RE = _words(V.QUALITY_MAX)
QUALITY_DOWN_RE = _words(V.QUALITY_DOWN)
QUALITY_MIN_RE = _words(V.QUALITY_MIN)

GUIDANCE_BEFORE_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:guidance|cfg)\b")
GUIDANCE_RE = re.compile(
   r"\b(?:(high|low)[- ]noise\s+)?(?:guidance|cfg)(?:\s+scales?)?\s*(?:to|of|at|=|:|is)?\s*" + _NUM
   + r"(?:\s*(?:and|/|,)\s*" + _NUM + r")?"
)
GUIDANCE_MORE_RE = re.compile(r"\b(?:more|stronger|higher|increase(?:\s+the)?)\s+(?:guidance|cfg)\b"
                              r"|\bfollow\s+the\s+prompt\s+more\b")
GUIDANCE_LESS_RE = re.compile(r"\b(?:less|weaker|lower|decrease(?:\s+the)?)\s+(?:guidance|cfg)\b")
GUIDANCE_OFF_RE = re.compile(r"\b(?:no|disable|turn\s+off(?:\s+the)?|without)\s+(?:guidance|cfg)\b")

SEED_VALUE_RE = re.compile(r"\bseed\s*(?:=|:|#|to|of|number|no)?\s*(\d+)\b")
SEED_SAME_RE = _words(V.SEED_SAME)
SEED_NEW_RE = _words(V.SEED_NEW)

UNDO_RE = re.compile(r"(?<![\w])" + V.alternation(p for p in V.UNDO_PHRASES if p != "go back")
                     + r"(?![\w])|\bgo\s+back\b(?!\s+to\b)|\bgo\s+back\s+to\s+(?:the\s+)?(?:previous|last|old)\s+"
                       r"(?:plan|settings?|state)\b")
RESET_RE = _words(V.RESET_PHRASES)

_ORDINAL = V.alternation(V.ORDINALS)
_GEN_NOUN = V.alternation(V.GENERATION_NOUNS)
RECALL_ID_RE = re.compile(r"(?<!seed\s)(?<!seed)#\s*(\d+)\b|\b(?:generation|video|clip|take|render|number)\s+#?\s*(\d+)\b(?!\s*(?:s|sec|secs|seconds|steps?)\b)")
RECALL_ORDINAL_RE = re.compile(r"(?<!\d\s)(?<![\d-])\b(?:the\s+)?(" + _ORDINAL + r")\s+(?:" + _GEN_NOUN + r")\b"
                               r"|\b(?:rerun|re-run|redo|repeat|back\s+to|same\s+as|like)\s+the\s+(" + _ORDINAL + r")\b"
                               r"|\bthe\s+one\s+before\s+(?:the\s+)?last\b")
RECALL_QUERY_RE = re.compile(
   r"\b(?:go\s+back\s+to|back\s+to|return\s+to|same\s+as|like|rerun|re-run|redo|repeat)\s+(?:the\s+|my\s+|that\s+)?"
   r"((?:[a-z][\w-]*\s+){1,3}?)(?:" + _GEN_NOUN + r")\b"
   r"|\bthe\s+one(?:_with|\s+of|\s+where)\s+(?:the\s+|a\s+|an\s+)?([a-z][\w-]*(?:\s+[a-z][\w-]*)?)"
)
RERUN_RE = re.compile(r"\b(?:rerun|re-run|render\s+(?:it\s+)?again|run\s+it\s+again|redo\s+it)\b")


def _phrase_re(template: str, terms: Sequence[str]) -> re.Pattern[str]:
    return re.compile(template.replace("{x}", "(" + V.alternation(terms) + ")"))


_NEGATABLE = tuple(V.SUBJECT_SYNONYMS) + tuple(CW.ATMOSPHERE_SYNONYMS) + ("light",)
NEGATION_RES = tuple(_phrase_re(p, _NEGATABLE) for p in V.NEGATION_PATTERNS)
NEGATED_ACTION_RE = re.compile(r"\b(?:no(?:\s+more)?|stop(?:\s+the)?|without(?:\s+any)?|(?:do\s+not|never)"
                               r"(?:\s+let\s+(?:her|him|it|them))?)\s+("
                               + V.alternation(k for k, (a, _) in V.ACTIONS.items() if a != "move") + r")\b")
ONLY_RE = _phrase_re(r"\b(?:only|just)\s+(?:the\s+|her\s+|his\s+|its\s+|their\s+)?{x}\b"
                     r"|\b{x}\s+only\b|\bnothing\s+(?:else\s+)?(?:but|except)\s+(?:the\s+)?{x}\b",
                     tuple(V.SUBJECT_SYNONYMS))
FREEZE_ALL_RE = re.compile(r"\b(?:everything|all)\s+(?:still|static|frozen)\b|\bfreeze\s+everything\b"
                           r"|\bnothing\s+(?:should\s+)?moves?\b|\bno\s+(?:motion|movement)\s+at\s+all\b"
                           r"|\bstop\s+all\s+(?:the\s+)?(?:motion|movement)\b")
ARTIFACT_RE = _phrase_re(r"\b(?:no|without|remove|get\s+rid\s+of)\s+(?:any\s+|the\s+|all\s+)?{x}\b",
                         V.NEGATABLE_ARTIFACTS)
ARTIFACT_MORE_RE = _phrase_re(r"\s*(?:,|or|nor|and)\s+(?:no\s+|any\s+)?{x}\b", V.NEGATABLE_ARTIFACTS)
# "no text, logos or watermarks": one clause, so every term keeps its "no"
ARTIFACT_LIST_RE = _phrase_re(r"\b(?:no|without|avoid|remove|exclude)\s+(?:any\s+)?{x}"
                              r"(?:(?:\s*,\s*|\s+)(?:and\s+|or\s+|nor\s+)?(?:no\s+)?{x}\b)+", V.NEGATABLE_ARTIFACTS)
AVOID_RE = re.compile(r"\b(?:avoid|exclude|negative(?:\s+prompt)?\s*:?)\s+(?:any\s+|the\s+)?([a-z][a-z -]{1,38})")
TEMPLATE_NAME_RE = _words(tuple(TW.TEMPLATE_NAMES))
TEMPLATE_NAMED_RE = re.compile(r"(?<![\w])(" + V.alternation(TW.TEMPLATE_NAMES) + r")\s+"
                               r"(?:template|style|mode|preset|category|look)\b")
CUE_RE = _words(tuple(TW.TEMPLATE_CUES))
CONTINUATION_RE = _words(V.CONTINUATION_WORDS)
PRONOUN_RE = _words(("it", "them", "they", "those", "that", "these", "this", "him", "her"))
MOTION_WORD_RE = re.compile(r"\s*(?:from\s+)?(" + V.alternation(tuple(V.ACTIONS) + ("movement", "motion", "movements",
                                                                                 "animation", "moving")) + r")\b")
MODIFIER_LEFT_RE = _words(V.SLOWER_WORDS + V.FASTER_WORDS + V.SLOW_WORDS + V.FAST_WORDS + V.MORE_WORDS
                          + V.LESS_WORDS + V.GENTLE_WORDS + V.STRONG_MOTION_WORDS)

# (pattern, kind, value by degree, direction): the pace and strength words a clause may say
Graded = tuple[tuple[re.Pattern[str], str, dict[str, float], int], ...]
PACE_WORDS: Graded = ((SLOWER_RE, "comparative", V.SPEED_DOWN, -1), (FASTER_RE, "comparative", V.SPEED_UP, 1),
                       (SLOW_RE, "absolute", V.SLOW_PACE, -1), (FAST_RE, "absolute", V.FAST_PACE, 1))
TINY_RE = _words(V.TINY_WORDS)
STRENGTH_WORDS: Graded = ((TINY_RE, "absolute", V.TINY_INTENSITY, -1), (LESS_RE, "comparative", V.INTENSITY_DOWN, -1),
                           (MORE_RE, "comparative", V.INTENSITY_UP, 1),
                           (GENTLE_RE, "absolute", V.GENTLE_INTENSITY, -1),
                           (STRONGLY_RE, "absolute", V.STRONG_INTENSITY, 1))
