"""agent: chat turns become MotionPlan edits. Light to import: no torch, no transformers.

    from agent import new_conversation, plan_turn
    state = new_conversation()
    state, reply = plan_turn(state, "make her hair flow in the wind, slow zoom in")
    state.plan.prompt, reply.text, reply.diff
"""

from agent.edits import ParseResult, Planner, apply
from agent.plan import Camera, Motion, MotionPlan, PlanError, frames_for
from agent.rules import RulePlanner
from agent.history import GenerationRef
from agent.replies import FieldChange, Reply, plan_diff
from agent.session import MAX_MESSAGE_CHARS, ConversationState, MessageTooLong, new_conversation, plan_turn

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
]
