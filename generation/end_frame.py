"""End frame and seamless loop on the render side (#12 §1): the end picture sized to the clip, the picture a
backend ends on, and the PSNR between a clip's first and last frame (the loop measurement).

    end = end_picture(plan, first, end_image)   # None: the clip ends wherever the motion takes it
    psnr(frames[0], frames[-1])                 # ≥ 35 dB for a loop
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

IDENTICAL_DB = 100.0  # the PSNR reported for two identical frames


def fit_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` as RGB at exactly `size` (width, height): centre-cropped to its aspect, then resized (Lanczos)."""
    from PIL import Image as PILImage

    from generation.image import to_rgb

    image = to_rgb(image)
    w, h = image.size
    tw, th = size
    aspect = tw / th
    bw, bh = (h * aspect, float(h)) if w / h > aspect else (float(w), w / aspect)
    x0, y0 = (w - bw) / 2, (h - bh) / 2
    if (w, h) == (tw, th):
        return image.copy()
    if abs(bw - w) + abs(bh - h) > 0.02 * max(w, h):
        log.info("end picture: cropped from %d×%d to the clip's aspect %d×%d", w, h, tw, th)
    return image.resize((tw, th), PILImage.Resampling.LANCZOS, box=(x0, y0, x0 + bw, y0 + bh))


def end_picture(plan: MotionPlan, first: Image.Image, end_image: Image.Image | None) -> Image.Image | None:
    """The picture the clip ends on at the first picture's (already preprocessed) size: the first picture itself
    for a loop, the end picture for `plan.end_image`, else None. An end picture the plan names but that was not
    given is an error with a sentence."""
    if plan.loop:
        return first
    if plan.end_image is None:
        return None
    if end_image is None:
        raise ValueError(f"the plan ends on picture {plan.end_image[:12]}… but it was not given to the renderer "
                         "(is it still in the media store?)")
    return fit_to(end_image, first.size)


def psnr(a: np.ndarray | Any, b: np.ndarray | Any) -> float:
    """Peak signal-to-noise ratio of two uint8 frames in dB (IDENTICAL_DB when they are equal)."""
    import numpy as np

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(d * d))
    return IDENTICAL_DB if mse == 0 else min(IDENTICAL_DB, 10.0 * math.log10(255.0**2 / mse))
