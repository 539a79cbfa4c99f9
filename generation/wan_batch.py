"""The Wan call's end frame and batch rules (#12 §1, §3): which `last_image` diffusers gets, which plans may share
one call, and whether an error means the batch did not fit in memory.

diffusers' `WanImageToVideoPipeline(last_image=…)` conditions the last frame as it does the first (Wan2.2 A14B
I2V: first-last-frame). The TI2V-5B pipeline (`expand_timesteps`) only conditions the first frame and text-to-
video models take no picture: for those the end frame is left out and the reply's notes say so.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from agent.plan import MotionPlan
    from generation.sampling import Sampling

log = logging.getLogger(__name__)


def check_batch(plans: list[MotionPlan]) -> None:
    """Plans that may share one call: at least one, at most 8, equal but for the seed."""
    if not plans:
        raise ValueError("plans: a batch needs at least one plan")
    if len(plans) > 8:
        raise ValueError(f"plans: a batch holds at most 8 clips, got {len(plans)}")
    first = plans[0].model_dump(exclude={"seed", "seed_policy"})
    for k, p in enumerate(plans[1:], start=2):
        if p.model_dump(exclude={"seed", "seed_policy"}) != first:
            raise ValueError(f"plans: clip {k} differs from clip 1 in more than its seed; render it on its own")


def last_image_for(plan: MotionPlan, pipe: Any, picture: Image.Image | None, end_image: Image.Image | None,
                   sampling: Sampling, *, last_image: Image.Image | None = None) -> tuple[Image.Image | None, Sampling]:
    """The `last_image` for the call and the sampling with a note when the model cannot end on a picture: a
    segment's `last_image` (`generation.segments`: a story transition's next picture, a long video's end picture
    or loop) sized to the clip, else the first picture for a loop, the end picture sized to the clip, or None."""
    from generation.end_frame import end_picture, fit_to

    if last_image is None and not plan.loop and plan.end_image is None:
        return None, sampling
    what = ("the picture this segment ends on" if last_image is not None
            else "a seamless loop" if plan.loop else "the end picture")
    why = None
    if picture is None:
        why = "it renders from words alone"
    elif getattr(pipe.config, "expand_timesteps", False) or "last_image" not in _call_parameters(pipe):
        why = f"{type(pipe).__name__} conditions the first frame only"
    if why is not None:
        note = f"this model cannot end on a picture ({why}): {what} was left out"
        log.warning("wan: %s", note)
        return None, replace(sampling, notes=sampling.notes + (note,))
    if last_image is not None:
        return fit_to(last_image, picture.size), sampling
    return end_picture(plan, picture, end_image), sampling


def _call_parameters(pipe: Any) -> set[str]:
    import inspect

    return set(inspect.signature(type(pipe).__call__).parameters)


def is_out_of_memory(e: BaseException) -> bool:
    """True for torch's out-of-memory errors (CUDA, MPS, or the CPU allocator)."""
    name = type(e).__name__
    return name == "OutOfMemoryError" or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())
