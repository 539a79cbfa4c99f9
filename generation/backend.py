"""The one small interface every video backend implements (`preview`, `wan`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

from vividflow.errors import VividflowError

if TYPE_CHECKING:
    from PIL import Image

    from agent.plan import MotionPlan
    from generation.events import CancelToken, EventListener, GenerationResult


class Backend(Protocol):
    name: str

    def load(self, cfg: Any) -> None:
        """Load weights (once per process); a no-op for backends without weights."""

    def generate(
        self,
        plan: MotionPlan,
        image: Image.Image | None,
        on_event: EventListener,
        cancel: CancelToken,
        *,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> GenerationResult:
        """Render `plan` from `image` (None: from the words alone) into `out_dir` (default: the media store's
        folder for videos).

        Emits Progress events; raises GenerationCancelled when `cancel` was set (no video is kept), and
        PictureRequired when it was given no picture and cannot start from words alone.
        """
        ...


class BackendUnavailable(VividflowError, RuntimeError):
    """A backend that cannot run here; the message says how to fix it."""


class PictureRequired(VividflowError, ValueError):
    """A backend or model that animates a picture was given none; the message says what to do instead."""


PREVIEW_NEEDS_PICTURE = "the preview animates a picture: upload one, or use a text-to-video model"


def model_needs_picture(model: str) -> str:
    """The sentence for an image-to-video model given no picture."""
    return (f"{model} animates a picture: upload one, or use a text-to-video model (VIVIDFLOW_WAN_MODEL="
            "Wan-AI/Wan2.2-TI2V-5B-Diffusers or Wan-AI/Wan2.2-T2V-A14B-Diffusers)")
