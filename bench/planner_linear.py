"""The rule planner's time against the message length: realistic chat messages (the conversation tables'
turns, shuffled) joined into messages of 1k, 2k, 4k, 8k and 16k characters, each parsed `--rounds` times;
prints the median ms per size, ms per 1,000 characters (flat when the time is linear) and the 4,000-character
median against its target (≤ 20 ms). A few adversarial shapes (one word repeated without punctuation, typos,
digits) show the same growth. Prints the figures and the machine's load; asserts nothing.

    .venv/bin/python bench/planner_linear.py [--rounds N] [--sizes 1000,2000,...]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_4K_MS = 20.0
SIZES = (1000, 2000, 4000, 8000, 16000)
SHAPES = {  # adversarial: one long clause, or many tiny ones
    "one word repeated": "hair ",
    "typos": "slowy hiar watr zooom ",
    "numbers": "3 seconds 12 steps seed 4 ",
    "negations": "no text or logos, ",
}


def realistic(size: int, seed: int) -> str:
    """Chat messages from the conversation tables, shuffled and joined, cut at `size` characters."""
    from devtools.conversations import CONVERSATIONS

    said = [t.say for c in CONVERSATIONS for t in c.turns]
    random.Random(seed).shuffle(said)
    text = ". ".join(said)
    while len(text) < size:
        text += ". " + text
    return text[:size]


def median_ms(message: str, rounds: int, clock=time.perf_counter) -> float:
    """Median ms of `rounds` parses by `clock` (wall time; `time.process_time` for CPU time, which another
    process's load on a shared machine disturbs much less)."""
    from agent.rules import parse

    times = []
    for _ in range(rounds):
        t0 = clock()
        parse(message, None)
        times.append((clock() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="parses per message (median taken)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="message lengths in characters")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    from agent.rules import parse

    parse("a dog on the beach, slow zoom in", None)  # warm-up: regexes compiled, spelling index built
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print("realistic messages (3 different texts per size, median of the medians):")
    per_size, cpu_size = {}, {}
    for size in sizes:
        per_size[size] = statistics.median(median_ms(realistic(size, seed), args.rounds) for seed in range(3))
        cpu_size[size] = statistics.median(median_ms(realistic(size, seed), args.rounds, time.process_time)
                                           for seed in range(3))
        print(f"  {size:>6} chars: {per_size[size]:7.2f} ms wall, {cpu_size[size]:7.2f} ms CPU   "
              f"({cpu_size[size] / size * 1000:.2f} CPU ms per 1,000 chars)")
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"  growth {lo}→{hi} chars: ×{per_size[hi] / per_size[lo]:.1f} wall, ×{cpu_size[hi] / cpu_size[lo]:.1f} CPU "
              f"time for ×{hi / lo:.0f} length")
    if 4000 in per_size:
        verdict = "meets" if per_size[4000] <= TARGET_4K_MS else "MISSES"
        cpu = cpu_size[4000]
        print(f"4,000-char message: median {per_size[4000]:.2f} ms wall "
              f"({verdict} the ≤ {TARGET_4K_MS:g} ms target), "
              f"{cpu:.2f} ms CPU time")
    for name, unit in SHAPES.items():
        figures = [median_ms((unit * (size // len(unit) + 1))[:size], max(3, args.rounds // 2)) for size in sizes]
        print(f"{name:>18}: " + "  ".join(f"{s}:{ms:.1f} ms" for s, ms in zip(sizes, figures)))


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/planner_linear.py"))
