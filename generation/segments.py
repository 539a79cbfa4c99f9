"""Longer videos, story mode, smoother and larger (#12 §2 §4 §5): one job, one MP4, from chained segments.

    result = generate(backend, plan, image, on_event, cancel, out_dir=..., pictures=[...])

A plan whose video fits one segment, with no story, interpolation or upscale, goes straight to
`backend.generate` (bit for bit what it always was). Otherwise:

1. Split: `plan_segments(plan)` → segments of at most 5 s (81 frames at 16 fps), neighbours sharing
   SEGMENT_OVERLAP frames; in story mode one or more per transition between neighbouring pictures.
2. Render each segment with `backend.render_segment(seg_plan, start, last_image=end)`: the first from the
   picture, each next one from the previous segment's last frame (story mode: a transition starts from its own
   picture and ends on the next one, first-last-frame).
3. Colour: each chained segment's per-channel mean and spread are pulled back towards the first segment's
   (the correction ramps in from 0 at its first frame, so the seam itself does not move).
4. Seam: the last SEGMENT_OVERLAP frames of a segment and the first ones of the next are cross-faded.
5. Interpolate (`output_fps`) and upscale (`upscale`) the whole stream (`generation.post`), export once.

Progress: one "rendering" bar over every segment's frames with an ETA; cancel is checked between segments
and inside each (the backend's own checks); a cancel leaves no file (export writes a temp file first).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.plan import LIMITS, MAX_SEED, SEGMENT_OVERLAP, Camera, MotionPlan, segment_lengths
from generation.events import (
    CancelToken, EventListener, GenerationCancelled, GenerationResult, Preview, Progress, ignore,
)

if TYPE_CHECKING:
    from PIL import Image

    from generation.backend import Backend

log = logging.getLogger(__name__)

GAIN_RANGE = (0.8, 1.25)  # the colour correction never stretches a channel's spread further than this


@dataclass(frozen=True)
class Segment:
    """One rendered piece: its own plan (duration = its frames), where it starts and what it ends on."""

    index: int
    frames: int
    plan: MotionPlan
    start_picture: int | None = None  # story: starts from this picture (None: from the previous segment's end)
    end_picture: int | None = None  # story: ends on this picture (first-last-frame)
    transition: int | None = None  # story: which transition (0-based) it belongs to


def needs_segments(plan: MotionPlan) -> bool:
    """True when the plan is more than one plain clip: longer than a segment, a story, interpolated or upscaled."""
    return (plan.segment_count > 1 or len(plan.story_images) >= 2 or plan.output_fps is not None
            or plan.upscale is not None)


def _seg_plan(plan: MotionPlan, frames: int, index: int, *, pace: float = 1.0, camera: str | None = None) -> MotionPlan:
    """The plan of one segment: `frames` long, its own seed (plan seed + index), story pace and camera applied."""
    lo, hi = LIMITS["speed"]
    changes: dict[str, Any] = {
        "duration_s": (frames - 1) / plan.fps, "seed": (plan.seed + index) % (MAX_SEED + 1),
        "story_images": (), "transitions": (), "output_fps": None, "upscale": None,
        # the whole video's end picture or loop is the last segment's `last_image` (see `generate`); one clip each
        "end_image": None, "loop": False, "variations": 1,
    }
    if pace != 1.0:
        changes["motions"] = tuple(m.model_copy(update={"speed": min(max(m.speed * pace, lo), hi)}) for m in plan.motions)
    move = camera or plan.camera.move
    if pace != 1.0 or camera:
        changes["camera"] = Camera(move=move, speed=min(max(plan.camera.speed * pace, lo), hi))
    return plan.with_changes(**changes)


def plan_segments(plan: MotionPlan, *, max_frames: int | None = None) -> list[Segment]:
    """The segments the video renders as, in order (see the module docstring); `max_frames`: a segment's longest
    (default 81 = 5 s at 16 fps; tests use shorter ones)."""
    out: list[Segment] = []
    if len(plan.story_images) < 2:
        for i, n in enumerate(segment_lengths(plan.num_frames, max_frames=max_frames)):
            out.append(Segment(index=i, frames=n, plan=_seg_plan(plan, n, i), start_picture=0 if i == 0 else None))
        return out
    transitions = plan.transitions or ()
    for t, total in enumerate(plan.transition_frames()):
        spec = transitions[t] if transitions else None
        parts = segment_lengths(total, max_frames=max_frames)
        for j, n in enumerate(parts):
            i = len(out)
            out.append(Segment(
                index=i, frames=n,
                plan=_seg_plan(plan, n, i, pace=spec.pace if spec else 1.0, camera=spec.camera if spec else None),
                start_picture=t if j == 0 else None, end_picture=t + 1 if j == len(parts) - 1 else None,
                transition=t,
            ))
    return out


# --- colour and seams ---------------------------------------------------------------------------------


def colour_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over all frames (every 4th pixel: plenty for statistics)."""
    sample = frames[:, ::4, ::4].reshape(-1, frames.shape[-1]).astype(np.float64)
    return sample.mean(0), sample.std(0) + 1e-6


def match_colour(frames: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Pull `frames`' per-channel statistics towards `reference`, ramping in from 0 at frame 0 (which equals the
    previous segment's last frame) to the full correction at the last frame; gains limited to GAIN_RANGE."""
    mean, std = colour_stats(frames)
    gain = np.clip(reference[1] / std, *GAIN_RANGE)
    shift = reference[0] - mean * gain
    n = len(frames)
    out = np.empty_like(frames)
    for i in range(n):
        w = i / (n - 1) if n > 1 else 1.0
        g = 1.0 + w * (gain - 1.0)
        out[i] = np.clip(frames[i] * g + w * shift + 0.5, 0, 255).astype(np.uint8)
    return out


def blend_seam(tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Cross-fade the last frames of a segment into the first frames of the next (equal counts)."""
    k = len(tail)
    w = (np.arange(1, k + 1, dtype=np.float32) / (k + 1))[:, None, None, None]
    return (tail * (1.0 - w) + head * w + 0.5).astype(np.uint8)


def fit_picture(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A story picture centre-cropped and resized to the video's size (w, h)."""
    from PIL import Image as PILImage, ImageOps

    return ImageOps.fit(picture.convert("RGB"), size, PILImage.Resampling.LANCZOS)


# --- the job ----------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """One bar over all segments' frames; a segment's own Progress events move it inside that segment."""

    on_event: EventListener
    total: int
    label: str
    done: int = 0
    t0: float = field(default_factory=time.perf_counter)

    def listener(self, frames: int) -> EventListener:
        def listen(event: Any) -> None:
            if isinstance(event, Progress) and event.stage in ("rendering", "sampling") and event.total:
                self.emit(self.done + frames * event.step / event.total, event.expert)
            elif isinstance(event, Preview):  # Wan's live preview strip, as it is
                self.on_event(event)

        return listen

    def emit(self, step: float, expert: str | None = None) -> None:
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / step * (self.total - step) if step > 0 else None
        self.on_event(Progress(stage=self.label, step=int(step), total=self.total, eta_s=eta, elapsed_s=elapsed,
                               expert=expert))


def generate(
    backend: Backend,
    plan: MotionPlan,
    image: Image.Image | None,
    on_event: EventListener = ignore,
    cancel: CancelToken | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    pictures: Sequence[Image.Image] | None = None,
    end_image: Image.Image | None = None,
    post: Any = None,
    max_segment_frames: int | None = None,
) -> GenerationResult:
    """Render `plan` as one MP4: straight through `backend.generate` when it is one plain clip, else chained
    segments (see the module docstring). `pictures`: story mode's pictures in story order (the first is `image`).
    `end_image`: the picture `plan.end_image` names (#12 §1): a plain clip hands it to `backend.generate`; a
    chained video's last segment ends on it (on the first picture for `plan.loop`), through `last_image`.
    `post`: `generation.post.PostSettings` (default: from the settings). `max_segment_frames`: see plan_segments."""
    cancel = cancel or CancelToken()
    if not needs_segments(plan) and max_segment_frames is None:
        kw: dict[str, Any] = {"end_image": end_image} if end_image is not None else {}
        return backend.generate(plan, image, on_event, cancel, out_dir=out_dir, **kw)
    from generation.backend import PictureRequired, PREVIEW_NEEDS_PICTURE
    from generation.export import default_out_dir, export_video
    from generation import post as post_mod

    # 1. Check inputs
    if not hasattr(backend, "render_segment"):
        raise ValueError(f"backend {backend.name!r} cannot render segments (videos over 5 s, story mode)")
    story = list(pictures or ())
    if len(plan.story_images) >= 2 and len(story) != len(plan.story_images):
        raise ValueError(f"story mode needs its {len(plan.story_images)} pictures, got {len(story)}")
    if image is None and story:
        image = story[0]
    if image is None:
        raise PictureRequired(PREVIEW_NEEDS_PICTURE if backend.name == "preview" else
                              "longer videos continue from a picture: upload one")
    if plan.end_image is not None and end_image is None:
        raise ValueError(f"the plan ends on picture {plan.end_image[:12]}… but it was not given to the renderer "
                         "(is it still in the media store?)")
    final = image if plan.loop else end_image  # what the video's last frame is (None: where the motion goes)
    post_settings = post or post_mod.PostSettings.from_env()
    segments = plan_segments(plan, max_frames=max_segment_frames)
    t_start = time.perf_counter()
    label = f"rendering {len(segments)} segment{'s' if len(segments) != 1 else ''}"
    progress = _Progress(on_event, total=sum(s.frames for s in segments), label=label)
    records: list[dict[str, Any]] = []
    full: dict[str, Any] = {}
    size: list[tuple[int, int]] = []

    # 2.–4. Render, correct colour and blend seams, streamed segment by segment
    def frames() -> Iterator[np.ndarray]:
        reference: tuple[np.ndarray, np.ndarray] | None = None
        tail: np.ndarray | None = None
        last: Image.Image | None = None
        from PIL import Image as PILImage

        for seg in segments:
            if cancel.cancelled:
                raise GenerationCancelled(f"cancelled before segment {seg.index + 1}/{len(segments)}")
            if seg.start_picture is not None:
                start = story[seg.start_picture] if story else image
                start = fit_picture(start, size[0]) if size else start
            else:
                start = last
            end = story[seg.end_picture] if seg.end_picture is not None else (
                final if seg is segments[-1] else None)
            end = fit_picture(end, size[0]) if end is not None and size else end
            kwargs: dict[str, Any] = {"last_image": end, "on_event": progress.listener(seg.frames), "cancel": cancel}
            if backend.name == "preview":
                kwargs["rest_start"] = seg.index > 0 or seg.transition is not None
            out, record = backend.render_segment(seg.plan, start, **kwargs)
            if cancel.cancelled:
                raise GenerationCancelled(f"cancelled during segment {seg.index + 1}/{len(segments)}")
            if not size:
                size.append((out.shape[2], out.shape[1]))
            if seg.start_picture is not None:  # a new picture (story): its own colours are the reference
                reference = colour_stats(out)
            elif reference is not None:
                out = match_colour(out, reference)
            progress.done += seg.frames
            progress.emit(progress.done)
            if not records:  # the backend's whole reproduction record, once (recipe, LoRAs, versions …)
                full.update({k: v for k, v in record.items() if k != "plan"})
            records.append({"index": seg.index, "frames": int(len(out)), "seed": seg.plan.seed,
                            "transition": seg.transition, "start_picture": seg.start_picture,
                            "end_picture": seg.end_picture, "start_sha256": _sha(start), **_small(record)})
            last = PILImage.fromarray(out[-1])  # the next segment starts here (before any blending)
            records[-1]["last_sha256"] = _sha(last)
            head = 0
            if tail is not None:  # the seam: this segment's first frames fade in over the last one's tail
                head = SEGMENT_OVERLAP
                yield from blend_seam(tail, out[:head])
            if seg is segments[-1]:
                yield from out[head:]
            else:  # a middle segment is at least 2 × SEGMENT_OVERLAP + 3 frames (segment_lengths)
                yield from out[head:len(out) - SEGMENT_OVERLAP]
                tail = out[len(out) - SEGMENT_OVERLAP:]

    # 5. Interpolate, upscale, export once
    stream: Iterator[np.ndarray] = frames()
    fps = plan.fps
    method = upscale_method = "none"
    first = next(stream)
    stream = _chain(first, stream)
    h, w = first.shape[:2]
    if plan.output_fps is not None and plan.output_fps > fps:
        stream, method = post_mod.interpolate(stream, fps=fps, out_fps=plan.output_fps, settings=post_settings)
        fps = plan.output_fps
    out_size = (w, h)
    if plan.upscale is not None:
        out_size = post_mod.upscaled_size(w, h, factor=plan.upscale.factor, target_height=plan.upscale.height)
        stream, upscale_method = post_mod.upscale(stream, fps=fps, size=out_size, settings=post_settings)
    metadata = {"plan": plan.to_dict(), "seed": plan.seed, "backend": backend.name,
                "model_id": getattr(backend, "model_id", None), "segments": len(segments), "vividflow": full}
    video = export_video(stream, out_dir if out_dir is not None else default_out_dir(), fps=fps, metadata=metadata)
    total = time.perf_counter() - t_start
    on_event(Progress(stage="exporting", step=1, total=1, elapsed_s=total))
    log.info("segments: %d segments, %d frames at %d fps (%s), %dx%d in %.2f s → %s", len(segments),
             video.num_frames, fps, method, video.width, video.height, total, video.video_path)
    params = {
        "seed": plan.seed, "sha256": video.sha256, "segments": records, "segment_count": len(segments),
        "overlap": SEGMENT_OVERLAP, "interpolation": method, "output_fps": fps,
        "upscale": plan.upscale.describe() if plan.upscale else None, "upscale_method": upscale_method,
        "render_size": [w, h],
        "story_images": list(plan.story_images), "render": full,
        "end_frame": "loop" if plan.loop else ("end picture" if plan.end_image else None),
    }
    return GenerationResult(
        video_path=video.video_path, thumbnail_path=video.thumbnail_path, width=video.width, height=video.height,
        num_frames=video.num_frames, fps=video.fps, backend=backend.name, preview_path=video.preview_path, model_id=getattr(backend, "model_id", None),
        timings={"total_s": total}, params=params, negative_guidance=full.get("negative_guidance", "none"),
    )


def story_picture(store: Any, key: str) -> Any:
    """The stored source image whose sha256 is `key` (a story picture); ValueError naming it when it is gone."""
    record = store.find_image(key)
    if record is None or not os.path.isfile(record.path):
        raise ValueError(f"story picture {key[:12]}… is not in the store any more: upload it again")
    return record


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _sha(picture: Any) -> str | None:
    if picture is None:
        return None
    return hashlib.sha256(np.asarray(picture).tobytes()).hexdigest()


def _small(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of a backend's record worth keeping per segment (not the whole plan again)."""
    keep = ("renderer", "rest_start", "last_image", "steps", "recipe", "width", "height", "num_frames", "timesteps")
    return {k: record[k] for k in keep if k in record}
