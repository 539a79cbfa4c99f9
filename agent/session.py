"""A conversation turn by turn: `plan_turn(state, message) -> (new_state, reply)`.

`ConversationState` is a frozen value: the current plan (None before the first turn), the earlier plans
(for undo), the template the person locked in the app, the conversation id and generations (for "same
as #12", "the second one", "the cat video"), recent turns and whether the hands were said to be in view.
The planner (the RulePlanner unless another is given) turns the message into edits; plan-level edits go
through agent.edits.apply (clamps and safety rules), session edits (undo, reset, recall) are handled here.
The reply says in one or two sentences what changed and what was not understood, and carries a compact
diff of the plan for the page.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, Sequence

from agent import template_words as TW
from agent import vocabulary as V
from agent.edits import (
    AddNegative,
    Edit,
    EditError,
    ParseResult,
    Planner,
    Recall,
    Reset,
    SESSION_OPS,
    SetSeed,
    SetTemplate,
    Undo,
    apply,
    draw_seed,
)
from agent.compiler import compile_plan, default_plan
from agent.plan import MotionPlan, PlanError
from agent.rules import RulePlanner, template_for
from agent.templates import DEFAULT_TEMPLATE, get_template

log = logging.getLogger(__name__)

MAX_UNDO = 50
MAX_TURNS_KEPT = 12
MAX_REPLY_ITEMS = 5
FAILED_STATUSES = ("failed", "cancelled")


# --- values --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRef:
    """An earlier generation a message may refer to: its id, the plan it rendered (JSON dict, as stored) and
    words that describe it (its prompt and what the person said before it)."""

    id: int
    plan: dict[str, Any]
    label: str = ""
    status: str = "succeeded"
    created_at: datetime | None = None


class GenerationSource(Protocol):
    """The part of storage.Store that history references use."""

    def list_generations(self, conversation_id: int) -> Sequence[Any]: ...

    def get_generation(self, generation_id: int) -> Any: ...


@dataclass(frozen=True)
class ConversationState:
    """Everything a turn needs to know about the conversation so far; a new state per turn."""

    plan: MotionPlan | None = None
    history: tuple[MotionPlan, ...] = ()  # earlier plans, oldest first ("undo" pops the last)
    template_lock: str | None = None  # the template the person chose in the app: it wins over words
    conversation_id: int | None = None  # with a store: where "the second one" is looked up
    generations: tuple[GenerationRef, ...] = ()  # without a store: the generations made so far
    turns: tuple[tuple[str, str], ...] = ()  # recent (role, text), oldest first, for the planner
    hands_in_view: bool = False  # the person said the hands are visible (gestures allowed)
    # True while the template is only the default guess (the messages named no category yet): the next
    # message's category words ("a cat on a sofa") choose the template then
    template_guessed: bool = False

    @property
    def template_locked(self) -> bool:
        return self.template_lock is not None

    def with_generation(self, generation_id: int, plan: MotionPlan | dict[str, Any], label: str = "",
                        status: str = "succeeded") -> ConversationState:
        """This state with a generation recorded (for use without a store)."""
        data = plan.to_dict() if isinstance(plan, MotionPlan) else dict(plan)
        ref = GenerationRef(id=generation_id, plan=data, label=label, status=status)
        return replace(self, generations=self.generations + (ref,))

    def lock_template(self, template: str | None) -> ConversationState:
        """Lock (or with None unlock) the template, as the app's template picker does. A plan that exists
        switches to the locked template through the normal template switch."""
        if template is not None:
            get_template(template)  # KeyError names the allowed ids
        return replace(self, template_lock=template)


def new_conversation(template: str | None = None, conversation_id: int | None = None) -> ConversationState:
    """An empty conversation; `template` locks the category as if chosen in the app."""
    return ConversationState(conversation_id=conversation_id).lock_template(template)


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


_LABELS = {"duration_s": "duration", "guidance_scale": "guidance", "guidance_scale_2": "guidance 2",
           "negative_terms": "negative", "prompt_override": "own prompt"}


def _show(x: Any) -> str:
    if x is None:
        return "none"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


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

    def __str__(self) -> str:
        return self.text


# --- the turn ------------------------------------------------------------------------------------------


def plan_turn(
    state: ConversationState,
    message: str,
    *,
    planner: Planner | None = None,
    rng: random.Random | None = None,
    store: GenerationSource | None = None,
) -> tuple[ConversationState, Reply]:
    """Run one chat turn: parse `message`, apply its edits to the plan, say what changed.

    `planner` defaults to the RulePlanner; any Planner works (the LLM hybrid). Fresh seeds come from `rng`
    (a random.Random; pass a seeded one for reproducible runs). `store` (storage.Store) resolves history
    references through the conversation's generation records; without it `state.generations` is used.
    """
    planner = planner or RulePlanner()
    rng = rng if rng is not None else random.Random()
    hands_in_view = (state.hands_in_view or TW.says_hands_in_view(message)
                     or (state.plan is None and TW.describes_hands(message))
                     or state.template_lock == "portrait_dynamic")

    # 1. What the planner sees: the plan, or the locked template's start when there is none yet
    notes: list[str] = []
    start: MotionPlan | None = state.plan
    if start is None and state.template_lock:
        start = default_plan(state.template_lock, seed=draw_seed(rng))
    if start is not None and state.template_lock and start.template != state.template_lock:
        start, switch_notes = apply(start, [SetTemplate(template=state.template_lock)], rng=rng, hands_in_view=True)
        notes += switch_notes

    # 2. Parse
    result = _parse(planner, message, start, state)
    notes += result.notes
    edits = list(result.edits)
    if state.template_lock:
        dropped = [e for e in edits if isinstance(e, SetTemplate)]
        edits = [e for e in edits if not isinstance(e, SetTemplate)]
        if any(e.template != state.template_lock for e in dropped):
            notes.append(f"the template chosen in the app stays {state.template_lock}")

    # 3. A plan still on the default template: category words in this message choose the template now
    if (state.plan is not None and state.template_guessed and not state.template_lock
            and not any(isinstance(e, SetTemplate) for e in edits)):
        chosen_now = template_for(message, hands_in_view=hands_in_view)
        if chosen_now and chosen_now != state.plan.template:
            edits.insert(0, SetTemplate(template=chosen_now))
    guessed = state.template_guessed and not any(isinstance(e, SetTemplate) for e in edits)

    # 4. A first plan: the template the message points at (or the default), with a fresh seed
    created_from: str | None = start.template if state.plan is None and start is not None else None
    if start is None:
        chosen = next((e.template for e in edits if isinstance(e, SetTemplate)), DEFAULT_TEMPLATE)
        edits = [e for e in edits if not isinstance(e, SetTemplate)]
        if chosen == "portrait_dynamic" and not hands_in_view:
            notes.append("gestures need the hands to be visible: started a subtle portrait instead")
            chosen = "portrait_subtle"
        start = default_plan(chosen, seed=draw_seed(rng))
        created_from = chosen
        guessed = not any(isinstance(e, SetTemplate) for e in result.edits)

    # 5. Apply, in order: session edits here, runs of plan edits through agent.edits.apply
    plan, history = start, state.history
    undone = False
    recalled: list[str] = []
    pending: list[Edit] = []

    def flush() -> None:
        nonlocal plan
        if pending:
            plan, more = apply(plan, pending, rng=rng, hands_in_view=hands_in_view)
            notes.extend(more)
            pending.clear()

    for edit in edits:
        if edit.op not in SESSION_OPS:
            pending.append(edit)
            continue
        flush()
        if isinstance(edit, Undo):
            if history:
                plan, history = history[-1], history[:-1]
                undone = True
            else:
                notes.append("there is nothing to undo yet")
        elif isinstance(edit, Reset):
            template = state.template_lock or plan.template
            plan = default_plan(template, seed=plan.seed)
            recalled.append(f"started over from the {template} template")
        elif isinstance(edit, Recall):
            found, why = _recall(edit, state, store)
            if found is None:
                notes.append(why)
            else:
                plan = found[1]
                recalled.append(f"back to #{found[0]}")
    flush()

    # 6. History, state and reply
    before = state.plan
    if before is not None and plan != before and not undone:
        history = (history + (before,))[-MAX_UNDO:]
    understood = bool(result.edits) or not result.unparsed
    reply = _reply(before, start if created_from else before, plan, created_from=created_from,
                   edits=tuple(result.edits), notes=notes, unparsed=result.unparsed, planner=result.planner,
                   understood=understood, undone=undone, recalled=recalled, message=message)
    turns = (state.turns + (("user", message), ("assistant", reply.text)))[-MAX_TURNS_KEPT:]
    new_state = replace(state, plan=plan, history=history, turns=turns, hands_in_view=hands_in_view,
                        template_guessed=guessed and not state.template_lock)
    return new_state, reply


def _parse(planner: Planner, message: str, plan: MotionPlan | None, state: ConversationState) -> ParseResult:
    """Run the planner; a planner other than the rules that raises falls back to the rules (and says so)."""
    kwargs = dict(history=state.turns[-8:], template_locked=state.template_locked)
    if isinstance(planner, RulePlanner):
        return planner.parse(message, plan, **kwargs)
    try:
        return planner.parse(message, plan, **kwargs)
    except (EditError, PlanError, ValueError, RuntimeError, TimeoutError, OSError) as e:
        log.warning("planner %s failed, falling back to the rules: %s", getattr(planner, "name", planner), e)
        result = RulePlanner().parse(message, plan, **kwargs)
        name = getattr(planner, "name", "the model")
        return ParseResult(edits=result.edits, unparsed=result.unparsed,
                           notes=[f"the {name} planner failed ({e}), so I used the rules"] + result.notes,
                           planner="rules")


# --- history references --------------------------------------------------------------------------------


def generation_refs(state: ConversationState, store: GenerationSource | None) -> list[GenerationRef]:
    """The conversation's generations, oldest first: from the store's records when there is one."""
    if store is None or state.conversation_id is None:
        return list(state.generations)
    records = list(store.list_generations(state.conversation_id))
    messages: list[Any] = []
    if hasattr(store, "list_messages"):
        messages = [m for m in store.list_messages(state.conversation_id) if getattr(m, "role", "") == "user"]
    refs = []
    previous: datetime | None = None
    for r in records:
        said = [m.text for m in messages
                if r.created_at is not None and m.created_at <= r.created_at
                and (previous is None or m.created_at > previous)]
        label = " ".join([r.prompt or "", r.template or "", *said])
        refs.append(GenerationRef(id=r.id, plan=r.plan, label=label, status=r.status, created_at=r.created_at))
        previous = r.created_at
    return refs


def _recall(edit: Recall, state: ConversationState, store: GenerationSource | None
            ) -> tuple[tuple[int, MotionPlan] | None, str]:
    """The generation a Recall points at, as (id, compiled plan), or None and the reason."""
    refs = generation_refs(state, store)
    shown = [g for g in refs if g.status not in FAILED_STATUSES]
    ref: GenerationRef | None = None
    if edit.generation_id is not None:
        ref = next((g for g in refs if g.id == edit.generation_id), None)
        if ref is None and store is not None:
            ref = _get_from_store(store, edit.generation_id)
        if ref is None:
            return None, f"I found no generation #{edit.generation_id}"
    elif edit.index is not None:
        if not shown:
            return None, "there are no earlier videos in this conversation yet"
        i = edit.index - 1 if edit.index > 0 else len(shown) + edit.index
        if not 0 <= i < len(shown):
            return None, f"this conversation has {len(shown)} video{'s' if len(shown) != 1 else ''}, so there is no such one"
        ref = shown[i]
    elif edit.query:
        ref = _match(edit.query, shown)
        if ref is None:
            return None, f"I found no earlier video matching “{edit.query}”"
    else:
        return None, "which earlier video? Say “#12”, “the second one” or “the last one”"
    try:
        return (ref.id, compile_plan(MotionPlan.from_dict(ref.plan))), ""
    except PlanError as e:
        log.warning("generation #%s has an unreadable plan: %s", ref.id, e)
        return None, f"the plan of #{ref.id} could not be read"


def _get_from_store(store: GenerationSource, generation_id: int) -> GenerationRef | None:
    from storage.errors import NotFoundError

    try:
        r = store.get_generation(generation_id)
    except NotFoundError:
        return None
    return GenerationRef(id=r.id, plan=r.plan, label=" ".join([r.prompt or "", r.template or ""]),
                         status=r.status, created_at=r.created_at)


_TOKEN = re.compile(r"[a-z0-9]+")


def _match(query: str, refs: Sequence[GenerationRef]) -> GenerationRef | None:
    """The most recent generation whose words contain the query's words; else one of the query's category."""
    words = set(_TOKEN.findall(query.lower())) - V.FILLER
    if not words:
        return None
    for ref in reversed(refs):
        label = set(_TOKEN.findall(ref.label.lower()))
        label |= {w[:-1] for w in label if w.endswith("s")}
        if words <= label:
            return ref
    templates = {TW.TEMPLATE_CUES[w][0] for w in words if w in TW.TEMPLATE_CUES}
    templates |= {TW.TEMPLATE_NAMES[w] for w in words if w in TW.TEMPLATE_NAMES}
    for ref in reversed(refs):
        if ref.plan.get("template") in templates:
            return ref
    return None


# --- diff and reply ------------------------------------------------------------------------------------


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
    return tuple(out)


def diff_text(changes: Sequence[FieldChange], after: MotionPlan) -> str:
    """Compact diff for the page: "hair speed 0.8 → 0.48, seed kept 1234"."""
    parts = [str(c) for c in changes if c.path != "seed"]
    seed = next((c for c in changes if c.path == "seed"), None)
    parts.append(f"seed {seed.before} → {seed.after}" if seed else f"seed kept {after.seed}")
    return ", ".join(parts)


def _phrase(c: FieldChange) -> str:
    """A change in words for the reply sentence."""
    p = c.path
    if p.startswith("motions."):
        subject = p.split(".")[1]
        if p.count(".") == 1:
            return f"added {subject}: {c.after.split(' ×')[0]}" if c.before is None else f"{subject} stopped moving"
        what = p.split(".")[2]
        if what == "speed":
            verb = "slowed to" if c.after < c.before else "sped up to"
            return f"{subject} {verb} {c.after:g}×"
        if what == "intensity":
            word = "subtler" if c.after < c.before else "stronger"
            return f"{subject} {word} ({c.before:g} → {c.after:g})"
        return f"{subject} now: {c.after}"
    if p == "template":
        return f"switched to the {c.after} template"
    if p == "camera.move":
        return "camera holds still" if c.after == "static" else f"camera: {c.after.replace('_', ' ')}"
    if p == "camera.speed":
        return f"camera {'slowed to' if c.after < c.before else 'sped up to'} {c.after:g}×"
    if p == "atmosphere":
        added = [x for x in c.after if x not in c.before]
        removed = [x for x in c.before if x not in c.after]
        bits = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
        return " and ".join(bits) or "atmosphere reordered"
    if p == "duration_s":
        return f"length {c.before:g} s → {c.after:g} s"
    if p == "steps":
        return f"{c.after} steps (was {c.before})"
    if p == "guidance_scale":
        return f"guidance {c.after:g}"
    if p == "guidance_scale_2":
        return f"low-noise guidance {c.after:g}"
    if p == "seed":
        return f"seed {c.after}"
    if p == "negative_terms":
        added = [x for x in c.after if x not in c.before]
        return f"“{', '.join(added)}” added to the negative prompt" if added else "negative terms changed"
    if p == "prompt_override":
        return "your own prompt is used" if c.after else "back to the compiled prompt"
    return str(c)


def _reply(before: MotionPlan | None, base: MotionPlan | None, after: MotionPlan, *, created_from: str | None,
           edits: tuple[Edit, ...], notes: list[str], unparsed: Sequence[str], planner: str, understood: bool,
           undone: bool, recalled: list[str], message: str) -> Reply:
    changes = plan_diff(before, after)
    shown = plan_diff(base, after) if created_from else changes
    items: list[str] = []
    if created_from:
        items.append(f"started from the {get_template(created_from).title} template (seed {after.seed})")
        shown = tuple(c for c in shown if c.path != "template")
    if undone:
        items.append("back to the previous plan")
    items += recalled
    if any(c.path == "template" for c in shown):
        # a template switch brings the new template's defaults: say only what the person named besides
        named = _named_paths(edits)
        shown = tuple(c for c in shown if c.path == "template" or c.path.startswith(named))
    items += [_phrase(c) for c in shown if c.path != "seed" and not (undone or recalled)]
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
    elif not items and not notes:
        if not message.strip():
            extra.append("What should move? Tell me what to animate (“her hair flows”, “slow zoom in”)")
        else:
            extra.append("Nothing to change: the plan already does that")
    second = _sentence("; ".join(extra)) if extra else ""
    text = " ".join(s for s in (first, second) if s)
    return Reply(text=text, changes=changes, diff=diff_text(changes, after) if before is not None else
                 f"new {after.template} plan, seed {after.seed}", edits=edits, notes=tuple(notes),
                 unparsed=tuple(unparsed), planner=planner, understood=understood)


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
