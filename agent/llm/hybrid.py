"""The hybrid planner: rules first; the LLM for what rules left unparsed (or always, by setting). Unavailable,
error, timeout or invalid output: the rule result stands and the notes say the assistant fell back.

`make_planner` builds it for `--planner qwen --model PATH [--gguf-file F]`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agent.edits import MAX_EDITS_PER_TURN, EditError, ParseResult
from agent.llm.config import LLMConfig
from agent.llm.grounding import content_words, is_covered, target_key
from agent.llm.planner import LLMOutput, LLMPlanner, check_on_plan
from agent.plan import PlanError
from agent.rules import RulePlanner

if TYPE_CHECKING:
    from agent.edits import Planner
    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

LOAD_NOTE_S = 0.5  # a load (and prefill) this long is said in the reply


class HybridPlanner:
    """Rules first; the LLM for what rules left unparsed (mode fallback_only) or for every message (always).

    Whatever goes wrong on the LLM side, the rule result stands and a note says the assistant fell back.
    """

    name = "hybrid"

    def __init__(self, rules: Planner, llm: LLMPlanner | Any, config: LLMConfig | None = None):
        self.rules = rules
        self.llm = llm
        self.config = config if config is not None else getattr(llm, "config", LLMConfig.from_env())

    def parse(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),
        template_locked: bool = False,
    ) -> ParseResult:
        ruled = self.rules.parse(message, plan, history=history, template_locked=template_locked)
        always = self.config.mode == "always"
        # What the rules did not understand: their unparsed clauses, or the whole message when they made no edit.
        # A question, an off-topic request or "nevermind" the rules answered is not a task for the model.
        answered = bool(ruled.answers) or ruled.cancel or ruled.compare is not None
        if answered and not ruled.edits and not ruled.unparsed:
            return ruled  # only questions (or "nevermind"), in any mode: answered from the plan, the model not asked
        leftover = [message] if always or not (ruled.edits or answered) else list(ruled.unparsed)
        if not self.config.enabled or not content_words(leftover):
            return ruled
        text = " ".join(leftover)
        out = self._propose(text, plan, history, template_locked)
        if out.load_s >= LOAD_NOTE_S:
            ruled = replace(ruled, notes=[*ruled.notes, f"the language model loaded in {out.load_s:.1f} s (once)"])
        if not out.ok:
            return replace(ruled, notes=[*ruled.notes, out.fallback_note()])
        if always:
            first, second = out.edits, ruled.edits  # the model leads, rules fill in what it left
        else:
            first, second = ruled.edits, out.edits
        taken = {target_key(e) for e in first}
        merged = list(first) + [e for e in second if target_key(e) not in taken]
        if len(merged) > MAX_EDITS_PER_TURN:
            merged = merged[:MAX_EDITS_PER_TURN]
        try:
            check_on_plan(plan, merged)
        except (EditError, PlanError, ValueError) as e:
            log.warning("hybrid: merged edits rejected (%s); keeping the rule result", e)
            note = LLMOutput("invalid", message=str(e)).fallback_note()
            return replace(ruled, notes=[*ruled.notes, note])
        from_llm = [e for e in merged if any(e is x for x in out.edits)]
        if not from_llm:
            return ruled
        planner = "llm" if len(from_llm) == len(merged) else self.name
        # In fallback_only the model was asked exactly about what rules left, and answered it.
        unparsed = [u for u in ruled.unparsed if not is_covered(u, from_llm)]
        return ParseResult(merged, unparsed=unparsed, notes=list(ruled.notes), planner=planner, answers=ruled.answers,
                           cancel=ruled.cancel, reply_language=ruled.reply_language, compare=ruled.compare)

    def _propose(self, text: str, plan: MotionPlan | None, history: Sequence[tuple[str, str]],
                 template_locked: bool) -> LLMOutput:
        try:
            return self.llm.propose(text, plan, history=history, template_locked=template_locked)
        except Exception as e:  # an LLM failure must never break a turn: logged with traceback, rules stand
            log.exception("hybrid: the LLM planner raised")
            return LLMOutput("error", message=f"{type(e).__name__}: {e}")


def make_planner(
    model: str | None = None,
    gguf_file: str | None = None,
    *,
    hybrid: bool = True,
    rules: Planner | None = None,
    **settings: Any,
) -> HybridPlanner | LLMPlanner:
    """The planner for `--planner qwen --model PATH [--gguf-file F]`: rules + LLM (or the LLM alone).

    `settings` are LLMConfig fields (device, timeout_s, mode ...); unset ones come from the environment.
    """
    config = LLMConfig.from_env(model=model, gguf_file=gguf_file, **settings)
    llm = LLMPlanner(config)
    if not hybrid:
        return llm
    return HybridPlanner(rules if rules is not None else RulePlanner(), llm, config)
