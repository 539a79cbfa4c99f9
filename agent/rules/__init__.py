"""The rule planner: text → edits, deterministically, with no model (see agent.rules.planner)."""

from agent.rules.planner import RulePlanner, choose_template, parse, template_for

__all__ = ["RulePlanner", "choose_template", "parse", "template_for"]
