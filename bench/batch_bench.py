"""Variations benchmark (#12 §3): a batch of 4 clips in one job vs 4 single renders, through the job runner.

Preview (default): the same 4 seeds rendered as one batch (`Runner.submit_batch`: 4 records, one job) and as 4
separate jobs; prints wall seconds for each and seconds per second of video, median of N runs. With `--wan-tiny`
it also times the tiny random Wan2.2 I2V pipeline on the CPU: one `generate_batch` call with 4 generators vs 4
`generate` calls (the real gain is on a GPU, where one call batches the transformer's work; on the CPU the tiny
model mostly shows that the batched call costs no more).

    .venv/bin/python bench/batch_bench.py [--runs 3] [--seconds 1] [--wan-tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.compiler import compile_plan, default_plan  # noqa: E402
from agent.end_and_batch import batch_plans  # noqa: E402
from agent.plan import MotionPlan  # noqa: E402

N = 4


def _photo(tmp: str) -> str:
    from PIL import Image
    from skimage import data

    path = os.path.join(tmp, "astronaut.png")
    Image.fromarray(data.astronaut()).save(path)
    return path


def preview(runs: int, seconds: float) -> None:
    from generation.jobs import Runner
    from generation.preview import PreviewBackend
    from storage import open_store

    plan = compile_plan(default_plan("landscape", seed=1).with_changes(duration_s=seconds, variations=N))
    batch_s, single_s = [], []
    size = "?"
    with tempfile.TemporaryDirectory() as tmp:
        photo = _photo(tmp)
        for run in range(runs):
            with open_store(home=os.path.join(tmp, f"home-{run}")) as store, \
                    Runner(store, {"preview": PreviewBackend()}) as runner:
                warm = runner.wait(runner.submit(plan.with_changes(variations=1), photo, backend="preview").id)
                size = f"{warm.params['width']}×{warm.params['height']}"
                t = time.perf_counter()
                for r in runner.submit_batch(plan, photo, backend="preview"):
                    runner.wait(r.id)
                batch_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                ids = [runner.submit(p, photo, backend="preview").id for p in batch_plans(plan)]
                for i in ids:
                    runner.wait(i)
                single_s.append(time.perf_counter() - t)
    video_s = N * plan.num_frames / plan.fps
    for label, times in (("batch of 4 (one job)", batch_s), ("4 single renders", single_s)):
        med = statistics.median(times)
        print(f"preview {label:<22} {med:6.2f} s  ({med / video_s:.3f} s per second of video, "
              f"{N} × {plan.num_frames} frames at {size}, median of {runs})")


def wan_tiny(runs: int) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from devtools.tiny_wan import TINY_MAX_AREA, cached_tiny_pipeline_dir
    from generation import wan, wan_load
    from generation.config import GenerationConfig

    torch.set_num_threads(1)
    cfg = GenerationConfig(model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=TINY_MAX_AREA,
                           max_sequence_length=16)
    backend = wan.WanBackend(loaded=wan_load.load_pipeline(cfg))
    picture = Image.fromarray((np.random.RandomState(0).rand(48, 64, 3) * 255).astype("uint8"))
    base = MotionPlan.create(template="portrait_subtle", duration_s=0.5, prompt="hair in the wind", seed=3,
                             guidance_scale=1.0, guidance_scale_2=1.0)
    plans = [base.with_changes(seed=s) for s in range(3, 3 + N)]
    batch_s, single_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        backend.generate(plans[0], picture, out_dir=tmp)  # warm
        for _ in range(runs):
            t = time.perf_counter()
            backend.generate_batch(plans, picture, out_dir=tmp)
            batch_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            for p in plans:
                backend.generate(p, picture, out_dir=tmp)
            single_s.append(time.perf_counter() - t)
    print(f"tiny wan (CPU) one call, {N} generators  {statistics.median(batch_s):6.2f} s")
    print(f"tiny wan (CPU) {N} single calls        {statistics.median(single_s):6.2f} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each clip")
    ap.add_argument("--wan-tiny", action="store_true", help="also time the tiny Wan pipeline (CPU)")
    args = ap.parse_args(argv)
    if args.runs < 1 or not args.seconds > 0:
        ap.error("--runs must be at least 1 and --seconds more than 0")
    preview(args.runs, args.seconds)
    if args.wan_tiny:
        wan_tiny(args.runs)


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/batch_bench.py"))
