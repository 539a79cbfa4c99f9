"""Thin adapters over APIs the studio needs that the agent/generation packages do not offer (yet).

Each function here says which request it stands for; when the owning package grows the API, the
adapter delegates to it or goes away.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from agent.compiler import compile_plan
from agent.edits import (
    AddAtmosphere,
    AddMotion,
    AddNegative,
    RemoveAtmosphere,
    RemoveMotion,
    ScaleCamera,
    ScaleMotion,
    SetCamera,
    SetDuration,
    SetGuidance,
    SetPrompt,
    SetSeed,
    SetSteps,
    SetTemplate,
)
from agent.plan import LIMITS, MAX_SEED, Motion, MotionPlan, clamp

log = logging.getLogger(__name__)


def apply_plan_edits(plan: MotionPlan, edits: Sequence[Any], rng: random.Random | None = None) -> MotionPlan:
    """Apply plan-level edits (the panel's) and compile the prompts.

    Stands in for `agent.edits.apply` / `agent.session` until they exist; the semantics follow the
    issue-3 contract (a change touches only what it names; out-of-range values are clamped and logged).
    """
    rng = rng or random.Random()
    for e in edits:
        plan = _apply_one(plan, e, rng)
    return compile_plan(plan)


def _apply_one(plan: MotionPlan, e: Any, rng: random.Random) -> MotionPlan:
    if isinstance(e, SetTemplate):
        return plan.with_changes(template=e.template)
    if isinstance(e, AddMotion):
        new = Motion(subject=e.subject, action=e.action, speed=e.speed, intensity=e.intensity)
        motions = [new if m.subject == e.subject else m for m in plan.motions]
        if plan.motion(e.subject) is None:
            motions.append(new)
        return plan.with_changes(motions=tuple(motions))
    if isinstance(e, RemoveMotion):
        return plan.with_changes(motions=tuple(m for m in plan.motions if m.subject != e.subject))
    if isinstance(e, ScaleMotion):
        motions = tuple(
            m.model_copy(
                update={
                    "speed": clamp("speed", m.speed * e.speed_factor),
                    "intensity": clamp("intensity", m.intensity * e.intensity_factor),
                }
            )
            if e.subject in ("all", m.subject)
            else m
            for m in plan.motions
        )
        return plan.with_changes(motions=motions)
    if isinstance(e, SetCamera):
        speed = plan.camera.speed if e.speed is None else e.speed
        return plan.with_changes(camera={"move": e.move, "speed": speed})
    if isinstance(e, ScaleCamera):
        return plan.with_changes(camera={"move": plan.camera.move, "speed": clamp("speed", plan.camera.speed * e.factor)})
    if isinstance(e, SetDuration):
        value = clamp("duration_s", e.seconds)
        if value != e.seconds:
            log.info("duration %.2f s clamped to %.2f s (allowed %s)", e.seconds, value, LIMITS["duration_s"])
        return plan.with_changes(duration_s=value)
    if isinstance(e, SetSteps):
        value = int(clamp("steps", e.steps))
        if value != e.steps:
            log.info("steps %d clamped to %d (allowed %s)", e.steps, value, LIMITS["steps"])
        return plan.with_changes(steps=value)
    if isinstance(e, SetGuidance):
        changes: dict[str, float] = {}
        if e.high is not None:
            changes["guidance_scale"] = e.high
        if e.low is not None:
            changes["guidance_scale_2"] = e.low
        return plan.with_changes(**changes)
    if isinstance(e, SetSeed):
        if e.policy == "new":
            seed = plan.seed
            while seed == plan.seed:
                seed = rng.randint(0, MAX_SEED)
            return plan.with_changes(seed=seed, seed_policy="new")
        if e.policy == "explicit" and e.value is not None:
            return plan.with_changes(seed=e.value, seed_policy="explicit")
        return plan.with_changes(seed_policy="same")
    if isinstance(e, AddNegative):
        terms = list(plan.negative_terms) + [t for t in e.terms if t not in plan.negative_terms]
        return plan.with_changes(negative_terms=tuple(terms))
    if isinstance(e, AddAtmosphere):
        items = list(plan.atmosphere) + [t for t in e.items if t not in plan.atmosphere]
        return plan.with_changes(atmosphere=tuple(items))
    if isinstance(e, RemoveAtmosphere):
        return plan.with_changes(atmosphere=tuple(a for a in plan.atmosphere if a not in e.items))
    if isinstance(e, SetPrompt):
        return plan.with_changes(prompt_override=e.text or None)
    raise TypeError(f"the plan panel cannot apply a {type(e).__name__} edit here (session-level)")


def set_negative_terms(plan: MotionPlan, terms: Sequence[str]) -> MotionPlan:
    """Replace the person's negative terms. There is no edit value that removes a term (request:
    `SetNegative(terms)` in agent/edits.py), so the panel's text box writes the field directly."""
    clean = tuple(dict.fromkeys(t.strip() for t in terms if t.strip()))
    return compile_plan(plan.with_changes(negative_terms=clean))
