"""agent: chat turns become MotionPlan edits. Light to import: no torch, no transformers.

    from agent import new_conversation, plan_turn
    state = new_conversation()
    state, reply = plan_turn(state, "make her hair flow in the wind, slow zoom in")
    state.plan.prompt, reply.text, reply.diff
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.edits import ParseResult, Planner, apply
    from agent.history import GenerationRef
    from agent.plan import Camera, Motion, MotionPlan, PlanError, frames_for, segment_lengths
    from agent.replies import FieldChange, Reply, plan_diff
    from agent.rules import RulePlanner
    from agent.session import MAX_MESSAGE_CHARS, ConversationState, MessageTooLong, new_conversation, plan_turn

# name -> the module that defines it. Imported on first use (PEP 562), so `from agent.plan import MotionPlan`
# (the renderers and the CLI) does not compile the rule planner's hundreds of patterns.
_WHERE = {
    "ParseResult": "agent.edits", "Planner": "agent.edits", "apply": "agent.edits",
    "Camera": "agent.plan", "Motion": "agent.plan", "MotionPlan": "agent.plan", "PlanError": "agent.plan",
    "frames_for": "agent.plan", "segment_lengths": "agent.plan", "RulePlanner": "agent.rules", "GenerationRef": "agent.history",
    "FieldChange": "agent.replies", "Reply": "agent.replies", "plan_diff": "agent.replies",
    "ConversationState": "agent.session", "new_conversation": "agent.session", "plan_turn": "agent.session",
    "MAX_MESSAGE_CHARS": "agent.session", "MessageTooLong": "agent.session",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "MAX_MESSAGE_CHARS",
    "Camera",
    "ConversationState",
    "FieldChange",
    "GenerationRef",
    "MessageTooLong",
    "Motion",
    "MotionPlan",
    "ParseResult",
    "PlanError",
    "Planner",
    "Reply",
    "RulePlanner",
    "apply",
    "frames_for",
    "new_conversation",
    "plan_diff",
    "plan_turn",
    "segment_lengths",
]
