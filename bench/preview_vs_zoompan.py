"""The whole `python -m generation render --backend preview` process against ffmpeg's own `zoompan` filter,
side by side on the same picture: a 3 s 832×480 zoom-in clip (49 frames at 16 fps), H.264 with the same
settings (libx264, crf 20, preset veryfast, yuv420p), each a fresh process timed from start to exit.

Runs are paired (CLI then zoompan, or the other way round, alternating) so a busy moment of the shared machine
hits both; prints every pair, the medians, the ratio CLI / zoompan (median of the paired ratios) and the load.
Goal (#17 item 8): ratio ≤ 1.0.

    .venv/bin/python bench/preview_vs_zoompan.py [--repeats 7] [--keep DIR]

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


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} … failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    import imageio_ffmpeg

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", default=None, help="keep the picture, plan and videos in this folder")
    args = ap.parse_args()
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
    timed(cli, env), timed(zoompan, env)  # warm-up: bytecode caches, disk cache, the database's migrations
    pairs: list[tuple[float, float]] = []
    for r in range(args.repeats):
        if r % 2 == 0:
            a = timed(cli, env)
            b = timed(zoompan, env)
        else:
            b = timed(zoompan, env)
            a = timed(cli, env)
        pairs.append((a, b))
        print(f"  run {r + 1}: render --backend preview {a:6.3f} s   zoompan {b:6.3f} s   ratio {a / b:5.2f}   "
              f"load {os.getloadavg()[0]:.2f}")
    cli_s = statistics.median(a for a, _ in pairs)
    zp_s = statistics.median(b for _, b in pairs)
    ratio = statistics.median(a / b for a, b in pairs)
    load = os.getloadavg()
    print(f"median: render --backend preview {cli_s:.3f} s, zoompan {zp_s:.3f} s; ratio (median of pairs) {ratio:.2f}"
          f" — goal ≤ 1.00; load(1/5/15 min) now {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    if args.keep is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
