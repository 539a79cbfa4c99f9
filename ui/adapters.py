"""Thin adapters over APIs the studio needs that the agent/generation packages do not offer (yet).

Each function says which request it stands for; when the owning package grows the API, the adapter
delegates to it or goes away.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.compiler import compile_plan
from agent.plan import MotionPlan

log = logging.getLogger(__name__)


def set_negative_terms(plan: MotionPlan, terms: Sequence[str]) -> MotionPlan:
    """Replace the person's negative terms (the panel's "also avoid" box).

    There is no edit value that removes a term (request: `SetNegative(terms)` in agent/edits.py), so the
    box writes the field directly and recompiles; adding terms still behaves like `AddNegative`.
    """
    clean = tuple(dict.fromkeys(t.strip() for t in terms if t.strip()))
    if clean != plan.negative_terms:
        log.info("negative terms set from the panel: %s", ", ".join(clean) or "none")
    return compile_plan(plan.with_changes(negative_terms=clean))
