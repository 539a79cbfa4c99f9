"""Storage benchmark: a fresh temp store with 10,000 generations, then
- the median time of one gallery page (50 items, one filter: template), target <= 20 ms;
- the median time of inserting one generation (create_generation), target <= 5 ms.

Prints the figures (and a few more filters for context); asserts nothing.
Run: .venv/bin/python bench/storage_bench.py [--rows 10000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from storage import open_store  # noqa: E402
from storage.models import Generation  # noqa: E402
from storage.validation import plan_columns  # noqa: E402

TEMPLATES = ["fashion", "portrait_subtle", "portrait_dynamic", "animals", "landscape", "animation", "product", "abstract"]
STATUSES = ["succeeded"] * 7 + ["failed", "cancelled"]
WORDS = "hair flows wind waves roll clouds drift camera zooms slowly golden light fog the dog wags tail".split()


def make_plan(rng: random.Random) -> dict:
    duration = rng.choice([0.5, 1.0, 2.0, 3.0, 5.0])
    return {
        "template": rng.choice(TEMPLATES),
        "motions": [{"subject": "hair", "action": "flow", "speed": 1.0, "intensity": 0.5}],
        "camera": {"move": "static", "speed": 1.0},
        "atmosphere": ["wind"],
        "duration_s": duration,
        "fps": 16,
        "num_frames": 4 * round(duration * 16 / 4) + 1,
        "steps": rng.choice([4, 6, 8]),
        "guidance_scale": 1.0,
        "guidance_scale_2": 1.0,
        "seed": rng.randrange(2**31),
        "prompt": " ".join(rng.choice(WORDS) for _ in range(30)),
        "negative_prompt": "blurry, static",
    }


def fill(store, rows: int, rng: random.Random) -> None:
    """Bulk-insert ``rows`` finished generations spread over the last 90 days (setup, not measured)."""
    conv = store.create_conversation("bench")
    start = datetime.now(UTC) - timedelta(days=90)
    batch = []
    for i in range(rows):
        plan = make_plan(rng)
        created = start + timedelta(seconds=i * 90 * 86400 / rows)
        batch.append(
            {
                "conversation_id": conv.id,
                "plan": plan,
                "backend": rng.choice(["wan", "preview"]),
                "model_id": "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
                "status": rng.choice(STATUSES),
                "attempts": 1,
                "cancel_requested": False,
                "params": {"lora": [{"id": "lightx2v", "scale": 1.0}], "quantization": "int8wo"},
                "video_path": f"ab/{i:064x}.mp4",
                "created_at": created,
                "started_at": created,
                "finished_at": created + timedelta(seconds=30),
                **plan_columns(plan),
            }
        )
    with store._write() as s:  # the bench may reach inside: setup speed is not what we measure
        s.execute(insert(Generation), batch)


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args(argv)
    rng = random.Random(0)

    with tempfile.TemporaryDirectory() as home:
        store = open_store(home=home)
        t0 = time.perf_counter()
        fill(store, args.rows, rng)
        print(f"filled {store.counts()['generations']} generations in {time.perf_counter() - t0:.1f} s ({store.url})")

        page = store.list_gallery(template="landscape")
        assert len(page.items) == 50, "the bench needs a full page"
        gallery = median_ms(lambda: store.list_gallery(template="landscape", page_size=50), args.repeat)
        print(f"gallery page (50 items, template filter): median {gallery:.2f} ms  (target <= 20 ms)  total={page.total}")

        others = {
            "no filter": {},
            "status": {"status": "failed"},
            "seed": {"seed": page.items[0].seed},
            "text": {"text": "golden light"},
            "date range": {"created_from": datetime.now(UTC) - timedelta(days=30), "created_to": datetime.now(UTC)},
            "template, page 20": {"template": "landscape", "page": 20},
        }
        for name, kw in others.items():
            ms = median_ms(lambda kw=kw: store.list_gallery(**kw), args.repeat)
            print(f"  gallery page, {name:<18} median {ms:.2f} ms")

        conv = store.create_conversation("inserts")
        plans = [make_plan(rng) for _ in range(args.repeat)]
        it = iter(plans)
        insert_ms = median_ms(
            lambda: store.create_generation(conv.id, next(it), None, "wan", "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
                                            params={"quantization": "int8wo"}),
            args.repeat,
        )
        print(f"insert one generation: median {insert_ms:.2f} ms  (target <= 5 ms)")
        store.close()
    return 0


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/storage_bench.py"))
