"""The one small interface every video backend implements (`preview`, `wan`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

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
        image: Image.Image,
        on_event: EventListener,
        cancel: CancelToken,
        *,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> GenerationResult:
        """Render `plan` from `image` into `out_dir` (default: the media store's folder for videos).

        Emits Progress events; raises GenerationCancelled when `cancel` was set (no video is kept).
        """
        ...


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here; the message says how to fix it."""
