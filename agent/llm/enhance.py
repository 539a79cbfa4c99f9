"""Prompt enhancement: the compiled prompt rewritten by the LLM into a richer cinematic one, kept only when it
still names every subject, motion and camera move of the plan; otherwise the compiled prompt, and why.

`enhance_prompt(plan)` is the entry point (the studio's "enhance" button); `LLMPlanner.enhance` gives the
whole result.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from agent.compiler import compile_prompt
from agent.llm.config import LLMConfig, LLMConfigError
from agent.llm.decoding import GenerationTimeout, generate_constrained, run_with_deadline
from agent.llm.grammar import Pattern
from agent.llm.grounding import content_words, mentions_any, subject_words, tokens
from agent.llm.loading import Loader, LLMUnavailable, acquire, load_model_and_tokenizer

if TYPE_CHECKING:
    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

# Words of each camera move in a rewritten prompt (stems: "circl" is circle, circles, circling).
CAMERA_KEYWORDS: dict[str, tuple[str, ...]] = {
    "zoom_in": ("zoom", "push"), "zoom_out": ("zoom", "pull"), "pan_left": ("pan",), "pan_right": ("pan",),
    "tilt_up": ("tilt",), "tilt_down": ("tilt",), "orbit_left": ("orbit", "circl"), "orbit_right": ("orbit", "circl"),
    "dolly_in": ("dolly", "push"), "dolly_out": ("dolly", "pull"),
}


@dataclass(frozen=True)
class EnhanceOutput:
    """A rewritten prompt (`ok`), or the compiled prompt and why the rewrite was not used."""

    ok: bool
    prompt: str
    message: str = ""
    text: str = ""  # the raw answer


class Enhancer(Protocol):
    def enhance(self, plan: MotionPlan) -> EnhanceOutput: ...


def enhance_prompt(plan: MotionPlan, *, planner: Enhancer | None = None) -> str:
    """The plan's prompt rewritten richer by the LLM, or the compiled prompt when that fails or is off.

    Without `planner`, the LLM configured in the environment (VIVIDFLOW_LLM_*).
    """
    if planner is not None:
        return planner.enhance(plan).prompt
    return rewrite(plan, LLMConfig.from_env(), load_model_and_tokenizer).prompt


def rewrite(plan: MotionPlan, config: LLMConfig, loader: Loader) -> EnhanceOutput:
    """The compiled prompt rewritten as a richer cinematic description, or the compiled one and why not."""
    compiled = compile_prompt(plan)
    if plan.prompt_override:
        return EnhanceOutput(False, compiled, "the prompt was typed by the person; kept as written")
    if not config.available:
        return EnhanceOutput(False, compiled, "no LLM configured" if config.enabled else "the LLM is switched off")
    try:
        loaded = acquire(config, loader)
    except (LLMUnavailable, LLMConfigError, ImportError) as e:
        return EnhanceOutput(False, compiled, f"LLM unavailable: {e}")
    deadline = time.monotonic() + config.timeout_s
    cancel = threading.Event()
    messages = enhance_messages(plan, compiled, config.enhance_max_new_tokens)
    pattern = enhance_pattern(config.enhance_max_new_tokens)

    def run() -> tuple[str, int, bool]:
        return generate_constrained(loaded, messages, pattern, max_new_tokens=config.enhance_max_new_tokens,
                                    deadline=deadline, cancel=cancel, seed=config.seed,
                                    temperature=config.temperature)

    try:
        text, _n, _complete = run_with_deadline(run, loaded, deadline, cancel)
    except GenerationTimeout as e:
        return EnhanceOutput(False, compiled, f"LLM {e}")
    except Exception as e:  # optional component: fall back to the compiled prompt; logged with traceback
        log.exception("prompt enhancement failed")
        return EnhanceOutput(False, compiled, f"LLM error: {type(e).__name__}: {e}")
    candidate = _whole_sentences(text)
    missing = missing_elements(plan, candidate)
    if not candidate or missing:
        why = f"the rewrite lost: {', '.join(missing)}" if candidate else "the rewrite was empty"
        log.info("enhance_prompt: %s; keeping the compiled prompt", why)
        return EnhanceOutput(False, compiled, why, text=text)
    return EnhanceOutput(True, candidate, text=text)


def enhance_messages(plan: MotionPlan, compiled: str, budget_tokens: int) -> list[dict[str, str]]:
    words = max(20, int(budget_tokens * 0.6))
    must = [f"{m.subject} ({m.action})" for m in plan.motions]
    if plan.camera.move != "static":
        must.append("camera " + plan.camera.move.replace("_", " "))
    return [
        {"role": "system", "content": (
            "You write prompts for an image-to-video model. Rewrite the prompt as one vivid paragraph of at most "
            f"{words} words: camera language, lighting, and the pacing of each motion. Keep every subject and its "
            "motion. Answer with the paragraph only.")},
        {"role": "user", "content": f"Prompt: {compiled}\nMust mention: {'; '.join(must) or 'a still scene'}"},
    ]


def enhance_pattern(budget_tokens: int) -> Pattern:
    """Plain sentences: a capital letter first, no quotes or line breaks, ending in a full stop."""
    max_chars = min(1500, budget_tokens * 6)
    return Pattern(f"[A-Z][A-Za-z0-9 ,;:'-]([A-Za-z0-9 ,.;:'-]{{0,{max_chars - 3}}})?[.]", max_chars)


def _whole_sentences(text: str) -> str:
    text = " ".join(text.split())
    if not text.endswith("."):
        text = text[: text.rfind(".") + 1]
    return text.strip()


def missing_elements(plan: MotionPlan, text: str) -> list[str]:
    """Subjects, motions and the camera move of `plan` that `text` no longer names."""
    toks = tokens(text)
    missing = []
    for m in plan.motions:
        if not mentions_any(toks, subject_words(m.subject)):
            missing.append(m.subject)
        verb = next(iter(content_words([m.action])), None)
        if verb and not mentions_any(toks, (verb[:4] if len(verb) > 4 else verb,)):
            missing.append(f"{m.subject} {m.action}")
    if plan.camera.move != "static" and not mentions_any(toks, CAMERA_KEYWORDS[plan.camera.move]):
        missing.append(f"camera {plan.camera.move}")
    return missing
