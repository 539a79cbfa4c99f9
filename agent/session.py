"""A conversation turn by turn: `plan_turn(state, message) -> (new_state, reply)`.

`ConversationState` is a frozen value: the current plan (None before the first turn), the earlier plans
(for undo and "the second one"), the template the person locked in the app, the conversation id and
generations (for "same as #12", "the cat video"), recent turns, whether the hands were said to be in view,
and the edits held back until they are ("her hands are visible, go ahead").
The planner (the RulePlanner unless another is given) turns the message into edits; plan-level edits go
through agent.edits.apply (clamps and safety rules), session edits (undo, reset, recall) are handled here.
Questions are answered and change nothing; "nevermind" drops what is held back. The reply (agent.replies)
says in one or two sentences what changed and carries a compact diff of the plan for the page.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from collections.abc import Sequence
from typing import Any

from agent import template_words as TW
from agent.compiler import compile_plan, default_plan
from agent.edits_long import story_duration
from agent.edits import (
    SESSION_OPS,
    AddMotion,
    CompareRequest,
    Edit,
    EditError,
    ParseResult,
    Planner,
    Recall,
    Reset,
    SetTemplate,
    Undo,
    apply,
    draw_seed,
)
from agent.end_and_batch import PickVariation
from agent.history import GenerationRef, GenerationSource, find_generation, pick, recall
from agent.language_replies import translate_reply
from agent.plan import MAX_MESSAGE_CHARS, STORY_PICTURES, MotionPlan, PlanError
from agent.replies import Comparison, Reply, build_reply, compare_text, diff_text, plan_diff
from agent.rules import RulePlanner, template_for
from agent.templates import DEFAULT_TEMPLATE, get_template
from vividflow.errors import VividflowError

log = logging.getLogger(__name__)

MAX_UNDO = 50
MAX_TURNS_KEPT = 12
__all__ = ["MAX_MESSAGE_CHARS", "MAX_TURNS_KEPT", "MAX_UNDO", "ConversationState", "MessageTooLong", "Reply",
           "check_message", "diff_text", "new_conversation", "plan_diff", "plan_turn"]


class MessageTooLong(VividflowError, ValueError):
    """A chat message past MAX_MESSAGE_CHARS: refused before any planning, the message says the limit."""

    def __init__(self, length: int, limit: int = MAX_MESSAGE_CHARS):
        super().__init__(f"a chat message can be at most {limit:,} characters and this one has {length:,}: "
                         "shorten it and send it again")
        self.length = length
        self.limit = limit


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
    # edits held back until the hands are said to be visible (a refused gesture); "nevermind" drops them
    pending: tuple[Edit, ...] = ()
    # story mode (#12 §4): the pictures uploaded for a story (sha256 of each stored image, in upload order) before
    # there is a plan; the first plan takes them
    story_pictures: tuple[str, ...] = ()
    # end frame (#12 §1): the media key of the end picture the person uploaded ("end on this picture"), its name
    end_upload: str | None = None
    end_label: str = ""

    @property
    def template_locked(self) -> bool:
        return self.template_lock is not None

    def with_generation(self, generation_id: int, plan: MotionPlan | dict[str, Any], label: str = "",
                        status: str = "succeeded", batch_id: str | None = None) -> ConversationState:
        """This state with a generation recorded (for use without a store)."""
        data = plan.to_dict() if isinstance(plan, MotionPlan) else dict(plan)
        ref = GenerationRef(id=generation_id, plan=data, label=label, status=status, batch_id=batch_id)
        return replace(self, generations=self.generations + (ref,))

    def with_story_pictures(self, keys: Sequence[str]) -> ConversationState:
        """The studio's story uploader (or the CLI's --story): the plan visits these pictures in this order (two to
        six; fewer end story mode). A plan that exists keeps its old self in the history, so "undo" takes them away."""
        keys = tuple(keys) if len(keys) >= STORY_PICTURES[0] else ()
        if self.plan is None:
            return replace(self, story_pictures=keys)
        if self.plan.story_images == keys:
            return self
        ends = {"loop": False, "end_image": None} if keys else {}  # a story ends on its last picture (#12 §1 × §4)
        plan = story_duration(self.plan.with_changes(story_images=keys, transitions=(), **ends), [])
        return replace(self, plan=compile_plan(plan), history=(self.history + (self.plan,))[-MAX_UNDO:],
                       story_pictures=keys)
    def with_end_upload(self, key: str | None, label: str = "") -> ConversationState:
        """This state with an end picture uploaded (its media key; None: removed), which "end on this picture"
        then uses (#12 §1)."""
        return replace(self, end_upload=key, end_label=label if key else "")

    def lock_template(self, template: str | None) -> ConversationState:
        """Lock (or with None unlock) the template, as the app's template picker does. A plan that exists
        switches to the locked template through the normal template switch."""
        if template is not None:
            get_template(template)  # KeyError names the allowed ids
        return replace(self, template_lock=template)


def check_message(message: str) -> None:
    """Raise MessageTooLong for a message past MAX_MESSAGE_CHARS (plan_turn does this first)."""
    if len(message) > MAX_MESSAGE_CHARS:
        raise MessageTooLong(len(message))


def new_conversation(template: str | None = None, conversation_id: int | None = None) -> ConversationState:
    """An empty conversation; `template` locks the category as if chosen in the app."""
    return ConversationState(conversation_id=conversation_id).lock_template(template)


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
    A message longer than MAX_MESSAGE_CHARS raises MessageTooLong (nothing is planned or changed).
    """
    check_message(message)
    planner = planner or RulePlanner()
    rng = rng if rng is not None else random.Random()
    said_hands_in_view = TW.says_hands_in_view(message)
    hands_in_view = (state.hands_in_view or said_hands_in_view
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

    # 2. Parse; a question, an off-topic request or "nevermind" alone changes nothing (not even a first plan)
    result = _parse(planner, message, start, state)
    notes += result.notes
    answers = list(result.answers)
    comparison = None
    if result.compare is not None:  # "compare #3 and #5": said, and handed to the page; the plan stays
        comparison, said = _compare(result.compare, state, store)
        (answers if comparison is not None else notes).append(said)
    edits = list(result.edits)
    pending = state.pending
    if result.cancel:
        notes.append(_cancel_note(pending))
        pending = ()
    if pending and said_hands_in_view:
        notes.append("the hands are visible now, so I added the gesture you asked for before")
        edits += [e for e in pending if e not in edits]
        pending = ()
    if not edits and (result.answers or result.cancel or result.compare) and not result.unparsed:
        reply = build_reply(state.plan, state.plan, state.plan, created_from=None, edits=(), notes=notes,
                            unparsed=(), planner=result.planner, understood=True, undone=False, recalled=[],
                            message=message, answers=answers)
        reply = _in_language(replace(reply, compare=comparison), result.reply_language)
        turns = (state.turns + (("user", message), ("assistant", reply.text)))[-MAX_TURNS_KEPT:]
        return replace(state, turns=turns, pending=pending), reply
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

    if state.plan is None and state.story_pictures:  # pictures uploaded for a story before the first message
        start = story_duration(start.with_changes(story_images=state.story_pictures), notes)
    # 5. Apply, in order: session edits here, runs of plan edits through agent.edits.apply
    plan, history = start, state.history
    undone = False
    recalled: list[str] = []
    run: list[Edit] = []

    def flush() -> None:
        nonlocal plan
        if run:
            plan, more = apply(plan, run, rng=rng, hands_in_view=hands_in_view, end_upload=state.end_upload)
            notes.extend(more)
            run.clear()

    for edit in edits:
        if edit.op not in SESSION_OPS:
            run.append(edit)
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
        elif isinstance(edit, (Recall, PickVariation)):  # "like #12", "I like the third one" (#12 §3)
            plans = state.history + ((state.plan,) if state.plan is not None else ())
            if isinstance(edit, Recall):
                found, why = recall(edit, state.generations, state.conversation_id, store, plans=plans)
            else:
                found, why = pick(edit.index, state.generations, state.conversation_id, store, plans=plans)
            if found is None:
                notes.append(why)
            else:
                plan = found[1]
                recalled.append(found[0])
    flush()

    # 6. A gesture refused because the hands were not said to be visible waits for "her hands are visible"
    if not hands_in_view and plan.template != "fashion" and plan.motion("hands") is None:
        pending += tuple(e for e in edits if isinstance(e, AddMotion) and e.subject == "hands" and e not in pending)

    # 7. History, state and reply
    before = state.plan
    if before is not None and plan != before and not undone:
        history = (history + (before,))[-MAX_UNDO:]
    understood = bool(result.edits) or not result.unparsed
    reply = build_reply(before, start if created_from else before, plan, created_from=created_from,
                        edits=tuple(result.edits), notes=notes, unparsed=result.unparsed, planner=result.planner,
                        understood=understood, undone=undone, recalled=recalled, message=message,
                        answers=answers)
    reply = _in_language(replace(reply, compare=comparison), result.reply_language)
    turns = (state.turns + (("user", message), ("assistant", reply.text)))[-MAX_TURNS_KEPT:]
    new_state = replace(state, plan=plan, history=history, turns=turns, hands_in_view=hands_in_view,
                        template_guessed=guessed and not state.template_lock, pending=pending)
    return new_state, reply


def _compare(request: CompareRequest, state: ConversationState, store: GenerationSource | None
             ) -> tuple[Comparison | None, str]:
    """The two generations a compare request names, resolved like "#12" / "the second one", and what to say."""
    found: list[GenerationRef] = []
    for ref in (request.a, request.b):
        generation, why = find_generation(ref, state.generations, state.conversation_id, store)
        if generation is None:
            return None, f"{why}, so there is nothing to compare"
        found.append(generation)
    a, b = found
    if a.id == b.id:
        return None, f"both point at #{a.id}: name two different videos to compare (“compare #3 and #5”)"
    try:
        plan_a, plan_b = MotionPlan.from_dict(a.plan), MotionPlan.from_dict(b.plan)
    except PlanError as e:
        log.warning("compare #%s and #%s: a plan could not be read: %s", a.id, b.id, e)
        comparison = Comparison(a=a.id, b=b.id)
        return comparison, f"Here are #{a.id} and #{b.id} side by side (a plan could not be read, so no differences)."
    comparison = Comparison(a=a.id, b=b.id, changes=plan_diff(plan_a, plan_b))
    return comparison, compare_text(comparison, plan_b)


def _in_language(reply: Reply, lang: str) -> Reply:
    return reply if lang == "en" else replace(reply, text=translate_reply(reply.text, lang))


def _cancel_note(pending: tuple[Edit, ...]) -> str:
    if not pending:
        return "okay, nothing was waiting on you, so nothing changed"
    what = ", ".join(f"{e.subject}: {e.action}" for e in pending if isinstance(e, AddMotion))
    return f"okay, I dropped what I was holding back ({what})"


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
                           planner="rules", answers=result.answers, cancel=result.cancel,
                           reply_language=result.reply_language, compare=result.compare)
