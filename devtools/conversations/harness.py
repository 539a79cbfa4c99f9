"""Conversations with machine-checkable expected outcomes, shared by the tests and bench/ (the cases are in
`devtools.conversations.cases`; this module is the harness).

    from devtools.conversations import CONVERSATIONS, run_case, check, failures
    states, replies = run_case(case, planner=my_planner)     # plan_turn turn by turn (rng seeded)
    ok = check(case, states, replies)                         # True when every turn meets its expectations
    why = failures(case, states, replies)                     # the reasons when not

A `Case` is a list of `Turn`s. Each turn says, for the plan after it:
- `expect`: path -> expected value. Paths: "template", "motions.<subject>" ("present"/"absent"),
  "motions.<subject>.action|speed|intensity", "camera.move", "camera.speed", "atmosphere", "duration_s",
  "num_frames", "steps", "guidance_scale", "guidance_scale_2", "seed", "seed_policy", "negative_terms",
  "prompt_override", "prompt", "negative_prompt", and "reply" (the reply text). Values: a plain value
  (equality, floats to 1e-6), or a tuple (op, operand) with op one of "<", "<=", ">", ">=", "==", "!=" (the
  operand may be "prev": the same path before this turn), "has"/"lacks" (an item of a tuple field),
  "contains"/"excludes" (a substring, case-insensitive, of a text field).
- `changed`: patterns of the plan keys that change in this turn; every other key must stay equal. A
  pattern is a flat key ("duration_s", "motions.hair.speed", "camera.move") or has a glob ("motions.tail.*",
  "motions.*"); a trailing "?" makes it optional (may change). A pattern without "?" must match at least one
  changed key. The keys compared are the plan's fields except the derived ones (prompt, negative_prompt,
  num_frames). On a first turn "before" is the chosen template's default plan with the plan's own seed.
- "plan": ABSENT in `expect` says the conversation must still have no plan after this turn (a first message
  that only asks a question); only "reply" is checked besides.
- `render`: after this turn, record a generation of the plan (id = case.first_generation_id + count), with
  the turn's text as its label, so later turns can say "the second one", "#12", "the cat video".
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from agent.plan import MotionPlan

Expect = dict[str, Any]


@dataclass(frozen=True)
class Turn:
    say: str
    expect: Expect = field(default_factory=dict)
    changed: tuple[str, ...] = ()
    render: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    turns: tuple[Turn, ...]
    template: str | None = None  # a template locked in the app
    first_generation_id: int = 1
    tags: tuple[str, ...] = ()
    pictures: int = 0  # story mode: pictures uploaded before the first turn (keys PICTURE_KEYS[:pictures])
    end_upload: str | None = None  # an end picture uploaded before the first turn (its media key, #12 §1)


PICTURE_KEYS = tuple(c * 64 for c in "abcdef")  # stand-ins for the sha256 of six stored pictures


def T(say: str, expect: Expect | None = None, changed: Sequence[str] = (), render: bool = False) -> Turn:
    return Turn(say=say, expect=dict(expect or {}), changed=tuple(changed), render=render)


def C(name: str, *turns: Turn, template: str | None = None, first_generation_id: int = 1,
      tags: Sequence[str] = (), pictures: int = 0, end_upload: str | None = None) -> Case:
    return Case(name=name, turns=tuple(turns), template=template, first_generation_id=first_generation_id,
                tags=tuple(tags), pictures=pictures, end_upload=end_upload)


ABSENT = "absent"
PRESENT = "present"
LT_PREV = ("<", "prev")
GT_PREV = (">", "prev")
SAME = ("==", "prev")

# Every key a template switch may touch.
SWITCH = ("template", "motions.*?", "camera.*?", "atmosphere?", "duration_s?", "steps?", "guidance_scale?",
          "guidance_scale_2?")


# --- running and checking -------------------------------------------------------------------------------

_MOTION_FIELDS = ("action", "speed", "intensity")


def flatten(plan: MotionPlan) -> dict[str, Any]:
    """The comparable keys of a plan (derived prompt, negative_prompt and num_frames left out)."""
    out: dict[str, Any] = {"template": plan.template}
    for m in plan.motions:
        for f in _MOTION_FIELDS:
            out[f"motions.{m.subject}.{f}"] = getattr(m, f)
    out.update({
        "camera.move": plan.camera.move, "camera.speed": plan.camera.speed, "atmosphere": tuple(plan.atmosphere),
        "duration_s": plan.duration_s, "steps": plan.steps, "guidance_scale": plan.guidance_scale,
        "guidance_scale_2": plan.guidance_scale_2, "seed": plan.seed, "seed_policy": plan.seed_policy,
        "negative_terms": tuple(plan.negative_terms), "prompt_override": plan.prompt_override,
        # long videos, story, smoother (#12 §2 §4 §5)
        "output_fps": plan.output_fps, "upscale": plan.upscale.describe() if plan.upscale else None,
        "story_images": tuple(plan.story_images),
        "end_image": plan.end_image, "loop": plan.loop, "variations": plan.variations,  # #12 §1, §3
    })
    for i, t in enumerate(plan.transitions, start=1):
        out[f"transitions.{i}.pace"] = t.pace
    return out


def value(plan: MotionPlan, path: str) -> Any:
    if path.startswith("motions."):
        parts = path.split(".")
        m = plan.motion(parts[1])
        if len(parts) == 2:
            return m
        return getattr(m, parts[2]) if m is not None else None
    if path.startswith("camera."):
        return getattr(plan.camera, path.split(".")[1])
    if path in ("upscale", "story_images") or path.startswith("transitions."):
        return flatten(plan).get(path)
    return getattr(plan, path)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-6
    return a == b


def _check_value(path: str, actual: Any, expected: Any, before: Any) -> str | None:
    if expected == PRESENT:
        return None if actual is not None else f"{path}: expected present, is absent"
    if expected == ABSENT:
        return None if actual is None else f"{path}: expected absent, is {actual}"
    if not isinstance(expected, tuple):
        return None if _equal(actual, expected) else f"{path}: expected {expected!r}, got {actual!r}"
    op, operand = expected
    if operand == "prev":
        operand = before
    if op in ("has", "lacks"):
        inside = operand in tuple(actual or ())
        ok = inside if op == "has" else not inside
        return None if ok else f"{path}: expected {op} {operand!r}, got {actual!r}"
    if op in ("contains", "excludes"):
        inside = str(operand).lower() in str(actual or "").lower()
        ok = inside if op == "contains" else not inside
        return None if ok else f"{path}: expected to {op[:-1]} {operand!r}, got {actual!r}"
    if actual is None or operand is None:
        return f"{path}: cannot compare {actual!r} {op} {operand!r}"
    ok = {"<": actual < operand, "<=": actual <= operand, ">": actual > operand, ">=": actual >= operand,
          "==": _equal(actual, operand), "!=": not _equal(actual, operand)}[op]
    return None if ok else f"{path}: expected {op} {operand!r}, got {actual!r}"


def _changed_keys(before: MotionPlan, after: MotionPlan) -> set[str]:
    a, b = flatten(before), flatten(after)
    return {k for k in set(a) | set(b) if not _equal(a.get(k), b.get(k))}


def _check_changes(changed: set[str], patterns: Sequence[str]) -> list[str]:
    problems = []
    plain = [p.rstrip("?") for p in patterns]
    for key in sorted(changed):
        if not any(fnmatch.fnmatchcase(key, p) for p in plain):
            problems.append(f"{key} changed but should not have")
    for p in patterns:
        if not p.endswith("?") and not any(fnmatch.fnmatchcase(k, p) for k in changed):
            problems.append(f"{p} should have changed but did not")
    return problems


def run_case(case: Case, planner: Any = None, rng_seed: int = 1234) -> tuple[list[Any], list[Any]]:
    """Run a case through agent.session.plan_turn (no store: generations are kept in the state)."""
    from agent.session import new_conversation, plan_turn

    rng = random.Random(rng_seed)
    from agent.end_and_batch import batch_plans

    state = new_conversation(template=case.template)
    if case.pictures:
        state = state.with_story_pictures(PICTURE_KEYS[:case.pictures])
    if case.end_upload is not None:
        state = state.with_end_upload(case.end_upload, "end.png")
    states, replies = [], []
    next_id = case.first_generation_id
    for turn in case.turns:
        state, reply = plan_turn(state, turn.say, planner=planner, rng=rng)
        if turn.render and state.plan is not None:
            batch = f"batch-{next_id}" if state.plan.variations > 1 else None  # a batch: one record per clip
            for plan in batch_plans(state.plan):
                state = state.with_generation(next_id, plan, label=turn.say, batch_id=batch)
                next_id += 1
        states.append(state)
        replies.append(reply)
    return states, replies


def failures(case: Case, states: Sequence[Any], replies: Sequence[Any] | None = None) -> list[str]:
    """Why a run of `case` (its states, and replies for "reply" checks) misses its expectations; [] = passed."""
    from agent.compiler import default_plan

    problems: list[str] = []
    if len(states) != len(case.turns):
        return [f"{len(states)} states for {len(case.turns)} turns"]
    previous: MotionPlan | None = None
    for i, (turn, state) in enumerate(zip(case.turns, states)):
        plan = state.plan
        where = f"turn {i + 1} ({turn.say!r})"
        if turn.expect.get("plan") == ABSENT:  # a first message that plans nothing (a question)
            if plan is not None:
                problems.append(f"{where}: plan: expected none yet, got one")
            reply = str(replies[i]) if replies is not None else ""
            for op_value in [v for k, v in turn.expect.items() if k == "reply"]:
                problems += [f"{where}: {p}" for p in [_check_value("reply", reply, op_value, None)] if p]
            continue
        if plan is None:
            problems.append(f"{where}: no plan")
            continue
        before = previous
        if before is None:
            before = default_plan(plan.template, seed=plan.seed)
        for path, expected in turn.expect.items():
            if path == "reply":
                if replies is None:
                    continue
                actual, prev_value = str(replies[i]), None
            else:
                actual, prev_value = value(plan, path), value(before, path)
                if path.startswith("motions.") and path.count(".") == 1 and expected not in (PRESENT, ABSENT):
                    problems.append(f"{where}: {path} takes 'present' or 'absent'")
                    continue
            problem = _check_value(path, actual, expected, prev_value)
            if problem:
                problems.append(f"{where}: {problem}")
        problems += [f"{where}: {p}" for p in _check_changes(_changed_keys(before, plan), turn.changed)]
        previous = plan
    return problems


def check(case: Case, states: Sequence[Any], replies: Sequence[Any] | None = None) -> bool:
    """True when the run meets every expectation of the case."""
    return not failures(case, states, replies)
