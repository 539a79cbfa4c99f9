"""The chat the LLM planner sends: a system prompt with every allowed operation (one example each, checked
by the tests against the grammar), two worked examples, then the plan, recent turns and the message."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.llm.config import LLMConfig
from agent.llm.grammar import GrammarSpec, allowed_ops, op_name
from agent.plan import CAMERA_MOVES, SUBJECTS, TEMPLATE_IDS

if TYPE_CHECKING:
    from agent.plan import MotionPlan

# One example per operation: shown to the model, and checked by the tests against the grammar.
OP_EXAMPLES: dict[str, tuple[str, str]] = {
    "set_template": ('{"op":"set_template","template":"animals"}', "switch the category"),
    "add_motion": ('{"op":"add_motion","subject":"hair","action":"flow in the wind","speed":1,"intensity":0.5}',
                   "make a subject move; speed 1 = normal pace, intensity 0-1"),
    "remove_motion": ('{"op":"remove_motion","subject":"hands"}', "stop a subject moving"),
    "scale_motion": ('{"op":"scale_motion","subject":"hair","speed_factor":0.6,"intensity_factor":1}',
                     "slower (<1) or faster (>1), subtler or stronger; subject \"all\" = every motion"),
    "set_camera": ('{"op":"set_camera","move":"zoom_in","speed":null}', "camera move; speed null keeps the pace"),
    "scale_camera": ('{"op":"scale_camera","factor":0.6}', "slower (<1) or faster (>1) camera"),
    "set_duration": ('{"op":"set_duration","seconds":4}', "clip length in seconds"),
    "set_steps": ('{"op":"set_steps","steps":8}', "more steps = higher quality, fewer = faster draft"),
    "set_guidance": ('{"op":"set_guidance","high":3.5,"low":3}', "guidance scale of the two experts"),
    "seed": ('{"op":"seed","policy":"same","value":null}', "seed: same, new, or explicit with a value"),
    "add_negative": ('{"op":"add_negative","terms":["hands"]}', "things to keep out of the video"),
    "remove_negative": ('{"op":"remove_negative","terms":["hands"]}', "stop avoiding something added before"),
    "add_atmosphere": ('{"op":"add_atmosphere","items":["fog"]}', "add wind, fog, golden hour light ..."),
    "remove_atmosphere": ('{"op":"remove_atmosphere","items":["fog"]}', "remove an atmosphere item"),
    "set_prompt": ('{"op":"set_prompt","text":null}', "use a typed prompt"),
    # long videos, story, smoother (#12 §2 §4 §5)
    "set_output_fps": ('{"op":"set_output_fps","fps":32}', "smoother: interpolate to 32 fps; null = no interpolation"),
    "set_upscale": ('{"op":"set_upscale","factor":null,"height":720}',
                    "larger on export: factor 2 = twice as large, or height 720 = 720p; both null = original size"),
    "set_story": ('{"op":"set_story","order":[1,2,3]}', "story mode: the uploaded pictures in visiting order; [] = off"),
    "scale_transition": ('{"op":"scale_transition","index":2,"factor":0.6}',
                         "story: transition 2 (picture 2 to 3) slower (<1) or faster (>1)"),
    "undo": ('{"op":"undo"}', "back to the previous plan"),
    "reset": ('{"op":"reset"}', "start over"),
    "recall": ('{"op":"recall","generation_id":12,"index":null,"query":null}',
               "start from an earlier video: #12, or index 1, 2, -1 = last, or query \"cat\" = the cat video"),
    # end frame, loop, variations (#12 §1, §3)
    "end_frame": ('{"op":"end_frame","on":true}', "end on the uploaded end picture (false: don't)"),
    "loop": ('{"op":"loop","on":true}', "seamless loop: the last frame returns to the first (false: no loop)"),
    "variations": ('{"op":"variations","count":4}', "several clips with different seeds in one batch (1 = one)"),
    "pick": ('{"op":"pick","index":3}', "take clip 3 of the last batch of variations"),
}

FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("make the water ripple slowly and pan to the right",
     '[{"op":"add_motion","subject":"water","action":"ripple","speed":0.6,"intensity":0.5},'
     '{"op":"set_camera","move":"pan_right","speed":null}]'),
    ("slower hair, same seed",
     '[{"op":"scale_motion","subject":"hair","speed_factor":0.6,"intensity_factor":1},'
     '{"op":"seed","policy":"same","value":null}]'),
)


def system_prompt(spec: GrammarSpec, *, template_locked: bool = False) -> str:
    ops = [op_name(c) for c in allowed_ops(spec, template_locked=template_locked)]
    lines = [
        "You edit the motion plan of a short image-to-video clip. Read the person's message and answer only "
        "with a JSON list of edit operations, [] when nothing should change. Change only what the message asks for.",
        "Operations (write every key, in this order; null where no value is given):",
    ]
    lines += [f"{OP_EXAMPLES[op][0]} - {OP_EXAMPLES[op][1]}" for op in ops]
    lines += [
        f"Subjects: {', '.join(SUBJECTS)}.",
        f"Camera moves: {', '.join(CAMERA_MOVES)}.",
        "Slower = factor 0.6, much slower 0.4, faster 1.5, much faster 2.",
    ]
    if "set_template" in ops:
        lines.append(f"Templates: {', '.join(TEMPLATE_IDS)}.")
    else:
        lines.append("The template was chosen by the person: do not change it.")
    return "\n".join(lines)


def plan_summary(plan: MotionPlan | None) -> str:
    """The plan as compact JSON for the model (the long prompt texts left out)."""
    if plan is None:
        return "none yet"
    data = plan.to_dict()
    keep = ("template", "motions", "camera", "atmosphere", "duration_s", "steps", "guidance_scale",
            "guidance_scale_2", "seed", "negative_terms", "loop", "variations")
    return json.dumps({k: data[k] for k in keep if k in data}, separators=(",", ":"))


def user_content(message: str, plan: MotionPlan | None, history: Sequence[tuple[str, str]], turns: int) -> str:
    parts = [f"Plan: {plan_summary(plan)}"]
    recent = list(history)[-turns:] if turns else []
    if recent:
        parts.append("Earlier: " + " | ".join(f"{role}: {text}" for role, text in recent))
    parts.append(f"Message: {message}")
    return "\n".join(parts)


def build_messages(
    message: str,
    plan: MotionPlan | None,
    *,
    history: Sequence[tuple[str, str]] = (),
    template_locked: bool = False,
    config: LLMConfig = LLMConfig(),
) -> list[dict[str, str]]:
    """The chat: system (operations, schema), two worked examples, then the plan, recent turns, the message."""
    messages = [{"role": "system", "content": system_prompt(config.grammar, template_locked=template_locked)}]
    for example, answer in FEW_SHOT:
        messages.append({"role": "user", "content": f"Plan: {{...}}\nMessage: {example}"})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": user_content(message, plan, history, config.history_turns)})
    return messages
