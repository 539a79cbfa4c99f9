"""The plan panel: every field of the current MotionPlan as a widget; every change is an edit value.

Widgets hold their values in `st.session_state` under `pp.*` keys. Whenever the plan changed somewhere
else (a chat turn, undo, a branch from the gallery), `sync` writes the plan into those keys before the
widgets are drawn, so the panel always shows the plan; a widget's `on_change` turns its new value into
an edit (`SetDuration`, `AddMotion`, …) and hands it to the studio, which applies it and records it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import streamlit as st

from agent.compiler import compile_prompt
from agent.edits import (
    AddMotion,
    AddNegative,
    RemoveMotion,
    RemoveNegative,
    SetCamera,
    SetDuration,
    SetGuidance,
    SetPrompt,
    SetSeed,
    SetSteps,
    SetTemplate,
)
from agent.plan import CAMERA_MOVES, FPS, LIMITS, MAX_SEED, SUBJECTS, TEMPLATE_IDS, MotionPlan
from agent.wording import GUIDANCE_LABELS

from ui.format import plain, template_title
from ui.widgets import is_current, scoped
from vividflow.studio import Studio

K = "pp."  # widget key prefix (scoped per conversation: ui.widgets.scoped)
SYNCED = "pp._synced_plan"
CAMERA_LABELS = {m: m.replace("_", " ") for m in CAMERA_MOVES}


def _key(*parts: str) -> str:
    return scoped(K + ".".join(parts))


def reset() -> None:
    """Forget the panel's own state (another conversation opens; its widgets get new keys through
    `ui.widgets.new_scope`): the next run syncs the new plan into them."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(K + "_")]:
        del st.session_state[key]


def _current_only(callback: Callable[..., None]) -> Callable[..., None]:
    """A widget callback that does nothing when its studio is not the open one any more (a widget of the
    previous conversation whose stale value the browser sent once more)."""

    @functools.wraps(callback)
    def run(studio: Studio, *args: Any) -> None:
        if is_current(studio):
            callback(studio, *args)

    return run


def sync(plan: MotionPlan, template_locked: bool) -> None:
    """Write `plan` into the widget keys when it is not what the widgets were last synced to."""
    state = st.session_state
    if state.get(SYNCED) == (plan, template_locked):
        return
    state[_key("template")] = plan.template
    for m in plan.motions:
        state[_key("motion", m.subject, "action")] = m.action
        state[_key("motion", m.subject, "speed")] = float(m.speed)
        state[_key("motion", m.subject, "intensity")] = float(m.intensity)
    state[_key("camera", "move")] = plan.camera.move
    state[_key("camera", "speed")] = float(plan.camera.speed)
    state[_key("duration")] = float(plan.duration_s)
    state[_key("steps")] = int(plan.steps)
    state[_key("guidance_high")] = float(plan.guidance_scale)
    state[_key("guidance_low")] = float(plan.guidance_scale_2)
    state[_key("seed")] = int(plan.seed)
    state[_key("seed_lock")] = plan.seed_policy != "new"
    state[_key("avoid")] = ", ".join(plan.negative_terms)
    state[_key("prompt")] = plan.prompt
    state[SYNCED] = (plan, template_locked)


def _apply(studio: Studio, edits: list[Any], *, lock_template: bool = False) -> None:
    try:
        diff, notes = studio.edit(edits, lock_template=lock_template)
    except ValueError as e:  # PlanError / pydantic validation of the edit: show it, keep the plan
        st.session_state["pp._error"] = str(e)
        return
    st.session_state.pop("pp._error", None)
    if notes:
        st.session_state["pp._notes"] = "; ".join(notes)
    if diff:
        st.toast(f"Plan: {plain(diff)}")


# --- callbacks: widget value -> edit value -------------------------------------------------------


@_current_only
def _on_template(studio: Studio) -> None:
    _apply(studio, [SetTemplate(template=st.session_state[_key("template")])], lock_template=True)


@_current_only
def _on_motion(studio: Studio, subject: str) -> None:
    s = st.session_state
    action = (s.get(_key("motion", subject, "action")) or "").strip()
    current = studio.plan.motion(subject)
    if not action and current is not None:
        action = current.action
    _apply(
        studio,
        [
            AddMotion(
                subject=subject,
                action=action or "move",
                speed=float(s[_key("motion", subject, "speed")]),
                intensity=float(s[_key("motion", subject, "intensity")]),
            )
        ],
    )


@_current_only
def _on_remove_motion(studio: Studio, subject: str) -> None:
    _apply(studio, [RemoveMotion(subject=subject)])


@_current_only
def _on_add_motion(studio: Studio) -> None:
    s = st.session_state
    subject = s.get(_key("new_motion", "subject"))
    action = (s.get(_key("new_motion", "action")) or "").strip()
    if not subject:
        return
    _apply(studio, [AddMotion(subject=subject, action=action or "move gently")])
    s[_key("new_motion", "action")] = ""


@_current_only
def _on_camera(studio: Studio) -> None:
    s = st.session_state
    _apply(studio, [SetCamera(move=s[_key("camera", "move")], speed=float(s[_key("camera", "speed")]))])


@_current_only
def _on_duration(studio: Studio) -> None:
    _apply(studio, [SetDuration(seconds=float(st.session_state[_key("duration")]))])


@_current_only
def _on_steps(studio: Studio) -> None:
    _apply(studio, [SetSteps(steps=int(st.session_state[_key("steps")]))])


@_current_only
def _on_guidance(studio: Studio) -> None:
    s = st.session_state
    _apply(studio, [SetGuidance(high=float(s[_key("guidance_high")]), low=float(s[_key("guidance_low")]))])


@_current_only
def _on_seed(studio: Studio) -> None:
    _apply(studio, [SetSeed(policy="explicit", value=int(st.session_state[_key("seed")]))])


@_current_only
def _on_seed_lock(studio: Studio) -> None:
    locked = bool(st.session_state[_key("seed_lock")])
    if locked:
        _apply(studio, [SetSeed(policy="same")])
    else:
        # unlocking: the seed stays for now; the next Generate after a render draws a fresh one
        studio.replace_plan(studio.plan.with_changes(seed_policy="new"))


@_current_only
def _on_new_seed(studio: Studio) -> None:
    _apply(studio, [SetSeed(policy="new")])


@_current_only
def _on_avoid(studio: Studio) -> None:
    text = st.session_state[_key("avoid")] or ""
    wanted = list(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    have = list(studio.plan.negative_terms)
    dropped = [t for t in have if t not in wanted]
    added = [t for t in wanted if t not in have]
    try:  # an edit holds at most 8 terms of at most 40 characters: a longer one is refused with its reason
        edits: list[Any] = [RemoveNegative(terms=tuple(dropped[i:i + 8])) for i in range(0, len(dropped), 8)]
        edits += [AddNegative(terms=tuple(added[i:i + 8])) for i in range(0, len(added), 8)]
    except ValueError as e:
        st.session_state["pp._error"] = f"Could not use that list of things to avoid: {e}"
        return
    if edits:
        _apply(studio, edits)


@_current_only
def _on_prompt(studio: Studio) -> None:
    text = (st.session_state[_key("prompt")] or "").strip()
    compiled = compile_prompt(studio.plan.with_changes(prompt_override=None))
    _apply(studio, [SetPrompt(text=None if not text or text == compiled else text)])


@_current_only
def _on_reset_prompt(studio: Studio) -> None:
    _apply(studio, [SetPrompt(text=None)])


@_current_only
def _on_use_example(studio: Studio, text: str) -> None:
    _apply(studio, [SetPrompt(text=text)])


# --- the panel ----------------------------------------------------------------------------------


def render(studio: Studio, *, enhance: Callable[[MotionPlan], str] | None = None) -> None:
    """Draw the panel for `studio.plan`. `enhance` (the LLM prompt enhancer) adds the button when given."""
    sync(studio.plan, studio.template_locked)
    if err := st.session_state.get("pp._error"):
        st.error(plain(err))  # errors and notes may quote typed text
    if notes := st.session_state.pop("pp._notes", None):
        st.info(plain(notes[0].upper() + notes[1:]), icon=":material/info:")

    motion_tab, clip_tab, prompt_tab = st.tabs(["Motion", "Clip & seed", "Prompt"])
    with motion_tab:
        _template_section(studio)
        _motions_section(studio)
        _camera_section(studio)
    with clip_tab:
        _clip_section(studio)
    with prompt_tab:
        _prompt_section(studio, enhance)


def _template_section(studio: Studio) -> None:
    from agent.templates import get_template

    plan = studio.plan
    st.selectbox(
        "Template",
        TEMPLATE_IDS,
        key=_key("template"),
        format_func=template_title,
        on_change=_on_template,
        args=(studio,),
        help="The motion category; choosing one here keeps the chat from switching it.",
    )
    tpl = get_template(plan.template)
    locked = "  \n:material/lock: chosen by you: the chat will not switch it" if studio.template_locked else ""
    st.caption(f"{tpl.description}  \n*Use it for:* {tpl.when}{locked}")
    with st.expander("Example prompts for this template"):
        for i, example in enumerate(tpl.prompts):
            cols = st.columns([6, 1], vertical_alignment="center")
            cols[0].caption(example)
            cols[1].button("Use", key=_key("example", str(i)), on_click=_on_use_example, args=(studio, example),
                           help="Use this text as the prompt (you can edit it in the Prompt tab)")


def _motions_section(studio: Studio) -> None:
    plan = studio.plan
    st.markdown("**What moves**")
    if not plan.motions:
        st.caption("Nothing moves yet: say what should move in the chat, or add a motion below.")
    speed_lo, speed_hi = LIMITS["speed"]
    for m in plan.motions:
        with st.container(border=True):
            head = st.columns([3, 1], vertical_alignment="bottom")
            head[0].text_input(  # a plain label: a screen reader reads markdown asterisks aloud
                m.subject, key=_key("motion", m.subject, "action"), on_change=_on_motion,
                args=(studio, m.subject), help="What it does (a short verb phrase)",
            )
            head[1].button(":material/delete: Remove", key=_key("motion", m.subject, "remove"),
                           on_click=_on_remove_motion, args=(studio, m.subject), help=f"Stop the {m.subject} moving")
            row = st.columns(2)
            row[0].slider("speed ×", speed_lo, 3.0 if m.speed <= 3.0 else speed_hi, step=0.05,
                          key=_key("motion", m.subject, "speed"), on_change=_on_motion, args=(studio, m.subject))
            row[1].slider("intensity", *LIMITS["intensity"], step=0.05, key=_key("motion", m.subject, "intensity"),
                          on_change=_on_motion, args=(studio, m.subject))
    free = [s for s in SUBJECTS if plan.motion(s) is None]
    add = st.columns([2, 3, 1], vertical_alignment="bottom")
    add[0].selectbox("Add a motion", free, key=_key("new_motion", "subject"))
    add[1].text_input("doing what", key=_key("new_motion", "action"), placeholder="e.g. sway gently")
    add[2].button("Add", key=_key("new_motion", "add"), on_click=_on_add_motion, args=(studio,))


def _camera_section(studio: Studio) -> None:
    plan = studio.plan
    speed_lo, _ = LIMITS["speed"]
    st.markdown("**Camera**")
    cam = st.columns(2)
    cam[0].selectbox("move", CAMERA_MOVES, key=_key("camera", "move"), format_func=CAMERA_LABELS.get,
                     on_change=_on_camera, args=(studio,))
    cam[1].slider("camera speed ×", speed_lo, max(3.0, plan.camera.speed), step=0.05, key=_key("camera", "speed"),
                  on_change=_on_camera, args=(studio,), disabled=plan.camera.move == "static")


def _clip_section(studio: Studio) -> None:
    plan = studio.plan
    lo, hi = LIMITS["duration_s"]
    st.slider("duration (s)", lo, hi, step=0.25, key=_key("duration"), on_change=_on_duration, args=(studio,),
              help=f"{lo:g} to {hi:g} seconds at {FPS} fps")
    st.caption(f"{plan.num_frames} frames at {plan.fps} fps")
    st.slider("steps", int(LIMITS["steps"][0]), int(LIMITS["steps"][1]), step=1, key=_key("steps"),
              on_change=_on_steps, args=(studio,), help="Inference steps: 4 is the Lightning default; more is slower")
    g = st.columns(2)
    glo, ghi = LIMITS["guidance_scale"]
    g[0].number_input(GUIDANCE_LABELS["guidance_scale"], glo, ghi, step=0.5, format="%.2f", key=_key("guidance_high"),
                      on_change=_on_guidance, args=(studio,), help="Guidance scale of the high-noise expert")
    g[1].number_input(GUIDANCE_LABELS["guidance_scale_2"], glo, ghi, step=0.5, format="%.2f",
                      key=_key("guidance_low"), on_change=_on_guidance, args=(studio,),
                      help="Guidance scale of the low-noise expert")
    s = st.columns([4, 4, 4], vertical_alignment="bottom")
    s[0].number_input("seed", 0, MAX_SEED, step=1, key=_key("seed"), on_change=_on_seed, args=(studio,))
    s[1].toggle("lock seed", key=_key("seed_lock"), on_change=_on_seed_lock, args=(studio,),
                help="Locked: every render uses this seed. Unlocked: rendering again draws a new one.")
    s[2].button("New seed", icon=":material/casino:", key=_key("new_seed"), on_click=_on_new_seed, args=(studio,),
                width="stretch")


def _prompt_section(studio: Studio, enhance: Callable[[MotionPlan], str] | None) -> None:
    plan = studio.plan
    st.text_area(
        "prompt (compiled from the plan; edit it to write your own)",
        key=_key("prompt"),
        height=150,
        on_change=_on_prompt,
        args=(studio,),
    )
    if plan.prompt_override:
        st.caption(":material/edit: Your own prompt is used; it is kept when the plan changes.")
    p = st.columns(2)
    if plan.prompt_override:
        p[0].button("Back to the compiled prompt", key=_key("reset_prompt"), on_click=_on_reset_prompt, args=(studio,))
    if enhance is not None:
        p[1].button("Enhance prompt", icon=":material/auto_awesome:", key=_key("enhance"), on_click=_on_enhance,
                    args=(studio, enhance), help="Let the LLM rewrite the prompt in richer cinematic language")
    st.text_input("also avoid (comma-separated)", key=_key("avoid"), on_change=_on_avoid, args=(studio,),
                  placeholder="e.g. hands, text")
    st.caption("**Negative prompt** (compiled): " + plain(plan.negative_prompt or "—"))


@_current_only
def _on_enhance(studio: Studio, enhance: Callable[[MotionPlan], str]) -> None:
    text = enhance(studio.plan)
    if text and text.strip() and text.strip() != studio.plan.prompt:
        _apply(studio, [SetPrompt(text=text.strip())])
    else:
        st.session_state["pp._error"] = "The LLM could not improve this prompt; it is unchanged."
