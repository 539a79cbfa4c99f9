"""The rule planner: text → edits, deterministically, with no model (see agent.rules.planner)."""

from agent.rules.planner import RulePlanner, parse, questions_only
from agent.rules.template_choice import choose_template, template_for

__all__ = ["RulePlanner", "choose_template", "parse", "questions_only", "template_for"]
