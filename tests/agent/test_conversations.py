"""The shared conversation table, run through the rule planner: every case must pass exactly."""

from __future__ import annotations

import dataclasses

import pytest

from typing import get_args

from agent.edits import Edit
from devtools.conversations import ABSENT, CONVERSATIONS, C, T, check, failures, run_case

ALL_OPS = {get_args(m.model_fields["op"].annotation)[0] for m in get_args(get_args(Edit)[0])}


@pytest.mark.parametrize("case", CONVERSATIONS, ids=[c.name for c in CONVERSATIONS])
def test_conversation(case):
    states, replies = run_case(case)
    assert failures(case, states, replies) == []
    for turn, state in zip(case.turns, states):  # every plan on the way is a valid, compiled plan
        if turn.expect.get("plan") == ABSENT:  # a first message that only asked something
            assert state.plan is None
            continue
        assert state.plan is not None and state.plan.prompt and state.plan.negative_prompt


def test_there_are_at_least_80_conversations_with_single_and_multi_turn():
    assert len(CONVERSATIONS) >= 80
    assert any(len(c.turns) == 1 for c in CONVERSATIONS)
    assert sum(len(c.turns) >= 3 for c in CONVERSATIONS) >= 10
    assert len({c.name for c in CONVERSATIONS}) == len(CONVERSATIONS)


def test_every_edit_kind_is_exercised():
    seen = set()
    for case in CONVERSATIONS:
        _, replies = run_case(case)
        seen |= {e.op for r in replies for e in r.edits}
    assert ALL_OPS == {"set_template", "add_motion", "remove_motion", "scale_motion", "set_camera", "scale_camera",
                       "set_duration", "set_steps", "set_guidance", "seed", "add_negative", "remove_negative", "add_atmosphere",
                       "remove_atmosphere", "set_prompt", "undo", "reset", "recall",
                       "set_output_fps", "set_upscale", "set_story", "scale_transition",  # #12 §2 §4 §5
                       "end_frame", "loop", "variations", "pick"}  # end frame, loop, variations (#12 §1, §3)
    assert seen == ALL_OPS


def test_every_turn_states_what_changes():
    # a turn without `changed` patterns must mean "nothing changes"; that is asserted, never skipped
    case = C("x", T("a dog", {}, []), T("slower tail", {}, []))
    states, replies = run_case(case)
    assert any("motions.tail.speed changed but should not have" in f for f in failures(case, states, replies))


def test_check_catches_a_wrong_outcome():
    case = next(c for c in CONVERSATIONS if c.name.startswith("issue: hair in the wind"))
    states, replies = run_case(case)
    assert check(case, states, replies)
    # the same hair speed as before breaks "strictly lower"; a changed duration breaks "others did not change"
    first, second = states
    slow = second.plan.motion("hair")
    bad_plan = second.plan.with_changes(
        motions=tuple(m if m.subject != "hair" else m.model_copy(update={"speed": first.plan.motion("hair").speed})
                      for m in second.plan.motions),
        duration_s=4.0,
    )
    assert slow is not None
    bad = [first, dataclasses.replace(second, plan=bad_plan)]
    problems = failures(case, bad, replies)
    assert any("motions.hair.speed" in p for p in problems)
    assert any("duration_s changed" in p for p in problems)
    assert not check(case, bad, replies)


def test_check_reports_missing_turns():
    case = CONVERSATIONS[0]
    assert failures(case, [], []) == [f"0 states for {len(case.turns)} turns"]


def test_run_case_is_reproducible():
    case = next(c for c in CONVERSATIONS if c.name == "seed: new seed")
    a, _ = run_case(case, rng_seed=5)
    b, _ = run_case(case, rng_seed=5)
    assert [s.plan for s in a] == [s.plan for s in b]
