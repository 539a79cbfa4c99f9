"""Typed events a generation emits; the page, the CLI and the job runner are listeners.

A backend calls `on_event(event)`; it never knows who listens (FramePack's queue of tagged events).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Union


@dataclass(frozen=True)
class Queued:
    job_id: int | None
    position: int  # 0 = next to run


@dataclass(frozen=True)
class Started:
    job_id: int | None
    backend: str


@dataclass(frozen=True)
class Progress:
    """One step of one stage: `stage` is e.g. "loading", "encoding", "sampling", "decoding", "exporting"."""

    stage: str
    step: int
    total: int
    eta_s: float | None = None
    elapsed_s: float | None = None
    expert: str | None = None  # "high_noise" / "low_noise" (Wan two-expert models) or "transformer" (one expert)
    job_id: int | None = None


@dataclass(frozen=True)
class Preview:
    """A cheap look at the clip while it renders (e.g. a strip of a few frames after a denoising step)."""

    frame: Any  # an RGB uint8 numpy array (H, W, 3)
    job_id: int | None = None
    step: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class Finished:
    video_path: str
    thumbnail_path: str | None = None
    job_id: int | None = None


@dataclass(frozen=True)
class Failed:
    message: str
    job_id: int | None = None


@dataclass(frozen=True)
class Cancelled:
    job_id: int | None = None


Event = Union[Queued, Started, Progress, Preview, Finished, Failed, Cancelled]
EventListener = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The listener for callers that do not listen."""


class CancelToken:
    """Set by whoever wants a job stopped; checked by the backend at every step boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class GenerationCancelled(Exception):
    """Raised inside a backend when its CancelToken was set; the runner records `cancelled`, no video."""


@dataclass(frozen=True)
class GenerationResult:
    """What a finished generation produced and everything needed to reproduce it."""

    video_path: str
    thumbnail_path: str | None
    width: int
    height: int
    num_frames: int
    fps: int
    backend: str
    model_id: str | None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    params: dict[str, Any] = field(default_factory=dict)  # prompts, seed, scales, lora, quantization, versions
    negative_guidance: str = "none"  # how the negative prompt acted: "nag" | "cfg" | "cfg+nag" | "none"
    preview_path: str | None = None  # the small animated WebP the gallery plays on hover (generation.export)
