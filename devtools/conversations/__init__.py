"""Conversations with expected outcomes (tests and bench/ share them; bench must not import tests/).

    from devtools.conversations import CONVERSATIONS, run_case, check, failures
"""

from devtools.conversations.cases import CONVERSATIONS as CAREFUL
from devtools.conversations.cases_end_and_batch import END_AND_BATCH
from devtools.conversations.cases_held_out import HELD_OUT
from devtools.conversations.cases_long import LONG
from devtools.conversations.cases_meanings import MEANINGS
from devtools.conversations.cases_questions import QUESTIONS
from devtools.conversations.cases_references import REFERENCES
from devtools.conversations.cases_safety import SAFETY
from devtools.conversations.cases_words import WORDS
from devtools.conversations.harness import (
    ABSENT,
    GT_PREV,
    LT_PREV,
    PRESENT,
    SAME,
    SWITCH,
    C,
    Case,
    T,
    Turn,
    check,
    failures,
    flatten,
    run_case,
    value,
)

# The carefully phrased conversations first, then the real-style ones by theme (sections of issue 14).
REAL_STYLE = MEANINGS + SAFETY + QUESTIONS + REFERENCES + WORDS + HELD_OUT
REAL_STYLE += END_AND_BATCH  # end frame, loop, variations (#12 §1, §3)
CONVERSATIONS_LONG = LONG  # long videos, story, smoother, larger (#12)
CONVERSATIONS = CAREFUL + REAL_STYLE + LONG

__all__ = ["ABSENT", "CAREFUL", "CONVERSATIONS", "GT_PREV", "LT_PREV", "PRESENT", "REAL_STYLE", "SAME", "SWITCH", "C",
           "Case", "T", "Turn", "check", "failures", "flatten", "run_case", "value"]
