"""Edit operations for long videos, story mode, smoother and larger output (#12 §2 §4 §5), and how they apply.

`agent.edits` puts them in its `Edit` union and sends them here from `apply`; they are plain edit values like the
others (the LLM grammar picks them up from their fields).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.plan import LIMITS, STORY_PICTURES, MotionPlan, Transition, Upscale

log = logging.getLogger(__name__)


class _Edit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SetOutputFps(_Edit):
    """Interpolate to `fps` frames per second on export ("smoother", "32 fps"); None: no interpolation."""

    op: Literal["set_output_fps"] = "set_output_fps"
    fps: int | None = Field(default=None, ge=LIMITS["output_fps"][0], le=LIMITS["output_fps"][1])


class SetUpscale(_Edit):
    """Upscale on export by `factor` ("twice as large") or to `height` ("in 720p"); both None: no upscaling."""

    op: Literal["set_upscale"] = "set_upscale"
    factor: float | None = Field(default=None, ge=LIMITS["upscale_factor"][0], le=LIMITS["upscale_factor"][1])
    height: int | None = Field(default=None, ge=LIMITS["upscale_height"][0], le=LIMITS["upscale_height"][1])


class SetStory(_Edit):
    """Story mode: the uploaded pictures by number (1 = first), in the order the video visits them; () ends it."""

    op: Literal["set_story"] = "set_story"
    order: tuple[Annotated[int, Field(ge=1, le=STORY_PICTURES[1])], ...] = Field(default=(), max_length=STORY_PICTURES[1])


class ScaleTransition(_Edit):
    """Story mode: transition `index` (1 = from the first picture to the second) slower (< 1) or faster (> 1)."""

    op: Literal["scale_transition"] = "scale_transition"
    index: int = Field(ge=1, le=STORY_PICTURES[1] - 1)
    factor: float = Field(gt=0, le=10.0)


STORY_NEEDS_PICTURES = ("story mode needs the pictures: upload two to six in the studio's story uploader "
                        "(CLI: --story a.png b.png …), then tell me the order")
STORY_SECONDS_PER_TRANSITION = 3.0


def apply_long(plan: MotionPlan, edit: Any, notes: list[str]) -> MotionPlan:
    """Apply one of this module's edits; notes say what was refused or adjusted."""
    if isinstance(edit, SetOutputFps):
        if edit.fps is not None and edit.fps <= plan.fps:
            notes.append(f"the video is rendered at {plan.fps} fps: {edit.fps} fps would not be smoother, so no "
                         "frames are interpolated")
            return plan.with_changes(output_fps=None)
        return plan.with_changes(output_fps=edit.fps)

    if isinstance(edit, SetUpscale):
        if edit.factor is None and edit.height is None:
            return plan.with_changes(upscale=None)
        if edit.factor is not None and edit.height is not None:
            notes.append(f"upscale: {edit.height}p and {edit.factor:g}× at once: kept {edit.height}p")
        up = Upscale(height=edit.height) if edit.height is not None else Upscale(factor=edit.factor)
        return plan.with_changes(upscale=up)

    if isinstance(edit, SetStory):
        if not edit.order:
            return plan.with_changes(story_images=(), transitions=())
        n = len(plan.story_images)
        if n < STORY_PICTURES[0]:
            notes.append(STORY_NEEDS_PICTURES)
            return plan
        order = list(dict.fromkeys(edit.order))
        if order == list(range(1, len(order) + 1)) and len(order) > n:  # 1, 2, 3 … past the count: all of them
            order = order[:n]
        missing = [i for i in order if i > n]
        if missing:
            notes.append(f"there are {n} pictures: picture {missing[0]} is not one of them, kept the order")
            return plan
        if len(order) < STORY_PICTURES[0]:
            notes.append("a story goes from one picture to another: name at least two")
            return plan
        images = tuple(plan.story_images[i - 1] for i in order)
        new = plan.with_changes(story_images=images, transitions=())
        return story_duration(new, notes)

    if isinstance(edit, ScaleTransition):
        count = len(plan.story_images) - 1
        if count < 1:
            notes.append(STORY_NEEDS_PICTURES)
            return plan
        if edit.index > count:
            notes.append(f"there are {count} transitions (between {count + 1} pictures): there is no transition "
                         f"{edit.index}")
            return plan
        transitions = list(plan.transitions or [Transition()] * count)
        t = transitions[edit.index - 1]
        pace = round(t.pace * edit.factor, 3)
        lo, hi = LIMITS["transition_pace"]
        if not lo <= pace <= hi:
            pace = min(max(pace, lo), hi)
            notes.append(f"transition {edit.index} is at its {'slowest' if pace == lo else 'fastest'}: pace {pace:g}×")
            log.info("clamped transition %d pace to %g", edit.index, pace)
        transitions[edit.index - 1] = t.model_copy(update={"pace": pace})
        return plan.with_changes(transitions=tuple(transitions))

    raise ValueError(f"unknown edit {edit!r}")


def story_duration(plan: MotionPlan, notes: list[str]) -> MotionPlan:
    """A story shorter than 2 s per transition gets 3 s per transition (up to 30 s), and says so."""
    count = len(plan.story_images) - 1
    if plan.duration_s >= 2.0 * count:
        return plan
    seconds = min(STORY_SECONDS_PER_TRANSITION * count, LIMITS["duration_s"][1])
    notes.append(f"a story of {count + 1} pictures: {seconds:g} s ({seconds / count:g} s per transition)")
    return plan.with_changes(duration_s=seconds)
