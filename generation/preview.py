"""The `preview` backend: animate the photo with classic image warping, in about a second, on any CPU.

It shows the motion a plan asks for (camera move, which regions move and how fast) before anyone
spends GPU time. It is not a generative model: nothing new is drawn except falling particles.
How a frame is made: `generation.preview_scene`; where each subject moves: `generation.preview_regions`.
Everything is deterministic for a given plan, image and seed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from generation.backend import PREVIEW_NEEDS_PICTURE, PictureRequired
from generation.eta import StepTimer
from generation.events import (
    CancelToken,
    EventListener,
    GenerationCancelled,
    GenerationResult,
    Progress,
    ignore,
)
from generation.image import MAX_AREA, preprocess
from generation.preview_scene import Scene

if TYPE_CHECKING:
    from agent.plan import MotionPlan

RENDERER_VERSION = "preview-warp-1"


class PreviewBackend:
    """Backend `preview`: CPU warping renderer; no weights, deterministic, ~1 s for 49 frames at 480p."""

    name = "preview"
    model_id = RENDERER_VERSION

    def __init__(self, *, crf: int = 20, preset: str = "veryfast", max_area: int = MAX_AREA,
                 threads: int | None = None) -> None:
        self.crf = crf
        self.preset = preset
        self.max_area = max_area
        # numpy releases the GIL in the heavy loops, so two render threads use two cores
        self.threads = max(1, threads if threads is not None else min(2, os.cpu_count() or 1))

    def load(self, cfg: Any = None) -> None:
        """Nothing to load."""

    def render(self, plan: MotionPlan, image: Image.Image, end_image: Image.Image | None = None) -> np.ndarray:
        """All frames as a (T, H, W, 3) uint8 array, without encoding (tests and benchmarks)."""
        src = preprocess(image, max_area=self.max_area)
        scene = Scene(plan, np.asarray(src), _end_rgb(plan, src, end_image))
        return np.stack([scene.frame(i) for i in range(scene.n)])

    def render_segment(
        self, plan: MotionPlan, image: Image.Image, *, last_image: Image.Image | None = None,
        rest_start: bool = False, on_event: EventListener = ignore, cancel: CancelToken | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """One segment of a longer video (`generation.segments`): (T, H, W, 3) uint8 frames and a record.

        `rest_start`: frame 0 is `image` unmoved (a chained segment). `last_image` (story mode): the clip morphs
        into it while the motion and camera play: the end picture's own scene runs backwards from rest, so the
        last frame is that picture, and the two cross-dissolve along a smoothstep.
        """
        cancel = cancel or CancelToken()
        src = np.asarray(preprocess(image, max_area=self.max_area))
        scene = Scene(plan, src, rest_start=rest_start)
        end_scene = None
        if last_image is not None:
            from PIL import ImageOps

            end = ImageOps.fit(last_image.convert("RGB"), (scene.w, scene.h), Image.Resampling.LANCZOS)
            end_scene = Scene(plan, np.asarray(end), rest_start=True)
        n = scene.n
        frames = np.empty((n, scene.h, scene.w, 3), np.uint8)
        t0 = time.perf_counter()
        for i in range(n):
            if cancel.cancelled:
                raise GenerationCancelled(f"cancelled at frame {i}/{n}")
            frame = scene.frame(i)
            if end_scene is not None:
                p = i / (n - 1) if n > 1 else 1.0
                w = p * p * (3.0 - 2.0 * p)
                frame = (frame * (1.0 - w) + end_scene.frame(n - 1 - i) * w + 0.5).astype(np.uint8)
            frames[i] = frame
            elapsed = time.perf_counter() - t0
            on_event(Progress(stage="rendering", step=i + 1, total=n, eta_s=elapsed / (i + 1) * (n - i - 1),
                              elapsed_s=elapsed))
        record = {"renderer": RENDERER_VERSION, "seed": plan.seed, "rest_start": rest_start,
                  "last_image": last_image is not None, "image_sha256": hashlib.sha256(src.tobytes()).hexdigest()}
        return frames, record

    def generate(
        self,
        plan: MotionPlan,
        image: Image.Image | None,
        on_event: EventListener = ignore,
        cancel: CancelToken | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        end_image: Image.Image | None = None,
    ) -> GenerationResult:
        """Render `plan` from `image`; `end_image` is the picture `plan.end_image` names (#12 §1)."""
        from generation.export import default_out_dir, export_video

        cancel = cancel or CancelToken()
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        # 1. Check inputs
        if image is None:
            raise PictureRequired(PREVIEW_NEEDS_PICTURE)
        if not isinstance(image, Image.Image):
            raise TypeError(f"image must be a PIL image, got {type(image).__name__}")
        if cancel.cancelled:
            raise GenerationCancelled("cancelled before rendering")
        # 2. Preprocess the image
        t = time.perf_counter()
        src = preprocess(image, max_area=self.max_area)
        rgb = np.asarray(src)
        timings["preprocess_s"] = time.perf_counter() - t
        # 3. Build the scene (regions, camera path, particles)
        t = time.perf_counter()
        scene = Scene(plan, rgb, _end_rgb(plan, src, end_image))
        timings["setup_s"] = time.perf_counter() - t
        # 4. Render frame by frame, streamed into the encoder (ffmpeg encodes while we warp)
        render_time = [0.0]
        time_lock = threading.Lock()
        total = scene.n

        def frames() -> Iterator[np.ndarray]:
            """Frames in order, rendered `threads` ahead; cancel is checked before each frame starts."""
            from concurrent.futures import Future, ThreadPoolExecutor

            t0 = time.perf_counter()
            timer = StepTimer(total)  # smoothed seconds per frame of this run (generation.eta)

            def timed(i: int) -> np.ndarray:
                tf = time.perf_counter()
                frame = scene.frame(i)
                with time_lock:
                    render_time[0] += time.perf_counter() - tf
                return frame

            with ThreadPoolExecutor(self.threads, thread_name_prefix="preview-render") as pool:
                pending: deque[Future[np.ndarray]] = deque()
                try:
                    for i in range(total):
                        while len(pending) < self.threads and i + len(pending) < total:
                            if cancel.cancelled:
                                raise GenerationCancelled(f"cancelled at frame {i}/{total}")
                            pending.append(pool.submit(timed, i + len(pending)))
                        frame = pending.popleft().result()
                        elapsed = time.perf_counter() - t0
                        eta = timer.step(i + 1)
                        on_event(Progress(stage="rendering", step=i + 1, total=total, eta_s=eta, elapsed_s=elapsed))
                        yield frame
                finally:
                    for f in pending:
                        f.cancel()
            on_event(Progress(stage="exporting", step=0, total=1, elapsed_s=time.perf_counter() - t0))

        # 5. Export (H.264 + thumbnail + plan metadata), atomically
        t = time.perf_counter()
        metadata = {
            "plan": plan.to_dict(),
            "seed": plan.seed,
            "backend": self.name,
            "model_id": self.model_id,
            "image_sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
            "label": "preview",
        }
        video = export_video(
            frames(), out_dir if out_dir is not None else default_out_dir(), fps=plan.fps,
            metadata=metadata, crf=self.crf, preset=self.preset,
        )
        wall = time.perf_counter() - t
        timings["render_s"] = render_time[0]  # summed over render threads
        timings["render_encode_wall_s"] = wall  # rendering streamed into the encoder
        timings["total_s"] = time.perf_counter() - t_start
        on_event(Progress(stage="exporting", step=1, total=1, elapsed_s=wall))
        # 6. Return everything needed to reproduce it
        return GenerationResult(
            video_path=video.video_path, thumbnail_path=video.thumbnail_path, preview_path=video.preview_path,
            width=video.width, height=video.height, num_frames=video.num_frames, fps=video.fps,
            backend=self.name, model_id=self.model_id, timings=timings,
            params={
                "seed": plan.seed, "renderer": RENDERER_VERSION, "crf": self.crf, "preset": self.preset,
                "sha256": video.sha256, "image_sha256": metadata["image_sha256"],
                "motions": [{"subject": f.subject, "kind": f.kind, "region_coverage": round(float(f.mask.mean()), 3)}
                            for f in scene.fields],
                "particles": [layer.kind for layer in scene.layers],
                "end_frame": "loop" if plan.loop else ("end picture" if plan.end_image else None),
                "camera": {"move": scene.move, "zoom_total": round(scene.zoom_total, 4),
                           "travel": round(scene.travel, 4), "z0": round(scene.z0, 4)},
            },
        )


def _end_rgb(plan: MotionPlan, first: Image.Image, end_image: Image.Image | None) -> np.ndarray | None:
    """The end picture at the clip's size for a plan that ends on one (a loop needs none: #12 §1)."""
    from generation.end_frame import end_picture

    if plan.loop or plan.end_image is None:
        return None
    end = end_picture(plan, first, end_image)
    return np.asarray(end) if end is not None else None
