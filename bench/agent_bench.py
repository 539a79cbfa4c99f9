"""Agent timings: median ms per planner turn (target ≤ 2 ms) and the wall time of `python -m agent plan`
for a 3-turn conversation (target < 1 s). Prints the figures; asserts nothing.

    .venv/bin/python bench/agent_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THREE_TURNS = ["make her hair flow in the wind, slow zoom in", "slower hair, same seed", "make it 12 seconds"]


def bench_turns(rounds: int) -> dict[str, float]:
    from agent.rules import parse
    from agent.session import plan_turn
    from devtools.conversations import CONVERSATIONS

    messages = [t.say for c in CONVERSATIONS for t in c.turns]
    # warm-up: templates loaded, regexes compiled
    from agent.session import new_conversation

    plan_turn(new_conversation(), "a dog", rng=random.Random(0))

    parse_ms, turn_ms = [], []
    for _ in range(rounds):
        for case in CONVERSATIONS:
            state, rng = new_conversation(template=case.template), random.Random(1)
            for turn in case.turns:
                t0 = time.perf_counter()
                parse(turn.say, state.plan, history=state.turns, template_locked=state.template_locked)
                t1 = time.perf_counter()
                state, _ = plan_turn(state, turn.say, rng=rng)
                t2 = time.perf_counter()
                parse_ms.append((t1 - t0) * 1000)
                turn_ms.append((t2 - t1) * 1000)
    return {
        "messages": len(messages),
        "samples": len(turn_ms),
        "parse_median_ms": statistics.median(parse_ms),
        "turn_median_ms": statistics.median(turn_ms),
        "turn_p95_ms": statistics.quantiles(turn_ms, n=20)[18],
        "turn_max_ms": max(turn_ms),
    }


def bench_cli(runs: int) -> dict[str, float]:
    payload = json.dumps({"turns": THREE_TURNS, "template": None})
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "agent", "plan", "--rng-seed", "1"], input=payload,
                           capture_output=True, text=True, cwd=ROOT)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"python -m agent plan failed: {p.stderr}")
    return {"cli_runs": runs, "cli_median_s": statistics.median(walls), "cli_max_s": max(walls)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5, help="passes over all test conversations")
    ap.add_argument("--cli-runs", type=int, default=5)
    args = ap.parse_args(argv)
    turns = bench_turns(args.rounds)
    cli = bench_cli(args.cli_runs)
    print(f"planner turn (plan_turn, rules): median {turns['turn_median_ms']:.2f} ms, p95 {turns['turn_p95_ms']:.2f} ms, "
          f"max {turns['turn_max_ms']:.2f} ms over {turns['samples']} turns (target ≤ 2 ms median)")
    print(f"rule parse alone: median {turns['parse_median_ms']:.2f} ms")
    print(f"python -m agent plan, 3 turns: median {cli['cli_median_s']:.3f} s, max {cli['cli_max_s']:.3f} s "
          f"over {cli['cli_runs']} runs (target < 1 s)")


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/agent_bench.py"))
