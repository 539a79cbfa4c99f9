"""What the person reads after a turn: the plan's changes as a compact diff (`plan_diff`, `diff_text`) and the
reply of one or two sentences (`build_reply`): what changed, what was answered, what was not understood."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from agent.compiler import motion_phrase
from agent.edits import AddNegative, Edit, SetSeed
from agent.plan import MotionPlan
from agent.rules.references import targets_of
from agent.spelling import READ_AS
from agent.templates import get_template
from agent.wording import GUIDANCE_LABELS, camera_words  # noqa: F401 (camera_words: re-exported)

MAX_REPLY_ITEMS = 5
ONLY_NAMED_START = "only what you named moves"  # the rule planner's note when a first plan drops template motions


@dataclass(frozen=True)
class FieldChange:
    """One field of the plan that changed: `path` like "motions.hair.speed", "camera.move", "seed"."""

    path: str
    before: Any
    after: Any

    def __str__(self) -> str:
        label = _LABELS.get(self.path) or self.path.removeprefix("motions.").replace(".", " ").replace("_", " ")
        unit = " s" if self.path == "duration_s" else ""
        if self.path.startswith("motions.") and self.path.count(".") == 1:
            if self.before is None:
                return f"{label} added ({self.after})"
            if self.after is None:
                return f"{label} removed"
        if isinstance(self.before, tuple) or isinstance(self.after, tuple):
            before, after = tuple(self.before or ()), tuple(self.after or ())
            parts = [f"+{x}" for x in after if x not in before] + [f"-{x}" for x in before if x not in after]
            return f"{label} {' '.join(parts)}" if parts else f"{label} reordered"
        return f"{label} {_show(self.before)}{unit} → {_show(self.after)}{unit}"


# Plain names for the two guidance scales (the high-noise expert runs the early steps, the low-noise one the late
# steps); the reply, the diff, the answers and the plan panel all say these.
_LABELS = {"duration_s": "duration", **GUIDANCE_LABELS, "negative_terms": "negative", "prompt_override": "own prompt",
           "end_image": "end picture"}


def _show(x: Any) -> str:
    if x is None:
        return "none"
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, str) and len(x) == 64:  # a media key (the end picture): its start is enough
        return x[:8] + "…"
    return str(x)


@dataclass(frozen=True)
class Comparison:
    """"compare #3 and #5": two earlier generations for the studio to show side by side (the plan is unchanged).

    `a` and `b` are generation ids in the order named; `changes` are the plan differences from a to b (the same
    values as a turn's `changes`, so `diff_text`-style words can list them between the videos)."""

    a: int
    b: int
    changes: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class Reply:
    """What the person reads after a turn, plus what the page shows next to it."""

    text: str  # one or two sentences: what changed, what was not understood
    changes: tuple[FieldChange, ...] = ()
    diff: str = ""  # compact: "hair speed 0.8 → 0.48, seed kept 1234"
    edits: tuple[Edit, ...] = ()
    notes: tuple[str, ...] = ()
    unparsed: tuple[str, ...] = ()
    planner: str = "rules"
    understood: bool = True
    compare: Comparison | None = None  # "compare #3 and #5": the two generations to show side by side

    def __str__(self) -> str:
        return self.text


def plan_diff(before: MotionPlan | None, after: MotionPlan) -> tuple[FieldChange, ...]:
    """The fields that differ, motions by subject; derived text (prompt, negative_prompt) is left out."""
    if before is None:
        return (FieldChange("template", None, after.template),)
    out: list[FieldChange] = []

    def cmp(path: str, a: Any, b: Any) -> None:
        if a != b:
            out.append(FieldChange(path, a, b))

    cmp("template", before.template, after.template)
    subjects = [m.subject for m in before.motions] + [m.subject for m in after.motions
                                                      if before.motion(m.subject) is None]
    for s in subjects:
        a, b = before.motion(s), after.motion(s)
        if a is None and b is not None:
            out.append(FieldChange(f"motions.{s}", None, f"{b.action} ×{b.speed:g}"))
        elif b is None and a is not None:
            out.append(FieldChange(f"motions.{s}", f"{a.action} ×{a.speed:g}", None))
        elif a is not None and b is not None:
            cmp(f"motions.{s}.action", a.action, b.action)
            cmp(f"motions.{s}.speed", a.speed, b.speed)
            cmp(f"motions.{s}.intensity", a.intensity, b.intensity)
    cmp("camera.move", before.camera.move, after.camera.move)
    cmp("camera.speed", before.camera.speed, after.camera.speed)
    cmp("atmosphere", before.atmosphere, after.atmosphere)
    cmp("duration_s", before.duration_s, after.duration_s)
    cmp("steps", before.steps, after.steps)
    cmp("guidance_scale", before.guidance_scale, after.guidance_scale)
    cmp("guidance_scale_2", before.guidance_scale_2, after.guidance_scale_2)
    cmp("seed", before.seed, after.seed)
    cmp("negative_terms", before.negative_terms, after.negative_terms)
    cmp("prompt_override", before.prompt_override, after.prompt_override)
    # long videos, story, smoother (#12 §2 §4 §5)
    cmp("output_fps", before.output_fps, after.output_fps)
    cmp("upscale", before.upscale.describe() if before.upscale else None,
        after.upscale.describe() if after.upscale else None)
    cmp("story", tuple(k[:8] for k in before.story_images), tuple(k[:8] for k in after.story_images))
    paces_a = tuple(t.pace for t in before.transitions) or (1.0,) * max(len(before.story_images) - 1, 0)
    paces_b = tuple(t.pace for t in after.transitions) or (1.0,) * max(len(after.story_images) - 1, 0)
    if before.story_images == after.story_images and paces_a != paces_b:
        for i, (x, y) in enumerate(zip(paces_a, paces_b), start=1):
            cmp(f"transitions.{i}.pace", x, y)
    cmp("end_image", before.end_image, after.end_image)  # end frame, loop, variations (#12 §1, §3)
    cmp("loop", before.loop, after.loop)
    cmp("variations", before.variations, after.variations)
    return tuple(out)


def diff_text(changes: Sequence[FieldChange], after: MotionPlan) -> str:
    """Compact diff for the page: "hair speed 0.8 → 0.48, seed kept 1234"."""
    parts = [str(c) for c in changes if c.path != "seed"]
    seed = next((c for c in changes if c.path == "seed"), None)
    parts.append(f"seed {seed.before} → {seed.after}" if seed else f"seed kept {after.seed}")
    return ", ".join(parts)


def relative(ratio: float, less: str, more: str) -> str:
    """A change by `ratio` in plain words: "40% slower", "50% faster", "twice as fast", "3 times as fast"."""
    if ratio <= 0 or abs(ratio - 1) < 0.005:
        return ""
    if ratio < 1:
        return f"{max(1, round((1 - ratio) * 100))}% {less}"
    if ratio < 1.95:
        return f"{round((ratio - 1) * 100)}% {more}"
    times = round(ratio, 1)
    return "twice as " + _AS[more] if times == 2 else f"{times:g} times as {_AS[more]}"


_AS = {"faster": "fast", "more": "much"}




def _said(value: float, message: str) -> bool:
    """Did the person type this number?"""
    return re.search(rf"(?<![\d.]){re.escape(f'{value:g}')}(?![\d])", message) is not None


def _phrase(c: FieldChange, after: MotionPlan, message: str = "") -> str:
    """A change in words for the reply sentence: no numbers the person has not seen (a speed or a strength is
    said relative to before: "hair 40% slower"), the plan panel's names for the settings."""
    p = c.path
    if p.startswith("motions."):
        subject = p.split(".")[1]
        if p.count(".") == 1:
            if c.before is not None:
                return f"{subject} stopped moving"
            motion = after.motion(subject)
            return motion_phrase(motion) if motion is not None else f"{subject} moves"
        if p.endswith(".action") and str(c.after).startswith("the "):
            return str(c.after)  # a thing outside the canonical subjects: its action names it
        what = p.split(".")[2]
        if what == "speed":
            return f"{subject} {relative(c.after / c.before, 'slower', 'faster')}"
        if what == "intensity":
            return f"{subject} moves {relative(c.after / c.before, 'less', 'more')}"
        return f"{subject} now: {c.after}"
    if p == "template":
        return f"switched to the {get_template(c.after).title} template"
    if p == "camera.move":
        return "camera holds still" if c.after == "static" else f"camera: {camera_words(after)}"
    if p == "camera.speed":
        return f"camera {relative(c.after / c.before, 'slower', 'faster')}"
    if p == "atmosphere":
        added = [x for x in c.after if x not in c.before]
        removed = [x for x in c.before if x not in c.after]
        bits = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
        return " and ".join(bits) or "atmosphere reordered"
    if p == "duration_s":
        return f"length {c.before:g} s → {c.after:g} s"
    if p == "steps":
        return f"{c.after} steps (was {c.before})"
    if p in GUIDANCE_LABELS:
        return _guidance(GUIDANCE_LABELS[p], c, message)
    if p == "seed":
        return f"seed {c.after}"
    if p == "negative_terms":
        added = [x for x in c.after if x not in c.before]
        removed = [x for x in c.before if x not in c.after]
        bits = ([f"“{', '.join(added)}” added to the negative prompt"] if added else []) + \
            ([f"“{', '.join(removed)}” no longer avoided"] if removed else [])
        return " and ".join(bits) or "negative terms reordered"
    if p == "prompt_override":
        return "your own prompt is used" if c.after else "back to the compiled prompt"
    if p == "end_image":  # end frame, loop, variations (#12 §1, §3)
        return ("the clip now ends on the end picture you uploaded (no loop)" if c.after
                else "no end picture: the clip ends wherever the motion takes it")
    if p == "loop":
        return ("seamless loop: the clip ends where it starts (first frame = last frame)" if c.after
                else "no loop: the clip ends wherever the motion takes it")
    if p == "variations":
        return (f"{c.after} variations with different seeds, rendered as one batch" if c.after > 1
                else "one clip again (no variations)")
    return _phrase_long(c) or str(c)


def _phrase_long(c: FieldChange) -> str | None:
    """Long videos, story, smoother (#12 §2 §4 §5)."""
    p = c.path
    if p == "output_fps":
        return f"smoother: interpolated to {c.after} fps on export" if c.after else "no frame interpolation (16 fps)"
    if p == "upscale":
        return f"upscaled to {c.after} on export" if c.after else "exported at the rendered size"
    if p == "story":
        if not c.after:
            return "story mode off: the video animates the first picture only"
        if c.before and set(c.before) == set(c.after):
            return f"story order changed ({len(c.after)} pictures)"
        n = len(c.after)
        return f"story of {n} pictures, {n - 1} transition{'s' if n > 2 else ''}"
    if p.startswith("transitions."):
        i = p.split(".")[1]
        return f"transition {i} ({i} → {int(i) + 1}) {'slowed to' if c.after < c.before else 'sped up to'} {c.after:g}×"
    return None


def _guidance(label: str, c: FieldChange, message: str) -> str:
    """"prompt strength (early steps) 5" when the person typed 5, else "… raised" / "… lowered"."""
    if _said(c.after, message):
        return f"{label} {c.after:g}"
    return f"{label} {'raised' if c.after > c.before else 'lowered'}"


def _both_guidance(items: list[str]) -> list[str]:
    """The two prompt strengths changed alike are said once: "prompt strength raised (early and late steps)"."""
    early, late = GUIDANCE_LABELS.values()
    for i, item in enumerate(items):
        if item.startswith(early):
            rest = item[len(early):]
            twin = late + rest
            if twin in items:
                items = [x for x in items if x != twin]
                items[i] = f"prompt strength{rest} (early and late steps)"
            break
    return items


def _first_plan_items(edits: Sequence[Edit], shown: Sequence[FieldChange], after: MotionPlan,
                      message: str) -> list[str]:
    """The reply items of a first plan: what the message named, said as it is now ("the hair gently flows",
    "camera: slow zoom in"), even where the template already did it, so everything asked is mentioned; a
    template's own numbers the person never saw are not compared with."""
    subjects: list[str] = []
    for e in edits:
        subject = getattr(e, "subject", None)
        if e.op in ("add_motion", "scale_motion") and subject and subject != "all" and subject not in subjects:
            subjects.append(subject)
    subjects += [t for t in targets_of(message) if t not in subjects and t != "camera"]  # said, maybe as is
    for c in shown:
        if c.path.startswith("motions.") and c.path.count(".") == 2 and c.path.split(".")[1] not in subjects:
            subjects.append(c.path.split(".")[1])
    items: list[str] = []
    for subject in subjects:
        motion = after.motion(subject)
        if motion is not None and (f"motions.{subject}" not in {c.path for c in shown}):
            items.append(motion_phrase(motion))
    camera_named = any(e.op in ("set_camera", "scale_camera") for e in edits)
    rest = [c for c in shown if not (c.path.startswith("motions.") and c.path.count(".") == 2)
            and not c.path.startswith("camera.")]
    items += [_phrase(c, after, message) for c in rest if c.path != "seed"]
    paths = {c.path for c in shown}
    if any(e.op == "set_duration" for e in edits) and "duration_s" not in paths:
        items.append(f"{after.duration_s:g} s long")
    if any(e.op == "set_steps" for e in edits) and "steps" not in paths:
        items.append(f"{after.steps} steps")
    if camera_named or any(c.path.startswith("camera.") for c in shown):
        items.append("camera holds still" if after.camera.move == "static" else f"camera: {camera_words(after)}")
    return items


def build_reply(before: MotionPlan | None, base: MotionPlan | None, after: MotionPlan | None, *,
                created_from: str | None, edits: tuple[Edit, ...], notes: list[str], unparsed: Sequence[str],
                planner: str, understood: bool, undone: bool, recalled: list[str], message: str,
                answers: Sequence[str] = ()) -> Reply:
    """The reply to a turn: what changed (from the plans before and after), the notes, what was not
    understood, and the answers to questions; `after` is None when there is no plan yet (a first question)."""
    if after is None:
        text = " ".join(x for x in [*answers, _sentence("; ".join(notes))] if x)
        return Reply(text=text, diff="no plan yet", notes=tuple(notes), planner=planner, understood=understood)
    changes = plan_diff(before, after)
    shown = plan_diff(base, after) if created_from else changes
    items: list[str] = []
    if created_from:
        items.append(f"started from the {get_template(created_from).title} template (seed {after.seed})")
        # the template's motions left out of a first plan because the message named other things are said once,
        # in a note; a motion the message itself stopped ("no blinking") is said
        left_out = any(n.startswith(ONLY_NAMED_START) for n in notes)
        shown = tuple(c for c in shown if c.path != "template"
                      and not (left_out and c.path.count(".") == 1 and c.after is None))
    if undone:
        items.append("back to the previous plan")
    items += recalled
    if any(c.path == "camera.move" for c in shown):  # the new move is said with its pace ("slow pan left")
        shown = tuple(c for c in shown if c.path != "camera.speed")
    if any(c.path == "template" for c in shown):
        # a template switch brings the new template's defaults: say only what the person named besides
        named = _named_paths(edits)
        shown = tuple(c for c in shown if c.path == "template" or c.path.startswith(named))
    if any(c.path == "loop" and c.after for c in shown):  # a loop replaces the end picture: say the loop only
        shown = tuple(c for c in shown if c.path != "end_image")
    if any(c.path == "end_image" and c.after for c in shown):
        shown = tuple(c for c in shown if c.path != "loop")
    if created_from:
        said = _first_plan_items(edits, shown, after, message)
    else:
        said = [_phrase(c, after, message) for c in shown if c.path != "seed" and not (undone or recalled)]
    items += _both_guidance(said)
    seed_edit = next((e for e in edits if isinstance(e, SetSeed)), None)
    seed_change = next((c for c in changes if c.path == "seed"), None)
    if seed_change is not None and not created_from and not recalled:
        items.append(f"new seed {after.seed}" if seed_edit and seed_edit.policy == "new" else f"seed {after.seed}")
    elif seed_edit is not None and seed_edit.policy == "same":
        items.append(f"seed {after.seed} kept")
    if any(isinstance(e, AddNegative) for e in edits) and not any(c.path == "negative_terms" for c in shown):
        terms = [t for e in edits if isinstance(e, AddNegative) for t in e.terms]
        items.append(f"“{', '.join(terms)}” kept in the negative prompt")

    if len(items) > MAX_REPLY_ITEMS:
        more = len(items) - MAX_REPLY_ITEMS + 1
        items = items[:MAX_REPLY_ITEMS - 1] + [f"and {more} more change{'s' if more > 1 else ''}"]
    first = _sentence(", ".join(items)) if items else ""
    extra = list(notes)
    if unparsed:
        said = "; ".join(f"“{u}”" for u in unparsed[:3])
        if edits:
            extra.append(f"I did not understand {said}")
        else:
            extra.append(f"I could not tell what should move from {said}: tell me what to animate "
                         "(“her hair flows”, “slow zoom in”) or how to change the clip (“3 seconds”, “new seed”)")
    elif not items and not answers and all(n.startswith(READ_AS) for n in notes):
        if not message.strip():
            extra.append("What should move? Tell me what to animate (“her hair flows”, “slow zoom in”)")
        else:
            extra.append("Nothing to change: the plan already does that")
    second = _sentence("; ".join(extra)) if extra else ""
    text = " ".join(s for s in (first, second, *answers) if s)
    return Reply(text=text, changes=changes, diff=diff_text(changes, after) if before is not None else
                 f"new {after.template} plan, seed {after.seed}", edits=edits, notes=tuple(notes),
                 unparsed=tuple(unparsed), planner=planner, understood=understood)


def compare_text(comparison: Comparison, b: MotionPlan) -> str:
    """The reply to "compare #3 and #5": the two are shown side by side, and how the second one's plan differs."""
    words = [_phrase(c, b) for c in comparison.changes if c.path != "seed"]
    if any(c.path == "seed" for c in comparison.changes):
        words.append("a different seed")
    head = f"Here are #{comparison.a} and #{comparison.b} side by side"
    if not words:
        return f"{head}: their plans are the same."
    more = len(words) - MAX_REPLY_ITEMS
    listed = ", ".join(words[:MAX_REPLY_ITEMS]) + (f" and {more} more difference{'s' if more > 1 else ''}"
                                                    if more > 0 else "")
    return f"{head}; against #{comparison.a}, #{comparison.b} has {listed}."


def _named_paths(edits: Sequence[Edit]) -> tuple[str, ...]:
    """Plan paths the edits name ("motions.hair", "camera", "steps" ...)."""
    paths: list[str] = []
    for e in edits:
        subject = getattr(e, "subject", None)
        if subject == "all":
            paths.append("motions.")
        elif subject:
            paths.append(f"motions.{subject}")
        paths += {"set_camera": ["camera."], "scale_camera": ["camera."], "set_duration": ["duration_s"],
                  "set_steps": ["steps"], "set_guidance": ["guidance_scale"], "seed": ["seed"],
                  "add_negative": ["negative_terms"], "remove_negative": ["negative_terms"], "add_atmosphere": ["atmosphere"],
                  "remove_atmosphere": ["atmosphere"], "set_prompt": ["prompt_override"]}.get(e.op, [])
    return tuple(paths) or ("\0",)


def _sentence(s: str) -> str:
    s = s.strip()
    if not s:
        return ""
    s = s[0].upper() + s[1:]
    return s if s.endswith((".", "?", "!")) else s + "."
