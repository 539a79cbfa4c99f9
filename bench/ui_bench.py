"""Studio benchmark: how long the app script takes to rerun after a chat turn, with 1,000 generations
in the database (AppTest, the same path a browser session takes, without the websocket).

Set-up: a fresh temp data folder; one real 0.5 s preview video; 1,000 finished generations (all
templates, statuses, backends), 40 of them in the conversation the studio opens, with its messages.
Measured: `at.chat_input[0].set_value(turn).run()` for alternating refinements ("slower hair",
"faster hair", "zoom in a bit", ...), auto-render off (the render itself runs in the runner's thread,
not in the script). Also: the first run of a new session (history rebuilt from the store) and a
gallery page rerun. Target: median chat-turn rerun <= 300 ms. Prints figures; asserts nothing.

Run: .venv/bin/python bench/ui_bench.py [--generations 1000] [--turns 30]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TURNS = [
    "slower hair, same seed",
    "faster hair",
    "zoom in a bit slower",
    "make it 2 seconds",
    "more wind",
    "make it 3 seconds",
    "subtler hair",
    "stronger hair",
]
TEMPLATES = ["fashion", "portrait_subtle", "portrait_dynamic", "animals", "landscape", "animation", "product", "abstract"]


def seed_store(home: Path, n: int, in_conversation: int) -> None:
    """`n` finished generations, `in_conversation` of them in one conversation with its chat messages."""
    import io

    from PIL import Image
    from skimage import data

    from agent.compiler import default_plan
    from generation.events import CancelToken
    from generation.preview import PreviewBackend
    from storage import open_store

    store = open_store(home=home)
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "PNG")
    image = store.add_image(buf.getvalue(), filename="astronaut.png")
    plan0 = default_plan("fashion", seed=1).with_changes(duration_s=0.5)
    video = PreviewBackend().generate(plan0, Image.open(image.path), cancel=CancelToken(),
                                      out_dir=store.media.root / "videos")
    conv = store.create_conversation("astronaut")
    store.append_message(conv.id, "system", "Picture: astronaut.png", plan0.to_dict(), {"kind": "image", "image_id": image.id})
    rng = random.Random(0)
    first_in_conv = n - in_conversation
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        plan = default_plan(template, seed=rng.randrange(2**31))
        in_conv = i >= first_in_conv
        if in_conv:
            plan = default_plan("fashion", seed=rng.randrange(2**31))
            store.append_message(conv.id, "user", f"turn {i}: slower hair")
            store.append_message(conv.id, "assistant", f"Hair slowed, seed {plan.seed} kept.", plan.to_dict(),
                                 {"kind": "chat", "diff": "hair speed 0.8 → 0.48", "template_lock": None})
        backend = "wan" if i % 5 == 0 else "preview"
        g = store.create_generation(conv.id if in_conv else None, plan.to_dict(), image.id, backend,
                                    "preview-warp-1" if backend == "preview" else "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
                                    width=624, height=624)
        if in_conv:
            store.append_message(conv.id, "system", f"#{g.id} queued ({backend})", plan.to_dict(),
                                 {"kind": "generation", "generation_id": g.id})
        status = "failed" if i % 11 == 0 else "cancelled" if i % 13 == 0 else "succeeded"
        if status == "cancelled":
            store.cancel_queued(g.id)
            continue
        store.claim_generation(g.id)
        if status == "failed":
            store.finish_generation(g.id, "failed", error="out of memory")
        else:
            store.finish_generation(g.id, "succeeded", video_path=video.video_path, thumbnail_path=video.thumbnail_path,
                                    timings={"render_s": 0.4, "total_s": 0.5})
    store.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--in-conversation", type=int, default=40)
    ap.add_argument("--turns", type=int, default=30)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["VIVIDFLOW_HOME"] = str(home)
        os.environ["VIVIDFLOW_BACKEND"] = "preview"
        os.chdir(ROOT)
        t = time.perf_counter()
        seed_store(home, args.generations, args.in_conversation)
        print(f"set-up: {args.generations} generations ({args.in_conversation} in the open conversation) "
              f"in {time.perf_counter() - t:.1f} s")

        from streamlit.testing.v1 import AppTest

        from ui.services import AUTO_RENDER

        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
        t = time.perf_counter()
        at.run()
        first = time.perf_counter() - t
        assert not at.exception, at.exception
        at.session_state[AUTO_RENDER] = False  # measure the script, not a render in the runner's thread
        at.run()
        times = []
        for i in range(args.turns):
            turn = TURNS[i % len(TURNS)]
            t = time.perf_counter()
            at.chat_input[0].set_value(turn).run()
            times.append(time.perf_counter() - t)
            if at.exception:
                raise SystemExit(f"the app raised on {turn!r}: {at.exception}")
        plain = []
        for _ in range(10):
            t = time.perf_counter()
            at.run()
            plain.append(time.perf_counter() - t)

        gallery = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
        gallery.run()
        gallery.switch_page("pages/gallery.py").run()
        gtimes = []
        for _ in range(10):
            t = time.perf_counter()
            gallery.run()
            gtimes.append(time.perf_counter() - t)

        med = statistics.median(times)
        print(f"first run of a new session (history rebuilt from the store): {first * 1000:.0f} ms")
        print(f"rerun after a chat turn: median {med * 1000:.0f} ms, p90 "
              f"{sorted(times)[int(0.9 * len(times)) - 1] * 1000:.0f} ms, min {min(times) * 1000:.0f} ms "
              f"over {len(times)} turns (target <= 300 ms: {'met' if med <= 0.3 else 'NOT met'})")
        print(f"plain rerun of the studio page: median {statistics.median(plain) * 1000:.0f} ms")
        print(f"gallery page rerun (12 cards of {args.generations}): median {statistics.median(gtimes) * 1000:.0f} ms")


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/ui_bench.py"))
