"""The LLM planner: any chat model transformers loads turns a message into a JSON list of edits.

The answer is constrained to the edit grammar (agent.llm.grammar), so even a random model writes
schema-valid edits; they are validated again by `parse_edits` and by applying them to a copy of the plan,
and (by default) only the edits whose target the message names are kept (agent.llm.grounding).
Failures are ordinary results (`LLMOutput.status`), not exceptions.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from agent.compiler import default_plan
from agent.edit_sets import collapse, contradictions
from agent.edits import SESSION_OPS, EditError, ParseResult, apply, edits_to_json, parse_edits
from agent.llm.config import LLMConfig, LLMConfigError
from agent.llm.decoding import GenerationTimeout, generate_constrained, prefill, run_with_deadline
from agent.llm.enhance import EnhanceOutput, rewrite
from agent.llm.grammar import edit_list_pattern
from agent.llm.grounding import is_grounded
from agent.llm.loading import Loader, LLMUnavailable, acquire, is_current, load_model_and_tokenizer, unload_all
from agent.llm.prompts import build_messages
from agent.plan import PlanError
from agent.rules import questions_only
from agent.templates import DEFAULT_TEMPLATE

if TYPE_CHECKING:
    from agent.edits import Edit
    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

Status = Literal["ok", "disabled", "unavailable", "timeout", "busy", "invalid", "error"]

FALLBACK_WHY: dict[str, str] = {
    "disabled": "the language model is switched off",
    "unavailable": "the language model could not be loaded",
    "timeout": "the language model took too long",
    "busy": "the language model was still busy",
    "invalid": "the language model's answer did not fit the plan",
    "error": "the language model failed",
}


@dataclass(frozen=True)
class LLMOutput:
    """What the model made of one message: `ok` with edits, or why not (`status`, `message`)."""

    status: Status
    edits: list[Edit] = field(default_factory=list)
    text: str = ""  # the raw answer
    message: str = ""  # what went wrong, for logs and notes
    dropped: list[Edit] = field(default_factory=list)  # edits left out (not grounded in the message)
    elapsed_s: float = 0.0  # decoding only
    load_s: float = 0.0  # loading the model and prefilling its fixed prompt, when this call did that (else ~0)
    new_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        why = FALLBACK_WHY.get(self.status, "the language model failed")
        return f"{why} ({self.message})" if self.message else why

    def fallback_note(self) -> str:
        text = self.reason()
        return f"{text[0].upper()}{text[1:]}, so I used the rule planner."


def as_a_set(edits: Sequence[Edit]) -> tuple[list[Edit], list[Edit]]:
    """(kept, refused): exact repeats collapse (three identical 0.6× slowdowns are one), and both edits of a
    contradictory pair (zoom in, then zoom out) are refused."""
    edits = collapse(edits)
    refused = {k for pair in contradictions(edits) for k in pair}
    return [e for k, e in enumerate(edits) if k not in refused], [e for k, e in enumerate(edits) if k in refused]


def check_on_plan(plan: MotionPlan | None, edits: Sequence[Edit]) -> None:
    """Apply the plan-level edits to a copy of the plan; raises PlanError/EditError/ValueError when they fail."""
    if plan is None:
        chosen = next((e.template for e in edits if e.op == "set_template"), None)  # type: ignore[union-attr]
        plan = default_plan(chosen or DEFAULT_TEMPLATE, seed=0)
    plan_edits = [e for e in edits if e.op not in SESSION_OPS]
    if plan_edits:
        apply(plan, plan_edits, rng=random.Random(0))


class LLMPlanner:
    """The LLM planner: message → constrained JSON edits. Loads on first use; `unload()` frees it."""

    name = "llm"

    def __init__(self, config: LLMConfig | None = None, *, loader: Loader | None = None):
        self.config = config if config is not None else LLMConfig.from_env()
        self.loader = loader or load_model_and_tokenizer

    # -- loading --

    def load(self) -> float:
        """Load now and prefill the fixed prompt (otherwise the first message does); the seconds it took.
        Raises LLMUnavailable."""
        if not self.config.available:
            raise LLMUnavailable("no LLM configured" if self.config.enabled else "the LLM planner is switched off")
        started = time.monotonic()
        loaded = acquire(self.config, self.loader)
        prefill(loaded, build_messages("", None, config=self.config), edit_list_pattern(self.config.grammar))
        return time.monotonic() - started

    @property
    def is_loaded(self) -> bool:
        return is_current(self.config, self.loader)

    def unload(self) -> bool:
        return unload_all() if self.is_loaded else False

    # -- planning --

    def propose(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),
        template_locked: bool = False,
    ) -> LLMOutput:
        """The model's edits for `message` as a result value (never raises for model trouble)."""
        started = time.monotonic()
        cfg = self.config
        if not cfg.enabled:
            return LLMOutput("disabled", message="VIVIDFLOW_LLM_ENABLED is off")
        if cfg.model is None:
            return LLMOutput("unavailable", message="no model configured (VIVIDFLOW_LLM_MODEL / --model)")
        pattern = edit_list_pattern(cfg.grammar, template_locked=template_locked)
        messages = build_messages(message, plan, history=history, template_locked=template_locked, config=cfg)
        try:
            # 1. Load, and prefill what every call reuses (the fixed prompt, the grammar): not on the clock
            loaded = acquire(cfg, self.loader)
            prefill(loaded, messages, pattern)
        except (LLMUnavailable, LLMConfigError, ImportError) as e:
            log.warning("LLM planner unavailable: %s", e)
            return LLMOutput("unavailable", message=str(e), elapsed_s=time.monotonic() - started)
        except Exception as e:  # a model that fails while prefilling fails the same way later: use the rules
            log.exception("LLM planner prefill failed")
            return LLMOutput("error", message=f"{type(e).__name__}: {e}", elapsed_s=time.monotonic() - started)
        load_s = time.monotonic() - started
        # 2. Decode against the deadline: the timeout counts only this
        started = time.monotonic()
        deadline = started + cfg.timeout_s
        cancel = threading.Event()

        def run() -> tuple[str, int, bool]:
            return generate_constrained(loaded, messages, pattern, max_new_tokens=cfg.max_new_tokens,
                                        deadline=deadline, cancel=cancel, seed=cfg.seed,
                                        temperature=cfg.temperature)

        try:
            text, n_tokens, complete = run_with_deadline(run, loaded, deadline, cancel)
        except GenerationTimeout as e:
            status = str(e)
            why = f"no answer within {cfg.timeout_s:g} s" if status == "timeout" else "another request held the model"
            log.warning("LLM planner %s: %s", status, why)
            return LLMOutput(status, message=why, elapsed_s=time.monotonic() - started,  # type: ignore[arg-type]
                             load_s=load_s)
        except Exception as e:  # the model is optional: any failure of it means "use the rules"; logged with traceback
            log.exception("LLM planner generation failed")
            return LLMOutput("error", message=f"{type(e).__name__}: {e}", elapsed_s=time.monotonic() - started)
        elapsed = time.monotonic() - started
        if not complete:
            status = "timeout" if time.monotonic() >= deadline or cancel.is_set() else "invalid"
            why = f"answer cut off after {n_tokens} tokens"
            return LLMOutput(status, text=text, message=why, elapsed_s=elapsed, new_tokens=n_tokens)  # type: ignore[arg-type]
        try:
            edits = parse_edits(json.loads(text))
            check_on_plan(plan, edits)
        except (json.JSONDecodeError, EditError, PlanError, ValueError, KeyError) as e:
            log.warning("LLM planner answer rejected: %s; answer: %s", e, text)
            return LLMOutput("invalid", text=text, message=str(e), elapsed_s=elapsed, new_tokens=n_tokens)
        kept, dropped = as_a_set(edits)
        if cfg.grounded_only:
            dropped += [e for e in kept if not is_grounded(e, message)]
            kept = [e for e in kept if is_grounded(e, message)]
        if dropped:
            log.info("LLM planner: dropped edits (contradictory or not named by the message): %s",
                     edits_to_json(dropped))
        return LLMOutput("ok", kept, text=text, dropped=dropped, elapsed_s=elapsed, new_tokens=n_tokens,
                         load_s=load_s)

    def parse(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),
        template_locked: bool = False,
    ) -> ParseResult:
        """The Planner protocol: LLM only (no rules), except that a message that only asks questions (or says
        "nevermind") gets the rule planner's answers, as with every planner. A failed call leaves the whole
        message unparsed."""
        asked = questions_only(message, plan)
        if asked is not None:
            return asked
        out = self.propose(message, plan, history=history, template_locked=template_locked)
        if not out.ok:
            return ParseResult([], unparsed=[message], notes=[out.reason().capitalize() + "."], planner=self.name)
        return ParseResult(out.edits, unparsed=[] if out.edits else [message], planner=self.name)

    def enhance(self, plan: MotionPlan) -> EnhanceOutput:
        """The compiled prompt rewritten as a richer cinematic description, or the compiled one and why not."""
        return rewrite(plan, self.config, self.loader)


# The name the CLI contract uses (`--planner qwen`); the planner loads any chat model.
QwenPlanner = LLMPlanner
