"""The whole `python -m generation render --backend preview` process against ffmpeg's own `zoompan` filter,
side by side on the same picture: a 3 s 832×480 zoom-in clip (49 frames at 16 fps), H.264 with the same
settings (libx264, crf 20, preset veryfast, yuv420p), each a fresh process timed from start to exit.

Runs are paired (CLI then zoompan, or the other way round, alternating) so a busy moment of the shared machine
hits both; prints every pair, the medians, the ratio CLI / zoompan (median of the paired ratios) and the load.
Goal (#17 item 8): ratio ≤ 1.0.

    .venv/bin/python bench/preview_vs_zoompan.py [--repeats 7] [--keep DIR] [--baseline OTHER_CHECKOUT]

`--baseline` also times another checkout's CLI (e.g. `git archive <commit> | tar -x -C /tmp/before`, the code before
a speed-up) in every round, on its own data folder, so before and after meet the same moments of load; it writes
bytecode caches into that folder, so give it a copy of your own. CPU seconds (user + system, ffmpeg included) are
printed beside the wall times: on a shared machine they move much less with the load.

The child Python may write bytecode caches (as in any clone) even when PYTHONDONTWRITEBYTECODE is set here; one
warm-up pair runs first and is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZE = (832, 480)
FPS, FRAMES = 16, 49
ZOOM_TOTAL = 0.135  # generation.preview_scene: ZOOM_PER_S 0.045 × 3 s at speed 1
ENCODE = ["-c:v", "libx264", "-crf", "20", "-preset", "veryfast", "-pix_fmt", "yuv420p"]


def picture(path: Path) -> None:
    import numpy as np
    from PIL import Image

    try:
        import skimage.data

        arr = skimage.data.astronaut()
    except ImportError:  # scikit-image is a test dependency; a synthetic picture otherwise
        y, x = np.mgrid[0:512, 0:512]
        arr = np.stack([(x * 0.7) % 255, (y * 0.5) % 255, ((x + y) * 0.3) % 255], -1).astype(np.uint8)
    Image.fromarray(arr).convert("RGB").resize(SIZE, Image.Resampling.LANCZOS).save(path)


def plan(path: Path) -> None:
    from agent.plan import MotionPlan

    p = MotionPlan.create(template="product", camera={"move": "zoom_in", "speed": 1.0}, duration_s=3.0, seed=1)
    assert p.num_frames == FRAMES and p.fps == FPS, (p.num_frames, p.fps)
    path.write_text(json.dumps(p.to_dict()))


CPU: list[float] = []  # CPU seconds (user + system) of each timed process, in order


def timed(cmd: list[str], env: dict[str, str], cwd: Path = REPO) -> float:
    """Wall seconds of one process; its CPU seconds go to CPU (less disturbed by other sessions' load)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)  # `-m` imports from cwd first
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} … failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    import imageio_ffmpeg

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", default=None, help="keep the picture, plan and videos in this folder")
    ap.add_argument("--baseline", default=None, help="another checkout whose CLI is timed too (before/after)")
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="preview-vs-zoompan-"))
    work.mkdir(parents=True, exist_ok=True)
    pic, plan_json = work / "picture.png", work / "plan.json"
    picture(pic)
    plan(plan_json)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "VIVIDFLOW_DB_URL")}
    env.update(PYTHONPATH=str(REPO), VIVIDFLOW_HOME=str(work / "home"))
    cli = [sys.executable, "-m", "generation", "render", "--image", str(pic), "--plan", str(plan_json),
           "--backend", "preview", "--out", str(work / "cli.mp4")]
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    zoom = (f"zoompan=z='1+{ZOOM_TOTAL}*on/{FRAMES - 1}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
            f":d={FRAMES}:s={SIZE[0]}x{SIZE[1]}:fps={FPS}")
    zoompan = [ffmpeg, "-v", "error", "-y", "-i", str(pic), "-vf", zoom, "-frames:v", str(FRAMES), *ENCODE,
               str(work / "zoompan.mp4")]

    load = os.getloadavg()
    print(f"cpus={os.cpu_count()} load(1/5/15 min)={load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} repeats={args.repeats} "
          f"clip={SIZE[0]}×{SIZE[1]} {FRAMES} frames @ {FPS} fps, libx264 crf 20 veryfast")
    base_repo = Path(args.baseline or REPO).resolve()
    base_env = dict(env, PYTHONPATH=str(base_repo), VIVIDFLOW_HOME=str(work / "home-baseline"))
    base_cli = [*cli[:-1], str(work / "baseline.mp4")]
    timed(cli, env), timed(zoompan, env)  # warm-up: bytecode caches, disk cache, the database's migrations
    if args.baseline:
        timed(base_cli, base_env, base_repo)
    pairs: list[tuple[float, float]] = []
    cpu_pairs: list[tuple[float, float]] = []
    baseline: list[float] = []
    baseline_cpu: list[float] = []
    for r in range(args.repeats):
        if r % 2 == 0:
            a = timed(cli, env)
            b = timed(zoompan, env)
            ca, cb = CPU[-2], CPU[-1]
        else:
            b = timed(zoompan, env)
            a = timed(cli, env)
            cb, ca = CPU[-2], CPU[-1]
        pairs.append((a, b))
        cpu_pairs.append((ca, cb))
        extra = ""
        if args.baseline:
            baseline.append(timed(base_cli, base_env, base_repo))
            baseline_cpu.append(CPU[-1])
            extra = f"   baseline {baseline[-1]:6.3f} s (cpu {CPU[-1]:.2f} s)"
        print(f"  run {r + 1}: render --backend preview {a:6.3f} s (cpu {ca:.2f} s)   zoompan {b:6.3f} s (cpu {cb:.2f} s)"
              f"   ratio {a / b:5.2f}{extra}   load {os.getloadavg()[0]:.2f}")
    cli_s = statistics.median(a for a, _ in pairs)
    zp_s = statistics.median(b for _, b in pairs)
    ratio = statistics.median(a / b for a, b in pairs)
    if baseline:
        print(f"baseline {args.baseline}: median {statistics.median(baseline):.3f} s, cpu {statistics.median(baseline_cpu):.2f}"
              f" s; ratio to zoompan (median of rounds) "
              f"{statistics.median(x / b for x, (_, b) in zip(baseline, pairs, strict=True)):.2f}")
    print(f"cpu seconds, median: render --backend preview {statistics.median(a for a, _ in cpu_pairs):.2f}, zoompan "
          f"{statistics.median(b for _, b in cpu_pairs):.2f}; ratio {statistics.median(a / b for a, b in cpu_pairs):.2f}")
    load = os.getloadavg()
    print(f"median: render --backend preview {cli_s:.3f} s, zoompan {zp_s:.3f} s; ratio (median of pairs) {ratio:.2f}"
          f" — goal ≤ 1.00; load(1/5/15 min) now {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    if args.keep is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/preview_vs_zoompan.py"))
