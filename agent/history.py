"""History references: the conversation's earlier generations ("#12", "the second one", "the cat video"), from
the store's records or from the state, and what a `Recall` edit points at. With nothing rendered yet, "the second
one" is the second plan of the conversation."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Sequence

from agent import template_words as TW
from agent import vocabulary as V
from agent.compiler import compile_plan
from agent.edits import Recall
from agent.plan import MotionPlan, PlanError

log = logging.getLogger(__name__)

FAILED_STATUSES = ("failed", "cancelled")


@dataclass(frozen=True)
class GenerationRef:
    """An earlier generation a message may refer to: its id, the plan it rendered (JSON dict, as stored) and
    words that describe it (its prompt and what the person said before it)."""

    id: int
    plan: dict[str, Any]
    label: str = ""
    status: str = "succeeded"
    created_at: datetime | None = None
    batch_id: str | None = None  # the batch of variations it belongs to (#12 §3)


class GenerationSource(Protocol):
    """The part of storage.Store that history references use."""

    def list_generations(self, conversation_id: int) -> Sequence[Any]: ...

    def get_generation(self, generation_id: int) -> Any: ...


def generation_refs(state: Any, store: GenerationSource | None) -> list[GenerationRef]:
    """The generations of a conversation (a ConversationState), oldest first: from the store's records when
    there is one, else the state's own."""
    return _refs(state.generations, state.conversation_id, store)


def _refs(generations: Sequence[GenerationRef], conversation_id: int | None,
          store: GenerationSource | None) -> list[GenerationRef]:
    if store is None or conversation_id is None:
        return list(generations)
    records = list(store.list_generations(conversation_id))
    messages: list[Any] = []
    if hasattr(store, "list_messages"):
        messages = [m for m in store.list_messages(conversation_id) if getattr(m, "role", "") == "user"]
    refs = []
    previous: datetime | None = None
    for r in records:
        said = [m.text for m in messages
                if r.created_at is not None and m.created_at <= r.created_at
                and (previous is None or m.created_at > previous)]
        label = " ".join([r.prompt or "", r.template or "", *said])
        refs.append(GenerationRef(id=r.id, plan=r.plan, label=label, status=r.status, created_at=r.created_at,
                                  batch_id=getattr(r, "batch_id", None)))
        previous = r.created_at
    return refs


def recall(edit: Recall, generations: Sequence[GenerationRef], conversation_id: int | None,
           store: GenerationSource | None, plans: Sequence[MotionPlan] = ()
           ) -> tuple[tuple[str, MotionPlan] | None, str]:
    """What a Recall points at, as (what to say, compiled plan), or None and the reason. `plans` are the
    conversation's plans so far, oldest first, the current one last: with nothing rendered yet, "the second
    one" is the second of them and "the last one" the one before the current plan."""
    refs = _refs(generations, conversation_id, store)
    if edit.index is not None and not [g for g in refs if g.status not in FAILED_STATUSES]:
        return _from_plans(edit.index, plans)
    ref, why = _find(edit, refs, store)
    if ref is None:
        return None, why
    try:
        return (f"back to #{ref.id}", compile_plan(MotionPlan.from_dict(ref.plan))), ""
    except PlanError as e:
        log.warning("generation #%s has an unreadable plan: %s", ref.id, e)
        return None, f"the plan of #{ref.id} could not be read"


def find_generation(edit: Recall, generations: Sequence[GenerationRef], conversation_id: int | None,
                    store: GenerationSource | None) -> tuple[GenerationRef | None, str]:
    """The generation a reference ("#12", "the second one", "the cat video") points at, or None and the reason."""
    return _find(edit, _refs(generations, conversation_id, store), store)


def _find(edit: Recall, refs: Sequence[GenerationRef], store: GenerationSource | None
          ) -> tuple[GenerationRef | None, str]:
    shown = [g for g in refs if g.status not in FAILED_STATUSES]
    if edit.generation_id is not None:
        ref = next((g for g in refs if g.id == edit.generation_id), None)
        if ref is None and store is not None:
            ref = _get_from_store(store, edit.generation_id)
        return (ref, "") if ref is not None else (None, f"I found no generation #{edit.generation_id}")
    if edit.index is not None:
        i = edit.index - 1 if edit.index > 0 else len(shown) + edit.index
        if not 0 <= i < len(shown):
            if not shown:
                return None, "there are no videos in this conversation yet"
            return None, f"this conversation has {len(shown)} video{'s' if len(shown) != 1 else ''}, so there is no such one"
        return shown[i], ""
    if edit.query:
        ref = _match(edit.query, shown)
        return (ref, "") if ref is not None else (None, f"I found no earlier video matching “{edit.query}”")
    return None, "which earlier video? Say “#12”, “the second one” or “the last one”"


def pick(index: int, generations: Sequence[GenerationRef], conversation_id: int | None,
         store: GenerationSource | None, plans: Sequence[MotionPlan] = ()
         ) -> tuple[tuple[str, MotionPlan] | None, str]:
    """Clip `index` (1-based) of the conversation's last batch of variations, as (what to say, compiled plan),
    or None and the reason (#12 §3). With no batch yet, "I like the second one" is the second video (`recall`)."""
    refs = _refs(generations, conversation_id, store)
    last = next((g.batch_id for g in reversed(refs) if g.batch_id), None)
    if last is None:
        if refs or len(plans) > 1:
            return recall(Recall(index=index), generations, conversation_id, store, plans=plans)
        return None, "there is no batch of variations yet: say “give me 4 variations” first"
    batch = sorted((g for g in refs if g.batch_id == last), key=lambda g: g.id)
    if not 1 <= index <= len(batch):
        return None, f"the last batch has {len(batch)} variation{'s' if len(batch) != 1 else ''}, so there is no such one"
    ref = batch[index - 1]
    try:
        plan = compile_plan(MotionPlan.from_dict(ref.plan).with_changes(variations=1))
    except PlanError as e:
        log.warning("generation #%s has an unreadable plan: %s", ref.id, e)
        return None, f"the plan of #{ref.id} could not be read"
    return (f"picked variation {index} of {len(batch)} (#{ref.id}, seed {plan.seed})", plan), ""


def _from_plans(index: int, plans: Sequence[MotionPlan]) -> tuple[tuple[str, MotionPlan] | None, str]:
    """"the second one" before anything was rendered: the conversation's plans, counted from the first."""
    if len(plans) < 2:
        return None, "there are no earlier videos in this conversation yet"
    i = index - 1 if index > 0 else len(plans) - 1 + index  # "the last one": the plan before the current one
    if not 0 <= i < len(plans):
        return None, f"nothing was rendered yet and there are only {len(plans)} plans, so there is no such one"
    return (f"nothing was rendered yet, so back to plan {i + 1} of {len(plans)}", plans[i]), ""


def _get_from_store(store: GenerationSource, generation_id: int) -> GenerationRef | None:
    from storage.errors import NotFoundError

    try:
        r = store.get_generation(generation_id)
    except NotFoundError:
        return None
    return GenerationRef(id=r.id, plan=r.plan, label=" ".join([r.prompt or "", r.template or ""]),
                         status=r.status, created_at=r.created_at, batch_id=getattr(r, "batch_id", None))


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

