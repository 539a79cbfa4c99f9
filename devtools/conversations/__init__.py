"""Conversations with expected outcomes (tests and bench/ share them; bench must not import tests/).

    from devtools.conversations import CONVERSATIONS, run_case, check, failures
"""

from devtools.conversations.cases import CONVERSATIONS
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

__all__ = ["ABSENT", "CONVERSATIONS", "GT_PREV", "LT_PREV", "PRESENT", "SAME", "SWITCH", "C", "Case", "T", "Turn",
           "check", "failures", "flatten", "run_case", "value"]
