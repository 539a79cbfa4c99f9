"""Long-video benchmark (#12 §2): seconds of work per second of video for 1, 3 and 6 chained segments.

Renders videos of 5, 13 and 28 s (1, 3 and 6 segments of at most 5 s) through `generation.segments.generate` on
the preview backend (or the Wan backend with --backend wan: a tiny random pipeline unless VIVIDFLOW_WAN_MODEL is
set), export included, and prints wall seconds, seconds per second of video, and that figure relative to one
segment, in wall time and in this process's CPU time (steadier on a shared machine). The cost should grow linearly
with the length: the per-second figures stay flat.

    .venv/bin/python bench/segments_bench.py [--side 320] [--runs 2] [--backend preview|wan]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PIL import Image  # noqa: E402

from agent.compiler import compile_plan  # noqa: E402
from agent.plan import Camera, Motion, MotionPlan  # noqa: E402
from generation import segments  # noqa: E402
from generation.post import PostSettings  # noqa: E402

LENGTHS = ((5.0, 1), (13.0, 3), (28.0, 6))  # seconds → segments


def picture(side: int) -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)


def make_backend(name: str, side: int):
    if name == "preview":
        from generation.preview import PreviewBackend

        return PreviewBackend(max_area=side * side)
    from devtools.tiny_wan import cached_tiny_pipeline_dir
    from generation import wan, wan_load
    from generation.config import GenerationConfig

    model = os.environ.get("VIVIDFLOW_WAN_MODEL") or str(cached_tiny_pipeline_dir())
    cfg = GenerationConfig(model=model, lightning=False, max_area=side * side, max_sequence_length=16)
    return wan.WanBackend(loaded=wan_load.load_pipeline(cfg))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=320, help="square frames of this side (default 320)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--backend", choices=("preview", "wan"), default="preview")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.side < 16:
        ap.error("--runs must be at least 1 and --side at least 16")
    backend = make_backend(args.backend, args.side)
    image = picture(args.side)
    with tempfile.TemporaryDirectory() as d:  # warm-up: imports, ffmpeg start, caches
        warm = compile_plan(MotionPlan.create(template="fashion", duration_s=1.0, seed=3))
        segments.generate(backend, warm, image, out_dir=d, post=PostSettings(), max_segment_frames=81)
    rows = []
    for seconds, expected in LENGTHS:
        plan = compile_plan(MotionPlan.create(
            template="fashion", duration_s=seconds, seed=3, camera=Camera(move="zoom_in", speed=0.3), steps=4,
            motions=(Motion(subject="hair", action="flow"),)))
        assert plan.segment_count == expected, (seconds, plan.segment_count)
        times, cpus = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as d:
                t, c = time.perf_counter(), time.process_time()
                segments.generate(backend, plan, image, out_dir=d, post=PostSettings(),
                                  max_segment_frames=None if seconds > 5 else 81)
                times.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
        wall, cpu = statistics.median(times), statistics.median(cpus)
        rows.append((seconds, expected, wall, wall / seconds, cpu / seconds))
    base, base_cpu = rows[0][3], rows[0][4]
    # CPU seconds of this process (all its threads; ffmpeg's own process not counted) stay meaningful on a shared
    # machine, where wall time depends on what else runs
    print(f"backend {args.backend}, {args.side}×{args.side}, median of {args.runs}")
    print(f"{'video s':>8} {'segments':>8} {'wall s':>8} {'wall s/video s':>15} {'vs 1':>6} {'cpu s/video s':>14} {'vs 1':>6}")
    for seconds, count, wall, per, cpu in rows:
        print(f"{seconds:>8g} {count:>8d} {wall:>8.2f} {per:>15.3f} {per / base:>5.2f}× {cpu:>14.3f} {cpu / base_cpu:>5.2f}×")


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/segments_bench.py"))
