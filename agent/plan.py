"""The MotionPlan: what should move, how the camera moves, and how the clip is rendered.

A plan is an immutable, validated value. Every edit returns a new plan (`with_changes`), and the JSON
form (`to_json` / `from_json`) is the contract every planner produces and every backend reads.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, field_validator, model_validator

from vividflow.errors import VividflowError, clip, short

FPS = 16
MAX_SEED = 2**31 - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")

TemplateId = Literal[
    "fashion",
    "portrait_subtle",
    "portrait_dynamic",
    "animals",
    "landscape",
    "animation",
    "product",
    "abstract",
]
Subject = Literal[
    "hair", "head", "face", "eyes", "mouth", "hands", "body", "clothing",
    "animal", "tail", "ears", "wings",
    "water", "clouds", "sky", "trees", "grass", "flowers", "fire", "smoke", "snow", "rain",
    "particles", "light", "product", "background",
]
CameraMove = Literal[
    "static", "zoom_in", "zoom_out", "pan_left", "pan_right", "tilt_up", "tilt_down",
    "orbit_left", "orbit_right", "dolly_in", "dolly_out",
]
SeedPolicy = Literal["new", "same", "explicit"]

TEMPLATE_IDS: tuple[str, ...] = get_args(TemplateId)
SUBJECTS: tuple[str, ...] = get_args(Subject)
CAMERA_MOVES: tuple[str, ...] = get_args(CameraMove)
SEED_POLICIES: tuple[str, ...] = get_args(SeedPolicy)

# One table of numeric bounds: the fields use it, and so do the error messages and the planners' clamps.
# A plan says what the person asked; at render time the model's recipe applies its own, narrower limits
# (Lightning: up to 8 steps, guidance 1; base: up to 50 steps, guidance 10) and says so in a note.
LIMITS: dict[str, tuple[float, float]] = {
    "duration_s": (0.5, 30.0),  # the whole video; past SEGMENT_MAX_S it renders as chained segments
    "steps": (4, 50),
    "guidance_scale": (0.0, 20.0),
    "guidance_scale_2": (0.0, 20.0),
    "seed": (0, MAX_SEED),
    "speed": (0.05, 5.0),  # motion and camera speed; > 0, 1.0 = the template's normal pace
    "intensity": (0.0, 1.0),
    # long videos, story, smoother (#12 §2 §4 §5)
    "output_fps": (16, 64),  # frames per second after motion interpolation ("smoother" = 32)
    "upscale_factor": (1.0, 4.0),
    "upscale_height": (240, 2160),
    "transition_pace": (0.2, 5.0),
    "variations": (1, 8),  # clips in one batch, each with its own seed (#12 §3)
}
# The steps the quality words ("higher quality", "best quality", "draft") move between first: a Lightning
# render's useful range. Past its top they go on up to the LIMITS maximum (for the base recipe).
QUALITY_STEPS: tuple[int, int] = (4, 12)
# The bounds of the plan's text (checked before any work: a plan is small whatever it came from).
MAX_NEGATIVE_TERMS = 16
MAX_TERM_CHARS = 120  # one atmosphere item or negative term
MAX_ERRORS_SHOWN = 5  # an error message names the first few problems and counts the rest
MAX_ACTION_CHARS = 60
MAX_ATMOSPHERE_ITEMS = 8
MAX_PROMPT_CHARS = 2000
MAX_MESSAGE_CHARS = 4000  # a chat message (agent.session.plan_turn refuses longer; the studio's input stops there)

# --- long videos, story, smoother (#12 §2 §4 §5) ----------------------------------------------------
SEGMENT_MAX_S = 5.0  # one rendered segment: at most 5 s at 16 fps (81 frames), Wan2.2's own maximum
SEGMENT_OVERLAP = 5  # frames shared by two neighbouring segments and blended at the seam (4k+1 keeps 4k+1 totals)
STORY_PICTURES = (2, 6)  # story mode: two to six pictures, one transition between each neighbouring pair


class PlanError(VividflowError, ValueError):
    """A plan (or part of one) that breaks the contract; the message names each field and its range."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.errors = errors or []


def frames_for(duration_s: float, fps: int = FPS) -> int:
    """Frames for a clip: 4k+1 as Wan needs, `4*round(duration_s*fps/4)+1` (0.5 s → 9, 3 s → 49, 5 s → 81)."""
    return 4 * round(duration_s * fps / 4) + 1


def segment_lengths(num_frames: int, *, max_frames: int | None = None, overlap: int = SEGMENT_OVERLAP) -> list[int]:
    """Frames of each chained segment for a video of `num_frames` (4k+1): as few segments of at most `max_frames`
    (default 5 s at 16 fps = 81) as fit, each 4k+1, neighbours sharing `overlap` frames, so that
    `sum(lengths) - overlap * (len(lengths) - 1) == num_frames` (12 s: 193 → [69, 69, 65])."""
    max_frames = max_frames or frames_for(SEGMENT_MAX_S)
    if num_frames <= max_frames:
        return [num_frames]
    if (overlap - 1) % 4 or (max_frames - 1) % 4 or (num_frames - 1) % 4:
        raise ValueError(f"frame counts must be 4k+1: num_frames={num_frames}, max_frames={max_frames}, overlap={overlap}")
    if max_frames < 2 * overlap + 3:  # a middle segment blends `overlap` frames at each end and adds some of its own
        raise ValueError(f"max_frames = {max_frames}: segments need at least {2 * overlap + 3} frames")
    count = 2
    while count * max_frames - overlap * (count - 1) < num_frames:
        count += 1
    quarters = (num_frames - 1 + (overlap - 1) * (count - 1)) // 4  # the 4s shared out among the segments
    base, extra = divmod(quarters, count)
    return [4 * (base + (1 if i < extra else 0)) + 1 for i in range(count)]


def clamp(field: str, value: float) -> float:
    """Clamp `value` into LIMITS[field]; planners use it and then say so in their reply."""
    lo, hi = LIMITS[field]
    return min(max(value, lo), hi)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _bounded(field: str, **kw: Any) -> Any:
    lo, hi = LIMITS[field]
    return Field(ge=lo, le=hi, **kw)


Term = Annotated[str, Field(max_length=MAX_TERM_CHARS)]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @field_validator(*LIMITS, mode="before", check_fields=False)
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        # JSON `true` is not a number: pydantic would read it as 1
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value


class Motion(_Value):
    """One thing that moves: `hair` + `flow` at 1.0× the template's pace, intensity 0..1."""

    subject: Subject
    action: str = Field(min_length=1, max_length=MAX_ACTION_CHARS)
    speed: float = _bounded("speed", default=1.0)
    intensity: float = _bounded("intensity", default=0.5)


class Camera(_Value):
    """The camera move and its pace (1.0 = normal)."""

    move: CameraMove = "static"
    speed: float = _bounded("speed", default=1.0)


class Upscale(_Value):
    """Upscale on export: by `factor` ("twice as large") or to `height` pixels ("in 720p"), one of the two."""

    factor: float | None = Field(default=None, ge=LIMITS["upscale_factor"][0], le=LIMITS["upscale_factor"][1])
    height: int | None = Field(default=None, ge=LIMITS["upscale_height"][0], le=LIMITS["upscale_height"][1])

    @model_validator(mode="after")
    def _one_of(self) -> Upscale:
        if (self.factor is None) == (self.height is None):
            raise ValueError("upscale: give either factor (1–4) or height (240–2160 pixels), not both or neither")
        return self

    def describe(self) -> str:
        return f"{self.height}p" if self.height is not None else f"{self.factor:g}×"


class Transition(_Value):
    """Story mode: how one transition between two neighbouring pictures plays: `pace` 1.0 = normal; a slower
    pace (0.6) gives the transition more of the video's time and slows its motion and camera."""

    pace: float = _bounded("transition_pace", default=1.0)
    camera: CameraMove | None = None  # None: the plan's camera move


class MotionPlan(_Value):
    """The whole, validated description of one clip; immutable, edits return new plans."""

    template: TemplateId
    motions: tuple[Motion, ...] = ()
    camera: Camera = Camera()
    atmosphere: tuple[Term, ...] = Field(default=(), max_length=MAX_ATMOSPHERE_ITEMS)
    duration_s: float = _bounded("duration_s", default=3.0)
    fps: Literal[16] = FPS
    steps: int = _bounded("steps", default=4)
    guidance_scale: float = _bounded("guidance_scale", default=1.0)
    guidance_scale_2: float = _bounded("guidance_scale_2", default=1.0)
    seed: int = _bounded("seed", default=0)
    seed_policy: SeedPolicy = "new"
    # Terms the person asked to avoid ("no hand movement" → "hands"); the compiler adds them to negative_prompt.
    negative_terms: tuple[Term, ...] = Field(default=(), max_length=MAX_NEGATIVE_TERMS)
    prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    # A prompt typed by the person. When set, the compiler keeps it as `prompt` instead of writing one.
    prompt_override: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    # long videos, story, smoother (#12 §2 §4 §5): frame interpolation and upscaling on export; story mode's
    # pictures (sha256 of each stored source image, in story order) and one Transition per neighbouring pair
    output_fps: int | None = Field(default=None, ge=LIMITS["output_fps"][0], le=LIMITS["output_fps"][1])
    upscale: Upscale | None = None
    story_images: tuple[str, ...] = Field(default=(), max_length=STORY_PICTURES[1])
    transitions: tuple[Transition, ...] = Field(default=(), max_length=STORY_PICTURES[1] - 1)
    # end frame and loop (#12 §1): `end_image` is the media key (sha256 of a source image in the store) of the
    # picture the clip ends on; `loop` ends on the first picture (first frame = last frame). Not both.
    end_image: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    loop: bool = False
    # variations (#12 §3): render this many clips with different seeds in one batch (1 = one clip)
    variations: int = _bounded("variations", default=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def num_frames(self) -> int:
        return frames_for(self.duration_s, self.fps)

    @model_validator(mode="before")
    @classmethod
    def _check_num_frames(cls, data: Any) -> Any:
        # `num_frames` is derived; JSON from elsewhere may carry it, and it must agree with duration_s.
        if isinstance(data, dict) and "num_frames" in data:
            data = dict(data)
            given = data.pop("num_frames")
            duration = data.get("duration_s", cls.model_fields["duration_s"].default)
            if isinstance(duration, (int, float)) and isinstance(given, int):
                expected = frames_for(float(duration))
                if given != expected:
                    raise ValueError(
                        f"num_frames = {given} does not match duration_s = {duration}: "
                        f"it must be 4*round(duration_s*16/4)+1 = {expected}"
                    )
        return data

    @model_validator(mode="after")
    def _check_story(self) -> MotionPlan:
        n = len(self.story_images)
        if n == 1:
            raise ValueError(f"story_images: a story needs {STORY_PICTURES[0]} to {STORY_PICTURES[1]} pictures, got 1")
        bad = [k for k in self.story_images if not _SHA256.fullmatch(k)]
        if bad:
            raise ValueError(f"story_images: each picture is the sha256 of a stored image (64 hex digits), got {bad[0]!r}")
        if n >= 2 and self.duration_s < 0.5 * (n - 1):
            raise ValueError(f"duration_s: a story of {n} pictures needs at least 0.5 s per transition "
                             f"({0.5 * (n - 1):g} s), got {self.duration_s:g}")
        if self.transitions and len(self.transitions) != max(n - 1, 0):
            raise ValueError(f"transitions: one per pair of neighbouring pictures ({max(n - 1, 0)}), got {len(self.transitions)}")
        if n >= 2 and (self.end_image is not None or self.loop):  # a story ends on its last picture (#12 §1 × §4)
            raise ValueError("story_images: a story ends on its last picture, so end_image must be None and loop "
                             "false in story mode")
        return self

    @property
    def segment_count(self) -> int:
        """How many segments the video renders as (story mode: at least one per transition)."""
        if len(self.story_images) >= 2:
            return sum(len(segment_lengths(n)) for n in self.transition_frames())
        return len(segment_lengths(self.num_frames))

    def transition_durations(self) -> list[float]:
        """Story mode: each transition's seconds, its share of duration_s ∝ 1/pace (quarter seconds)."""
        n = len(self.story_images) - 1
        if n < 1:
            return []
        paces = [t.pace for t in self.transitions] or [1.0] * n
        weights = [1.0 / p for p in paces]
        quarters = max(round(self.duration_s * 4), 2 * n)
        shares = [max(2, round(quarters * w / sum(weights))) for w in weights]  # at least 0.5 s each
        shares[-1] = max(2, quarters - sum(shares[:-1]))
        return [q / 4 for q in shares]

    def transition_frames(self) -> list[int]:
        """Story mode: each transition's frames (4k+1), the later ones SEGMENT_OVERLAP - 1 longer to make up for
        the blended seam, so that the video keeps `num_frames` when the durations add up to duration_s."""
        return [frames_for(d, self.fps) + (SEGMENT_OVERLAP - 1 if i else 0)
                for i, d in enumerate(self.transition_durations())]

    @model_validator(mode="after")
    def _check_unique_subjects(self) -> MotionPlan:
        seen = [m.subject for m in self.motions]
        dupes = sorted({s for s in seen if seen.count(s) > 1})
        if dupes:
            raise ValueError(f"motions: each subject may appear once, repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _check_end_frame(self) -> MotionPlan:
        if self.loop and self.end_image is not None:
            raise ValueError("loop ends on the first picture, so end_image must be None when loop is true")
        return self

    # --- construction and change -------------------------------------------------------------

    @classmethod
    def create(cls, **fields: Any) -> MotionPlan:
        """Build a plan from plain values; raises PlanError with a readable message."""
        try:
            return cls.model_validate(fields)
        except ValidationError as e:
            raise plan_error(e) from None

    def with_changes(self, **changes: Any) -> MotionPlan:
        """A new plan with `changes` applied and everything validated again."""
        data = self.model_dump(exclude={"num_frames"})
        data.update(changes)
        return type(self).create(**data)

    def motion(self, subject: str) -> Motion | None:
        return next((m for m in self.motions if m.subject == subject), None)

    # --- JSON -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MotionPlan:
        if not isinstance(data, dict):
            raise PlanError(f"a plan must be a JSON object, got {type(data).__name__}")
        return cls.create(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> MotionPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PlanError(f"plan is not valid JSON: {e}") from None
        except RecursionError:
            raise PlanError("plan is not a plan: its JSON nests far too deep") from None
        return cls.from_dict(data)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema of the plan as it is written (num_frames included)."""
        return cls.model_json_schema(mode="serialization")


def plan_error(e: ValidationError) -> PlanError:
    """Turn pydantic's errors into one message that names each field, the value and the allowed range."""
    parts = []
    errors = e.errors()
    for err in errors[:MAX_ERRORS_SHOWN]:
        loc = clip(".".join(str(p) for p in err["loc"]) or "plan")
        field = str(err["loc"][-1]) if err["loc"] else ""
        key = field if field in LIMITS else None
        msg = err["msg"]
        if err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        line = f"{loc}: {msg}"
        if "input" in err and err["type"] not in ("missing", "value_error") and not isinstance(err["input"], dict):
            line += f" (got {short(err['input'])})"
        if key:
            line += f"; allowed range {_fmt(LIMITS[key][0])}–{_fmt(LIMITS[key][1])}"
        elif err["type"] == "literal_error" and "expected" in err.get("ctx", {}):
            pass  # pydantic already lists the allowed values
        parts.append(line)
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
    return PlanError("invalid plan: " + "; ".join(parts), errors=errors)
