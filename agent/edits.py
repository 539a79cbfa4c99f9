"""Edit operations: the values every planner (rules and LLM) emits for one chat turn.

An edit is a small frozen value with an `op` tag; a turn is a list of them. The JSON form of an edit
list (`edits_to_json` / `edits_from_json`, `edit_list_schema()`) is what the LLM planner is constrained
to produce, so the rule planner and the LLM planner speak the same language.

Plan-level edits are applied by `apply(plan, edits)`; session-level ones (undo, reset, recall of an
earlier generation) need history and are handled by agent.session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from agent.plan import LIMITS, MAX_ACTION_CHARS, CameraMove, Subject, TemplateId

if TYPE_CHECKING:
    from agent.plan import MotionPlan

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
    """Set the number of inference steps; clamped to 4–12 by `apply`."""

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
    -1 = the last one) within the conversation (session level)."""

    op: Literal["recall"] = "recall"
    generation_id: int | None = Field(default=None, ge=1)
    index: int | None = None


Edit = Annotated[
    Union[
        SetTemplate, AddMotion, RemoveMotion, ScaleMotion, SetCamera, ScaleCamera, SetDuration, SetSteps,
        SetGuidance, SetSeed, AddNegative, AddAtmosphere, RemoveAtmosphere, SetPrompt, Undo, Reset, Recall,
    ],
    Field(discriminator="op"),
]
SESSION_OPS = frozenset({"undo", "reset", "recall"})
MAX_EDITS_PER_TURN = 12

_edit_list = TypeAdapter(list[Edit])


class EditError(ValueError):
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
class ParseResult:
    """What a planner made of one chat message."""

    edits: list[Edit]
    unparsed: list[str] = field(default_factory=list)  # parts of the message no edit came from
    notes: list[str] = field(default_factory=list)  # things to tell the person ("fell back to the rules")
    planner: str = "rules"  # which planner produced the edits: "rules", "llm", "hybrid"


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
