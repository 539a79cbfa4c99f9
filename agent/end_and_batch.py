"""End frame, seamless loop and variations (#12 §1, §3): their edit operations, how they change a plan, and
the plans of a batch.

    SetEndFrame(on=True)   "end on this picture": the plan ends on the end picture the person uploaded
    SetLoop(on=True)       "make it loop": the clip ends where it starts (first frame = last frame)
    SetVariations(count=4) "give me 4 variations": one batch of 4 clips with different seeds
    PickVariation(index=3) "I like the third one": the third clip of the last batch becomes the plan (session)

The edit classes live here (not in agent.edits) so the two lists stay short; agent.edits puts them in the
`Edit` union, and `apply_one` is what `agent.edits.apply` calls for them. Nothing here imports agent.edits.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.plan import LIMITS, MAX_SEED, MotionPlan

log = logging.getLogger(__name__)

MAX_VARIATIONS = int(LIMITS["variations"][1])
SEED_STRIDE = 1_000_003  # variation k's seed: seed + k × this (mod 2**31), so a batch is reproducible
NO_END_UPLOAD_NOTE = ("there is no end picture yet: upload one (the “end frame” uploader, or --end-image in the "
                      "CLI), then say “end on this picture”")


class _Edit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SetEndFrame(_Edit):
    """End on the end picture the person uploaded (`on` true), or end wherever the motion takes it (false)."""

    op: Literal["end_frame"] = "end_frame"
    on: bool = True


class SetLoop(_Edit):
    """A seamless loop (`on` true: the last frame returns to the first), or no loop."""

    op: Literal["loop"] = "loop"
    on: bool = True


class SetVariations(_Edit):
    """Render `count` clips with different seeds in one batch; more than 8 is clamped to 8 by `apply`."""

    op: Literal["variations"] = "variations"
    count: int = Field(ge=1, le=100)


class PickVariation(_Edit):
    """Take clip `index` (1-based) of the last batch as the plan to refine (session level)."""

    op: Literal["pick"] = "pick"
    index: int = Field(ge=1, le=MAX_VARIATIONS)


STORY_ENDS_NOTE = ("a story ends on its last picture, so it cannot also loop or end on the end picture: "
                   "say “no story mode” first")
OPS = frozenset({"end_frame", "loop", "variations", "pick"})
SESSION_OPS = frozenset({"pick"})


def apply_one(plan: MotionPlan, edit: SetEndFrame | SetLoop | SetVariations, *, end_upload: str | None,
              notes: list[str]) -> MotionPlan:
    """`plan` with one end-frame, loop or variations edit applied; what could not be done goes to `notes`."""
    if isinstance(edit, (SetEndFrame, SetLoop)) and edit.on and len(plan.story_images) >= 2:
        notes.append(STORY_ENDS_NOTE)  # story mode (#12 §4) ends on its last picture: plan.py refuses both
        return plan
    if isinstance(edit, SetEndFrame):
        if not edit.on:
            return plan.with_changes(end_image=None)
        if end_upload is None:
            notes.append(NO_END_UPLOAD_NOTE)
            return plan
        return plan.with_changes(end_image=end_upload, loop=False)  # the reply's diff says the loop is off
    if isinstance(edit, SetLoop):
        if not edit.on:
            return plan.with_changes(loop=False)
        return plan.with_changes(loop=True, end_image=None)  # a loop ends on the first picture
    if isinstance(edit, SetVariations):
        count = edit.count
        if count > MAX_VARIATIONS:
            notes.append(f"{count} variations is more than the {MAX_VARIATIONS} a batch can hold: "
                         f"set to {MAX_VARIATIONS}")
            log.info("clamped variations: %d → %d", count, MAX_VARIATIONS)
            count = MAX_VARIATIONS
        return plan.with_changes(variations=count)
    raise TypeError(f"not an end-frame, loop or variations edit: {edit!r}")


def variation_seed(seed: int, k: int) -> int:
    """The seed of clip k (0-based) of a batch that starts at `seed`; clip 0 keeps `seed`."""
    return (seed + k * SEED_STRIDE) % (MAX_SEED + 1)


def batch_plans(plan: MotionPlan) -> list[MotionPlan]:
    """The plans of the clips a plan asks for: `plan.variations` plans with their own seeds and
    `variations` = 1 (each is one clip, and rendering it again renders that clip only)."""
    return [plan.with_changes(seed=variation_seed(plan.seed, k), variations=1) for k in range(plan.variations)]


def end_frame_words(plan: MotionPlan, end_label: str = "") -> str:
    """What the clip ends on, in words, for the reply and the page."""
    if plan.loop:
        return "ends where it starts (a seamless loop: the last frame returns to the first)"
    if plan.end_image is not None:
        name = f" ({end_label})" if end_label else ""
        return f"ends on the end picture you uploaded{name}"
    return "ends wherever the motion takes it (no end picture)"
