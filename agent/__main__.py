"""`python -m agent plan`: run the planner over a conversation read from stdin, one JSON line per turn.

    echo '{"turns": ["make her hair flow in the wind, slow zoom in", "slower hair, same seed"], "template": null}' \
        | python -m agent plan --rng-seed 7

Each line is {"plan": {...MotionPlan...}, "reply": "..."}; `--explain` adds "diff" and "edits".
`--planner qwen --model PATH [--gguf-file F]` uses agent.llm.make_planner (loaded only then).
`--input FILE` reads the conversation from a file instead of stdin (JSON of at most 1 MB, nested at most 32 deep).
Exit status: 0, 2 bad input (one line on stderr), 1 internal error (details in the log; `--debug` prints them).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
from typing import Any

from agent.plan import MAX_MESSAGE_CHARS, TEMPLATE_IDS
from vividflow.boundary import run_cli
from vividflow.errors import short
from vividflow.inputs import STDIN, InputError, parse_json, read_text

EXIT_USAGE = 2


def read_request(text: str, what: str = "stdin") -> tuple[list[str], str | None]:
    """{"turns": [str, ...], "template": null | template id} from JSON text, or InputError saying what is wrong."""
    data = parse_json(text, what=what)
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a JSON object with \"turns\", got {type(data).__name__}")
    unknown = sorted(set(data) - {"turns", "template"})
    if unknown:
        raise InputError(f"unknown keys {short(unknown)}: expected \"turns\" and optionally \"template\"")
    turns = data.get("turns")
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        raise InputError(f"\"turns\" must be a list of strings, got {short(turns)}")
    too_long = next((i for i, t in enumerate(turns) if len(t) > MAX_MESSAGE_CHARS), None)
    if too_long is not None:
        raise InputError(f"turn {too_long + 1} has {len(turns[too_long]):,} characters: a chat message can be at "
                         f"most {MAX_MESSAGE_CHARS:,}")
    template = data.get("template")
    if template is not None and template not in TEMPLATE_IDS:
        raise InputError(f"\"template\" must be null or one of {', '.join(TEMPLATE_IDS)}, got {short(template)}")
    return turns, template


def make_planner(args: argparse.Namespace) -> Any:
    if args.planner == "rules":
        from agent.rules import RulePlanner

        return RulePlanner()
    if not args.model:
        raise InputError("--planner qwen needs --model PATH (a Qwen2.5 folder, hub id or GGUF folder)")
    try:
        # import_module, not `from agent import`: it honours sys.modules, which tests use to stand in a planner
        llm = importlib.import_module("agent.llm")
    except ModuleNotFoundError as e:
        if e.name == "agent.llm":
            raise InputError("the LLM planner (agent/llm/) is not installed in this checkout; "
                             "use --planner rules") from None
        raise
    return llm.make_planner(model=args.model, gguf_file=args.gguf_file)


def cmd_plan(args: argparse.Namespace) -> int:
    from agent.session import new_conversation, plan_turn

    what = "stdin" if args.input == STDIN else "--input"
    turns, template = read_request(read_text(args.input, what=what, stdin=sys.stdin), what)
    planner = make_planner(args)
    rng = random.Random(args.rng_seed) if args.rng_seed is not None else random.Random()
    state = new_conversation(template=template)
    for message in turns:
        state, reply = plan_turn(state, message, planner=planner, rng=rng)
        line: dict[str, Any] = {"plan": state.plan.to_dict() if state.plan else None, "reply": reply.text}
        if args.explain:
            line["diff"] = reply.diff
            line["edits"] = [e.model_dump(mode="json") for e in reply.edits]
            line["planner"] = reply.planner
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description="VividFlow agent: chat turns → MotionPlan")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help='read {"turns": [...], "template": null} on stdin, print one JSON line per turn')
    p.add_argument("--rng-seed", type=int, default=None, help="seed the random source: the whole run is reproducible")
    p.add_argument("--planner", choices=("rules", "qwen"), default="rules")
    p.add_argument("--model", default=None, help="with --planner qwen: model folder or hub id")
    p.add_argument("--gguf-file", default=None, help="with --planner qwen: GGUF file name inside --model")
    p.add_argument("--explain", action="store_true", help="add the diff, the edits and the planner to each line")
    p.add_argument("--input", default=STDIN, help="read the conversation from this JSON file (default: stdin)")
    p.set_defaults(func=cmd_plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m agent …` through the error boundary (vividflow.boundary): an exit status."""
    return run_cli(cli, argv, prog="python -m agent")


def cli(argv: list[str]) -> int:
    """Parse `argv` and run the command; expected errors are raised (VividflowError), not printed."""
    args = build_parser().parse_args(argv)
    code = int(args.func(args))
    finish_llm(code)
    return code


def finish_llm(code: int) -> None:
    """Wait for LLM generations that outlived their deadline: a thread still inside torch at exit would abort
    the process (exit 134) after every answer was printed. One that does not stop ends the process here,
    with `code`, rather than abort."""
    decoding = sys.modules.get("agent.llm.decoding")  # loaded only when the LLM planner was used
    if decoding is not None and not decoding.finish_generations():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
