"""Edit operations: the values every planner (rules and LLM) emits for one chat turn.

An edit is a small frozen value with an `op` tag; a turn is a list of them. The JSON form of an edit
list (`edits_to_json` / `edits_from_json`, `edit_list_schema()`) is what the LLM planner is constrained
to produce, so the rule planner and the LLM planner speak the same language.

Plan-level edits are applied by `apply(plan, edits)`; session-level ones (undo, reset, recall of an
earlier generation) need history and are handled by agent.session.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from agent.compiler import compile_plan
from agent import end_and_batch as EB  # end frame, loop, variations (#12 §1, §3)
from agent.end_and_batch import PickVariation, SetEndFrame, SetLoop, SetVariations
from agent.plan import (
    LIMITS,
    MAX_ACTION_CHARS,
    MAX_ATMOSPHERE_ITEMS,
    MAX_NEGATIVE_TERMS,
    MAX_SEED,
    SEGMENT_MAX_S,
    Camera,
    CameraMove,
    Motion,
    MotionPlan,
    Subject,
    TemplateId,
)
from agent.templates import get_template
from agent.camera_words import TIME_OF_DAY_LIGHTS
from agent.edits_long import ScaleTransition, SetOutputFps, SetStory, SetUpscale, apply_long  # #12 §2 §4 §5
from vividflow.errors import VividflowError

MAX_TERM_CHARS = 40


class _Edit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SetTemplate(_Edit):
    """Switch to another template category (its negative prompt and safety rules follow)."""

    op: Literal["set_template"] = "set_template"
    template: TemplateId


class AddMotion(_Edit):
    """Make `subject` move with `action`; replaces that subject's motion if it already moves."""

    op: Literal["add_motion"] = "add_motion"
    subject: Subject
    action: str = Field(min_length=1, max_length=MAX_ACTION_CHARS)
    speed: float = Field(default=1.0, ge=LIMITS["speed"][0], le=LIMITS["speed"][1])
    intensity: float = Field(default=0.5, ge=LIMITS["intensity"][0], le=LIMITS["intensity"][1])


class RemoveMotion(_Edit):
    """Stop `subject` moving."""

    op: Literal["remove_motion"] = "remove_motion"
    subject: Subject


class ScaleMotion(_Edit):
    """Multiply a motion's speed and/or intensity ("slower hair" → speed_factor 0.6); subject "all" = every motion."""

    op: Literal["scale_motion"] = "scale_motion"
    subject: Subject | Literal["all"]
    speed_factor: float = Field(default=1.0, gt=0, le=10.0)
    intensity_factor: float = Field(default=1.0, gt=0, le=10.0)


class SetCamera(_Edit):
    """Set the camera move; `speed` None keeps the current pace."""

    op: Literal["set_camera"] = "set_camera"
    move: CameraMove
    speed: float | None = Field(default=None, ge=LIMITS["speed"][0], le=LIMITS["speed"][1])


class ScaleCamera(_Edit):
    """Multiply the camera speed ("slower zoom" → 0.6)."""

    op: Literal["scale_camera"] = "scale_camera"
    factor: float = Field(gt=0, le=10.0)


class SetDuration(_Edit):
    """Set the clip length; out-of-range values are clamped to 0.5–5 s by `apply`, which says so."""

    op: Literal["set_duration"] = "set_duration"
    seconds: float = Field(gt=0, le=3600)


class SetSteps(_Edit):
    """Set the number of inference steps; clamped into LIMITS["steps"] (4–50) by `apply`."""

    op: Literal["set_steps"] = "set_steps"
    steps: int = Field(ge=1, le=100)


class SetGuidance(_Edit):
    """Set the guidance of the high-noise expert (`high`) and/or the low-noise expert (`low`)."""

    op: Literal["set_guidance"] = "set_guidance"
    high: float | None = Field(default=None, ge=LIMITS["guidance_scale"][0], le=LIMITS["guidance_scale"][1])
    low: float | None = Field(default=None, ge=LIMITS["guidance_scale_2"][0], le=LIMITS["guidance_scale_2"][1])


class SetSeed(_Edit):
    """Seed policy: keep the seed ("same"), draw a new one ("new"), or set it ("explicit" with `value`)."""

    op: Literal["seed"] = "seed"
    policy: Literal["same", "new", "explicit"]
    value: int | None = Field(default=None, ge=LIMITS["seed"][0], le=LIMITS["seed"][1])


class AddNegative(_Edit):
    """Add terms to avoid ("hands", "text")."""

    op: Literal["add_negative"] = "add_negative"
    terms: tuple[Annotated[str, Field(min_length=1, max_length=MAX_TERM_CHARS)], ...] = Field(min_length=1, max_length=8)


class RemoveNegative(_Edit):
    """Stop avoiding terms the person added earlier ("hands are fine now")."""

    op: Literal["remove_negative"] = "remove_negative"
    terms: tuple[Annotated[str, Field(min_length=1, max_length=MAX_TERM_CHARS)], ...] = Field(min_length=1, max_length=8)


class AddAtmosphere(_Edit):
    """Add atmosphere items ("wind", "fog", "golden hour light")."""

    op: Literal["add_atmosphere"] = "add_atmosphere"
    items: tuple[Annotated[str, Field(min_length=1, max_length=MAX_TERM_CHARS)], ...] = Field(min_length=1, max_length=8)


class RemoveAtmosphere(_Edit):
    op: Literal["remove_atmosphere"] = "remove_atmosphere"
    items: tuple[Annotated[str, Field(min_length=1, max_length=MAX_TERM_CHARS)], ...] = Field(min_length=1, max_length=8)


class SetPrompt(_Edit):
    """A prompt typed by the person (None: go back to the compiled prompt)."""

    op: Literal["set_prompt"] = "set_prompt"
    text: str | None = Field(default=None, max_length=2000)


class Undo(_Edit):
    """Return to the plan before the last change (session level)."""

    op: Literal["undo"] = "undo"


class Reset(_Edit):
    """Start over from the template's default plan (session level)."""

    op: Literal["reset"] = "reset"


class Recall(_Edit):
    """Start from an earlier generation's plan: `generation_id` (e.g. "#12") or `index` (1-based, "the second one";
    -1 = the last one) within the conversation, or `query` (words said about it: "the cat video" → "cat"), the
    most recent match wins (session level)."""

    op: Literal["recall"] = "recall"
    generation_id: int | None = Field(default=None, ge=1)
    index: int | None = None
    query: str | None = Field(default=None, min_length=1, max_length=MAX_TERM_CHARS)


Edit = Annotated[
    Union[
        SetTemplate, AddMotion, RemoveMotion, ScaleMotion, SetCamera, ScaleCamera, SetDuration, SetSteps,
        SetGuidance, SetSeed, AddNegative, RemoveNegative, AddAtmosphere, RemoveAtmosphere, SetPrompt,
        SetOutputFps, SetUpscale, SetStory, ScaleTransition,  # long videos, story, smoother (#12)
        Undo, Reset, Recall,
        SetEndFrame, SetLoop, SetVariations, PickVariation,  # end frame, loop, variations (#12 §1, §3)
    ],
    Field(discriminator="op"),
]
SESSION_OPS = frozenset({"undo", "reset", "recall"}) | EB.SESSION_OPS
MAX_EDITS_PER_TURN = 12

_edit_list = TypeAdapter(list[Edit])


class EditError(VividflowError, ValueError):
    """An edit list that does not match the edit schema; the message names the offending item."""


def edit_list_schema() -> dict[str, Any]:
    """JSON Schema of a list of edits (what the LLM planner must produce)."""
    return _edit_list.json_schema()


def edits_from_json(text: str | bytes) -> list[Edit]:
    try:
        return parse_edits(json.loads(text))
    except json.JSONDecodeError as e:
        raise EditError(f"edits are not valid JSON: {e}") from None


def parse_edits(data: Any) -> list[Edit]:
    try:
        edits = _edit_list.validate_python(data)
    except ValidationError as e:
        details = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise EditError(f"invalid edit list: {details}") from None
    if len(edits) > MAX_EDITS_PER_TURN:
        raise EditError(f"too many edits in one turn: {len(edits)} (at most {MAX_EDITS_PER_TURN})")
    return edits


def edits_to_json(edits: list[Edit]) -> str:
    return json.dumps([e.model_dump(mode="json") for e in edits], ensure_ascii=False)


@dataclass(frozen=True)
class CompareRequest:
    """"compare #3 and #5", "compare the first and the second one": two earlier generations to show side by side
    (session level, like Recall; the plan does not change). `a` and `b` are Recall values the session resolves."""

    a: Recall
    b: Recall


@dataclass(frozen=True)
class ParseResult:
    """What a planner made of one chat message."""

    edits: list[Edit]
    unparsed: list[str] = field(default_factory=list)  # parts of the message no edit came from
    notes: list[str] = field(default_factory=list)  # things to tell the person ("fell back to the rules")
    planner: str = "rules"  # which planner produced the edits: "rules", "llm", "hybrid"
    answers: list[str] = field(default_factory=list)  # answers to questions ("what seed is this?"): no edit
    cancel: bool = False  # "nevermind": drop what is pending (the session knows what that is)
    reply_language: str = "en"  # the person wrote in another language throughout: reply in it where possible
    compare: CompareRequest | None = None  # "compare #3 and #5": two generations side by side, no plan change


class Planner(Protocol):
    """Anything that turns a message into edits: the rule planner, the LLM planner, the hybrid."""

    name: str

    def parse(
        self,
        message: str,
        plan: MotionPlan | None,
        *,
        history: Sequence[tuple[str, str]] = (),  # recent (role, text) turns, oldest first
        template_locked: bool = False,  # the person chose the template in the UI: do not switch it
    ) -> ParseResult: ...


# --- applying plan-level edits ---------------------------------------------------------------------

log = logging.getLogger(__name__)

HANDS_NOTE_FASHION = "the fashion template is facial-only: hands and arms stay still (kept in the negative prompt)"
HANDS_NOTE_NOT_IN_VIEW = (
    "hands stay still: say that the hands are visible in the picture and I will animate them"
)


def _num(x: float) -> str:
    """1 → "1", 0.5 → "0.5", 12.0 → "12"."""
    return f"{x:g}"


def _round(x: float) -> float:
    return round(x, 3)


def _clamped(field: str, value: float, what: str, notes: list[str], unit: str = "") -> float:
    """Clamp into LIMITS[field]; when it had to, log it and add a note that says what happened."""
    lo, hi = LIMITS[field]
    if lo <= value <= hi:
        return value
    new = hi if value > hi else lo
    if field == "duration_s":
        word, bound = ("longer", "maximum") if value > hi else ("shorter", "minimum")
        note = f"{_num(value)} s is {word} than the {_num(new)} s {bound}: set to {new:.1f} s"
    elif field == "steps":
        word, bound = ("more", "maximum") if value > hi else ("fewer", "minimum")
        note = f"{_num(value)} steps is {word} than the {_num(new)} {bound}: set to {int(new)}"
    else:
        bound = "maximum" if value > hi else "minimum"
        note = f"{what} {_num(_round(value))}{unit} is past the {bound} {_num(new)}{unit}: set to {_num(new)}{unit}"
    log.info("clamped %s: %s", field, note)
    notes.append(note)
    return new


def _template_switch(plan: MotionPlan, new_id: str) -> dict[str, Any]:
    """Changes for a template switch: what still equals the old template's defaults follows the new template,
    what the person changed stays."""
    old, new = get_template(plan.template), get_template(new_id)
    kept = [m for m in plan.motions if m not in old.motions]
    kept_subjects = {m.subject for m in kept}
    motions = kept + [m for m in new.motions if m.subject not in kept_subjects]
    atmosphere = [a for a in plan.atmosphere if a not in old.atmosphere]
    atmosphere += [a for a in new.atmosphere if a not in atmosphere]
    changes: dict[str, Any] = {
        "template": new_id,
        "motions": tuple(motions),
        "atmosphere": tuple(atmosphere[:MAX_ATMOSPHERE_ITEMS]),
    }
    if plan.camera == old.camera:
        changes["camera"] = new.camera
    if plan.duration_s == old.duration_s:
        changes["duration_s"] = new.duration_s
    if plan.steps == old.steps:
        changes["steps"] = new.steps
    if (plan.guidance_scale, plan.guidance_scale_2) == old.guidance:
        changes["guidance_scale"], changes["guidance_scale_2"] = new.guidance
    return changes


def draw_seed(rng: random.Random, avoid: int | None = None) -> int:
    """A fresh seed in 0..2**31-1 from `rng`, different from `avoid`."""
    while True:
        seed = rng.randrange(0, MAX_SEED + 1)
        if seed != avoid:
            return seed


def apply(
    plan: MotionPlan,
    edits: Sequence[Edit],
    *,
    rng: random.Random,
    hands_in_view: bool = False,
    end_upload: str | None = None,
) -> tuple[MotionPlan, list[str]]:
    """Apply plan-level edits in order; returns the new (compiled) plan and notes for the person.

    Out-of-range numbers are clamped and noted ("12 s is longer than the 5 s maximum: set to 5.0 s").
    Safety: in `fashion` hands never move (the edit is refused, "hands" goes to the negative terms);
    elsewhere hand motion and the `portrait_dynamic` template need `hands_in_view` (the person said the
    hands are visible), except in `portrait_dynamic` itself. Session edits (undo, reset, recall, pick) raise
    EditError: agent.session handles them. `end_upload`: the media key of the end picture the person uploaded
    (what "end on this picture" points at).
    """
    notes: list[str] = []
    for edit in edits:
        if edit.op in SESSION_OPS:
            raise EditError(f"edit {edit.op!r} needs the conversation history: use agent.session.plan_turn")
        if edit.op in EB.OPS:
            plan = EB.apply_one(plan, edit, end_upload=end_upload, notes=notes)  # type: ignore[arg-type]
            continue
        plan = _apply_one(plan, edit, rng=rng, hands_in_view=hands_in_view, notes=notes)
    return compile_plan(plan), notes


def _hands_allowed(template: str, hands_in_view: bool) -> str | None:
    """None when hand motion is allowed in `template`, else the note that says why not."""
    if template == "fashion":
        return HANDS_NOTE_FASHION
    if template != "portrait_dynamic" and not hands_in_view:
        return HANDS_NOTE_NOT_IN_VIEW
    return None


def _with_negative(plan: MotionPlan, *terms: str) -> tuple[str, ...]:
    out = list(plan.negative_terms)
    for t in terms:
        t = t.strip().lower()
        if t and t not in out:
            out.append(t)
    return tuple(out[-MAX_NEGATIVE_TERMS:])


def _apply_one(plan: MotionPlan, edit: Edit, *, rng: random.Random, hands_in_view: bool, notes: list[str]) -> MotionPlan:
    if isinstance(edit, SetTemplate):
        if edit.template == plan.template:
            return plan
        if edit.template == "portrait_dynamic" and not hands_in_view:
            notes.append("kept the " + plan.template + " template: gestures (portrait_dynamic) need the hands "
                         "to be visible, say so if they are")
            log.info("refused portrait_dynamic: hands not said to be in view")
            return plan
        new = plan.with_changes(**_template_switch(plan, edit.template))
        if edit.template == "fashion" and new.motion("hands"):
            new = new.with_changes(motions=tuple(m for m in new.motions if m.subject != "hands"),
                                   negative_terms=_with_negative(new, "hands"))
            notes.append(HANDS_NOTE_FASHION)
        return new

    if isinstance(edit, AddMotion):
        if edit.subject == "hands":
            why = _hands_allowed(plan.template, hands_in_view)
            if why:
                notes.append(why)
                log.info("refused hand motion in %s: %s", plan.template, why)
                if plan.template == "fashion":
                    return plan.with_changes(negative_terms=_with_negative(plan, "hands"))
                return plan
        motion = Motion(subject=edit.subject, action=edit.action, speed=edit.speed, intensity=edit.intensity)
        motions = [m for m in plan.motions if m.subject != edit.subject]
        old = plan.motion(edit.subject)
        if old is not None:
            motions.insert([m.subject for m in plan.motions].index(edit.subject), motion)
        else:
            motions.append(motion)
        return plan.with_changes(motions=tuple(motions))

    if isinstance(edit, RemoveMotion):
        if plan.motion(edit.subject) is None:
            log.info("remove_motion: %s was not moving", edit.subject)
            return plan
        return plan.with_changes(motions=tuple(m for m in plan.motions if m.subject != edit.subject))

    if isinstance(edit, ScaleMotion):
        targets = [m for m in plan.motions if edit.subject in ("all", m.subject)]
        if not targets:
            what = "nothing is moving" if edit.subject == "all" else f"{edit.subject} is not moving"
            notes.append(f"{what}, so there was nothing to {'slow' if edit.speed_factor < 1 else 'change'}")
            return plan
        motions = []
        for m in plan.motions:
            if m in targets:
                speed = _clamped("speed", _round(m.speed * edit.speed_factor), f"{m.subject} speed", notes, "×")
                intensity = _round(m.intensity * edit.intensity_factor)
                if intensity > LIMITS["intensity"][1]:
                    if m.intensity >= LIMITS["intensity"][1]:
                        notes.append(f"{m.subject} is already at full intensity")
                    intensity = LIMITS["intensity"][1]
                    log.info("clamped %s intensity to 1.0", m.subject)
                m = m.model_copy(update={"speed": speed, "intensity": intensity})
            motions.append(m)
        return plan.with_changes(motions=tuple(motions))

    if isinstance(edit, SetCamera):
        # a static camera keeps the pace it had, so a later "pan left" moves at the pace set before
        speed = edit.speed if edit.speed is not None and edit.move != "static" else plan.camera.speed
        return plan.with_changes(camera=Camera(move=edit.move, speed=speed))

    if isinstance(edit, ScaleCamera):
        if plan.camera.move == "static":
            notes.append("the camera is static, so there was no camera pace to change")
            return plan
        speed = _clamped("speed", _round(plan.camera.speed * edit.factor), "camera speed", notes, "×")
        return plan.with_changes(camera=Camera(move=plan.camera.move, speed=speed))

    if isinstance(edit, SetDuration):
        new = plan.with_changes(duration_s=_round(_clamped("duration_s", edit.seconds, "duration", notes)))
        if new.duration_s > SEGMENT_MAX_S and new.segment_count > 1 and not new.story_images:
            notes.append(f"{new.duration_s:g} s renders as {new.segment_count} segments of up to "
                         f"{SEGMENT_MAX_S:g} s, each continuing from the last frame of the one before")
        return new

    if isinstance(edit, (SetOutputFps, SetUpscale, SetStory, ScaleTransition)):
        return apply_long(plan, edit, notes)

    if isinstance(edit, SetSteps):
        return plan.with_changes(steps=int(_clamped("steps", edit.steps, "steps", notes)))

    if isinstance(edit, SetGuidance):
        changes: dict[str, Any] = {}
        if edit.high is not None:
            changes["guidance_scale"] = edit.high
        if edit.low is not None:
            changes["guidance_scale_2"] = edit.low
        return plan.with_changes(**changes) if changes else plan

    if isinstance(edit, SetSeed):
        if edit.policy == "same":
            return plan.with_changes(seed_policy="same")
        if edit.policy == "new":
            return plan.with_changes(seed=draw_seed(rng, avoid=plan.seed), seed_policy="new")
        if edit.value is None:
            raise EditError("seed: policy 'explicit' needs a value (0 to 2147483647)")
        return plan.with_changes(seed=edit.value, seed_policy="explicit")

    if isinstance(edit, AddNegative):
        return plan.with_changes(negative_terms=_with_negative(plan, *edit.terms))

    if isinstance(edit, RemoveNegative):
        drop = {t.strip().lower() for t in edit.terms}
        return plan.with_changes(negative_terms=tuple(t for t in plan.negative_terms if t not in drop))

    if isinstance(edit, AddAtmosphere):
        items = list(plan.atmosphere)
        for item in edit.items:
            item = item.strip().lower()
            if item in TIME_OF_DAY_LIGHTS:
                replaced = [i for i in items if i in TIME_OF_DAY_LIGHTS and i != item]
                if replaced:  # one time of day: the reply's diff says what went
                    log.info("atmosphere: %s replaces %s", item, replaced)
                    items = [i for i in items if i not in replaced]
            if item and item not in items:
                items.append(item)
        if len(items) > MAX_ATMOSPHERE_ITEMS:
            notes.append(f"at most {MAX_ATMOSPHERE_ITEMS} atmosphere items: kept the newest")
            items = items[-MAX_ATMOSPHERE_ITEMS:]
        return plan.with_changes(atmosphere=tuple(items))

    if isinstance(edit, RemoveAtmosphere):
        drop = {i.strip().lower() for i in edit.items}
        return plan.with_changes(atmosphere=tuple(a for a in plan.atmosphere if a not in drop))

    if isinstance(edit, SetPrompt):
        return plan.with_changes(prompt_override=edit.text or None)

    raise EditError(f"unknown edit {edit!r}")
