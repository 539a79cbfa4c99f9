"""One person's working session in the studio, as plain Python (no Streamlit): the conversation, its
current plan and picture, and what it asked the runner to render.

Everything that must survive a restart is written to the store as it happens; `Studio.resume` rebuilds
a session from the store alone:

- each chat turn: the user message, then the assistant reply with the plan after the turn
  (`meta.diff` holds the compact plan diff);
- a plan panel edit: a `system` message with the new plan (`meta.kind = "panel_edit"`);
- a new picture: a `system` message with `meta.kind = "image"` and the image id;
- a render: a generation record (its `conversation_id`, `parent_id`) and a `system` message
  `meta.kind = "generation"` so the chat shows it in order.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agent.compiler import default_plan
from agent.edits import SetSeed, SetTemplate, apply, draw_seed
from agent.plan import MotionPlan
from agent.session import MAX_TURNS_KEPT, MAX_UNDO, ConversationState, Reply, diff_text, plan_diff, plan_turn
from agent.session import MessageTooLong, check_message
from agent.templates import DEFAULT_TEMPLATE
from storage import (
    LOCAL_USER,
    TERMINAL_STATUSES,
    GenerationRecord,
    ImageRecord,
    MessageRecord,
    NotFoundError,
    Store,
)
from vividflow.errors import VividflowError

log = logging.getLogger(__name__)


class StudioError(VividflowError, ValueError):
    """Something the person asked for that cannot be done yet; the message says what to do."""


@dataclass(frozen=True)
class ChatEntry:
    """One line of the chat as the page shows it."""

    role: str  # user | assistant | system
    text: str
    kind: str = "chat"  # chat | panel_edit | image | generation | branch
    diff: str = ""
    generation_id: int | None = None
    image_id: int | None = None


@dataclass(frozen=True)
class _SeenBy:
    """The store as one person sees it, for the chat's history references ("like #3"): another person's
    generation is not found unless it is shared."""

    store: Store
    user: str

    def list_generations(self, conversation_id: int) -> list[GenerationRecord]:
        return self.store.list_generations(conversation_id)

    def list_messages(self, conversation_id: int) -> list[MessageRecord]:
        return self.store.list_messages(conversation_id, viewer=self.user)

    def get_generation(self, generation_id: int) -> GenerationRecord:
        return self.store.get_generation(generation_id, viewer=self.user)


@dataclass
class Studio:
    """The current conversation, plan, picture and jobs of one browser session.

    `state` is agent.session's ConversationState (plan, undo history, template lock, recent turns);
    before the first turn or panel edit it has no plan and the panel shows `draft` (the default template).
    `user` is the person (ui.auth.current_user): their conversations and renders only, others' shared ones read.
    """

    store: Store
    state: ConversationState
    draft: MotionPlan
    image: ImageRecord | None = None
    entries: list[ChatEntry] = field(default_factory=list)
    base_generation_id: int | None = None  # the result the chat continues from (parent of the next render)
    active_job_id: int | None = None
    rng: random.Random = field(default_factory=random.Random)
    user: str = LOCAL_USER

    @property
    def plan(self) -> MotionPlan:
        if self.state.plan is None and self.state.story_pictures:  # story pictures uploaded before the first message
            from agent.edits_long import story_duration

            draft = self.draft.with_changes(story_images=self.state.story_pictures, loop=False, end_image=None)
            return story_duration(draft, [])
        return self.state.plan if self.state.plan is not None else self.draft

    @property
    def conversation_id(self) -> int | None:
        return self.state.conversation_id

    @property
    def template_locked(self) -> bool:
        return self.state.template_locked

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def fresh(cls, store: Store, rng: random.Random | None = None, *, user: str = LOCAL_USER) -> Studio:
        """A new, empty session (the conversation row is created on the first thing worth keeping)."""
        rng = rng or random.Random()
        draft = default_plan(DEFAULT_TEMPLATE, seed=draw_seed(rng))
        return cls(store=store, state=ConversationState(), draft=draft, rng=rng, user=user)

    @classmethod
    def resume(cls, store: Store, conversation_id: int | None = None, rng: random.Random | None = None,
               *, user: str = LOCAL_USER) -> Studio:
        """The given conversation of `user` (default: their most recently active one) rebuilt from the store;
        another person's conversation is refused (NotFoundError), shared or not: it is theirs to continue."""
        if conversation_id is None:
            recent = store.list_conversations(limit=1, user=user)
            if not recent:
                return cls.fresh(store, rng, user=user)
            conversation_id = recent[0].id
        elif store.get_conversation(conversation_id).user_id != user:
            raise NotFoundError(f"no conversation with id {conversation_id}")
        messages = store.list_messages(conversation_id)
        studio = cls.fresh(store, rng, user=user)
        studio.state = replace(studio.state, conversation_id=conversation_id)
        studio._replay(messages)
        gens = store.list_generations(conversation_id)
        if gens:
            studio.base_generation_id = gens[-1].id
            active = [g for g in gens if g.is_active]
            if active:  # still queued or running (another tab, or before a page reload)
                studio.active_job_id = active[-1].id
        return studio

    def _replay(self, messages: Sequence[MessageRecord]) -> None:
        """Rebuild the state from the stored messages: the last plan is current, the plans before it are
        the undo history (consecutive repeats dropped), the last template lock holds."""
        plans: list[MotionPlan] = []
        turns: list[tuple[str, str]] = []
        end_key: str | None = None
        end_label = ""
        lock: str | None = None
        hands = False
        for m in messages:
            meta = m.meta or {}
            kind = meta.get("kind", "chat")
            if m.plan is not None:
                try:
                    plan = MotionPlan.from_dict(m.plan)
                except ValueError as e:  # a plan written by an older version: skip it, say so in the log
                    log.warning("message %d holds a plan that no longer validates: %s", m.id, e)
                else:
                    if not plans or plans[-1] != plan:
                        plans.append(plan)
            if "template_lock" in meta:
                lock = meta["template_lock"]
            hands = hands or bool(meta.get("hands_in_view"))
            if kind == "chat" and m.role in ("user", "assistant"):
                turns.append((m.role, m.text))
            if kind == "branch" and meta.get("generation_id") is not None:
                self.base_generation_id = int(meta["generation_id"])
            if kind == "end_image":  # the end picture uploaded (#12 §1); None: removed
                end_key, end_label = meta.get("end_image"), str(meta.get("filename") or "")
            if kind == "image" and meta.get("image_id") is not None:
                try:
                    self.image = self.store.get_image(int(meta["image_id"]))
                except NotFoundError:
                    log.warning("conversation %s refers to image %s, which is gone", m.conversation_id, meta["image_id"])
            self.entries.append(
                ChatEntry(
                    role=m.role,
                    text=m.text,
                    kind=kind,
                    diff=str(meta.get("diff", "")),
                    generation_id=meta.get("generation_id"),
                    image_id=meta.get("image_id"),
                )
            )
        has_plan = any(m.plan is not None and (m.meta or {}).get("kind") in ("chat", "panel_edit", "branch")
                       for m in messages)
        self.state = replace(
            self.state,
            plan=plans[-1] if plans and has_plan else None,
            history=tuple(plans[:-1])[-MAX_UNDO:] if has_plan else (),
            template_lock=lock,
            turns=tuple(turns[-MAX_TURNS_KEPT:]),
            hands_in_view=hands,
        ).with_end_upload(end_key, end_label)
        if plans and not has_plan:
            self.draft = plans[-1]

    def _ensure_conversation(self, title: str) -> int:
        if self.state.conversation_id is None:
            conv = self.store.create_conversation(title[:80], user=self.user).id
            self.state = replace(self.state, conversation_id=conv)
            if self.image is not None:  # the picture is part of the conversation from its first line
                self._record(self._image_entry(self.image), self.plan)
        return self.state.conversation_id

    def _record(self, entry: ChatEntry, plan: MotionPlan | None = None, **meta: Any) -> None:
        conv = self._ensure_conversation(entry.text if entry.role == "user" else "new conversation")
        full_meta = {"kind": entry.kind, **meta}
        if entry.diff:
            full_meta["diff"] = entry.diff
        if entry.generation_id is not None:
            full_meta["generation_id"] = entry.generation_id
        if entry.image_id is not None:
            full_meta["image_id"] = entry.image_id
        self.store.append_message(conv, entry.role, entry.text, plan.to_dict() if plan else None, full_meta,
                                  user=self.user)
        self.entries.append(entry)

    def _state_meta(self) -> dict[str, Any]:
        return {"template_lock": self.state.template_lock, "hands_in_view": self.state.hands_in_view}

    # --- the picture --------------------------------------------------------------------------

    def set_image(self, data: bytes, filename: str | None, width: int, height: int, fmt: str) -> ImageRecord:
        """Keep an uploaded picture (already validated by the page) as this conversation's input."""
        record = self.store.add_image(data, filename=filename, width=width, height=height, format=fmt)
        if self.image is not None and self.image.id == record.id and self.conversation_id is not None:
            return record  # the same picture again: nothing changes (a new chat still records it below)
        self.image = record
        self.base_generation_id = None  # a new picture starts a new line of results
        if self.conversation_id is None:
            self._ensure_conversation(filename or "new conversation")  # records the picture
        else:
            self._record(self._image_entry(record), self.plan)
        return record

    @staticmethod
    def _image_entry(image: ImageRecord) -> ChatEntry:
        return ChatEntry("system", f"Picture: {image.filename or 'image'} ({image.width}×{image.height})",
                         kind="image", image_id=image.id)

    def set_story_pictures(self, uploads: Sequence[tuple[bytes, str | None, int, int, str]]) -> list[ImageRecord]:
        """Story mode (#12 §4): two to six validated uploads (data, filename, width, height, format) in order; the
        first is the picture, the plan visits them all (fewer than two: story mode off). Recorded like a panel edit."""
        records = [self.store.add_image(d, filename=n, width=w, height=h, format=f) for d, n, w, h, f in uploads]
        if records:
            self.set_image(*uploads[0])
        old = self.state.plan
        self.state = self.state.with_story_pictures([r.sha256 for r in records])
        if self.state.plan is not None and self.state.plan != old:
            diff = diff_text(plan_diff(old, self.state.plan), self.state.plan)
            self._record(ChatEntry("system", f"Story: {len(records)} pictures", kind="panel_edit", diff=diff),
                         self.state.plan, **self._state_meta())
        return records

    # --- chat ----------------------------------------------------------------------------------

    def chat(self, message: str, *, planner: Any = None) -> Reply:
        """One chat turn through agent.session.plan_turn; both messages and the new plan are stored."""
        message = message.strip()
        if not message:
            raise StudioError("Type what should move, e.g. “her hair flows in the wind”.")
        try:
            check_message(message)
        except MessageTooLong as e:
            raise StudioError(f"{str(e)[0].upper()}{str(e)[1:]}.") from None
        self._ensure_conversation(message)
        new_state, reply = plan_turn(self.state, message, planner=planner, rng=self.rng,
                                     store=_SeenBy(self.store, self.user))
        self.state = new_state
        if any(e.op == "pick" for e in reply.edits):  # "I like the third one": refine that clip (#12 §3)
            self._continue_from_picked()
        self._record(ChatEntry("user", message))
        self._record(
            ChatEntry("assistant", reply.text, diff=reply.diff),
            new_state.plan,
            planner=reply.planner,
            **self._state_meta(),
        )
        return reply

    # --- plan edits -----------------------------------------------------------------------------

    def edit(self, edits: Sequence[Any], *, lock_template: bool = False) -> tuple[str, list[str]]:
        """Apply plan-panel edits (edit values) through agent.edits.apply; returns (compact diff, notes).
        Choosing a template in the panel locks it: the chat will not switch it."""
        state = self.state
        if lock_template:
            chosen = next((e.template for e in edits if isinstance(e, SetTemplate)), None)
            state = state.lock_template(chosen)
        new, notes = apply(self.plan, list(edits), rng=self.rng,
                           hands_in_view=state.hands_in_view or lock_template)
        self.state = state
        return self._set_plan(new), notes

    def replace_plan(self, plan: MotionPlan) -> str:
        """Take a plan built elsewhere (the negative-terms box)."""
        return self._set_plan(plan)

    def _set_plan(self, new: MotionPlan) -> str:
        old = self.plan
        if new == old and self.state.plan is not None:
            return ""
        diff = diff_text(plan_diff(old, new), new) if new != old else ""
        history = self.state.history + ((old,) if self.state.plan is not None and new != old else ())
        self.state = replace(self.state, plan=new, history=history[-MAX_UNDO:])
        self._record(
            ChatEntry("system", "Plan edited in the panel", kind="panel_edit", diff=diff),
            new,
            **self._state_meta(),
        )
        return diff

    # --- rendering ------------------------------------------------------------------------------

    def seed_for_render(self) -> MotionPlan:
        """The plan to render: with seed policy "new" and a seed this conversation already rendered,
        a fresh seed is drawn first (so Generate again gives a variation unless the seed is locked)."""
        if self.plan.seed_policy != "new" or self.conversation_id is None:
            return self.plan
        used = {g.seed for g in self.store.list_generations(self.conversation_id)}
        if self.plan.seed in used:
            self.edit([SetSeed(policy="new")])
        return self.plan

    def active_job(self) -> GenerationRecord | None:
        if self.active_job_id is None:
            return None
        try:
            return self.store.get_generation(self.active_job_id)
        except NotFoundError:
            self.active_job_id = None
            return None

    def latest_result(self, *, finished: bool = False) -> GenerationRecord | None:
        """The newest generation of this conversation (only ended ones with `finished`), or None."""
        if self.conversation_id is None:
            return None
        status = TERMINAL_STATUSES if finished else None
        page = self.store.list_gallery(conversation_id=self.conversation_id, status=status, page_size=1)
        return page.items[0] if page.items else None

    # --- renders ----------------------------------------------------------------------------------

    def submit(self, runner: Any, backend: str, model_id: str, *, parent_id: int | None = None,
               quota: int | None = None) -> GenerationRecord:
        """Queue the current plan on `runner`: a generation record (child of the result the chat
        continues from), a chat line, and the active job the progress bar follows. `quota`: the most jobs
        this person may have queued or running (storage.QuotaExceededError past it)."""
        if self.image is None:
            raise StudioError("Upload a picture first: the video starts from it.")
        plan = self.seed_for_render()
        conv = self._ensure_conversation("new conversation")
        parent = parent_id if parent_id is not None else self.base_generation_id
        records = runner.submit_batch(plan, self.image.id, backend=backend, model_id=model_id,
                                      conversation_id=conv, parent_id=parent, user=self.user, quota=quota)
        record = records[-1]  # a batch is one job: the page follows its last clip
        label = (f"Render #{records[0].id}–#{record.id} ({len(records)} variations) on {backend}" if len(records) > 1
                 else f"Render #{record.id} on {backend}") + (f", a child of #{parent}" if parent else "")
        self._record(ChatEntry("system", label, kind="generation", generation_id=record.id), plan)
        self.active_job_id = record.id
        self.base_generation_id = record.id
        return record

    def rerun(self, runner: Any, generation_id: int, *, new_seed: bool, quota: int | None = None) -> GenerationRecord:
        """Render an earlier generation again as its child: the same plan and picture (and seed, unless
        `new_seed`), on the same backend and model. It joins that generation's conversation when it is this
        person's own (another person's shared one gives a render of their own, in no conversation)."""
        g = self.store.get_generation(generation_id, viewer=self.user)
        if g.source_image_id is None:
            raise StudioError(f"#{generation_id} has no source picture any more; it cannot be rendered again.")
        plan = MotionPlan.from_dict(g.plan)
        if new_seed:
            plan = plan.with_changes(seed=draw_seed(self.rng, avoid=plan.seed), seed_policy="new")
        conversation = g.conversation_id if g.user_id == self.user else None
        return runner.submit(plan.to_dict(), g.source_image_id, backend=g.backend, model_id=g.model_id,
                             conversation_id=conversation, parent_id=g.id, user=self.user, quota=quota)

    def branch_from(self, generation_id: int) -> None:
        """Start this (fresh) conversation from an earlier generation (this person's, or a shared one): its
        picture and plan, and it as parent."""
        g = self.store.get_generation(generation_id, viewer=self.user)
        if g.source_image_id is not None:
            self.image = self.store.get_image(g.source_image_id)
        self.state = replace(self.state, plan=MotionPlan.from_dict(g.plan))
        self._ensure_conversation(f"branch of #{g.id}")
        self._record(ChatEntry("system", f"Branched from #{g.id}", kind="branch", generation_id=g.id), self.plan,
                     **self._state_meta())
        self.base_generation_id = g.id

    # --- end picture and variations (#12 §1, §3) ----------------------------------------------------

    def set_end_image(self, data: bytes, filename: str | None, width: int, height: int, fmt: str) -> ImageRecord:
        """Keep an uploaded end picture (validated by the page); "end on this picture" then uses it."""
        record = self.store.add_image(data, filename=filename, width=width, height=height, format=fmt)
        self.state = self.state.with_end_upload(record.sha256, filename or "")
        self._record(ChatEntry("system", f"End picture: {filename or 'image'} ({record.width}×{record.height}) · "
                               "say “end on this picture” to end the clip on it", kind="end_image",
                               image_id=record.id), self.plan, end_image=record.sha256, filename=filename or "")
        return record

    def clear_end_image(self) -> None:
        """Forget the uploaded end picture (a plan that ends on it keeps it until "don't end on that picture")."""
        self.state = self.state.with_end_upload(None)
        self._record(ChatEntry("system", "End picture removed", kind="end_image"), self.plan, end_image=None)

    @property
    def end_image(self) -> ImageRecord | None:
        """The uploaded end picture, if any."""
        key = self.state.end_upload
        return self.store.find_image(key) if key else None

    def batch_of(self, g: GenerationRecord) -> list[GenerationRecord]:
        """The clips of `g`'s batch of variations in order ([g] for a single clip)."""
        return self.store.list_batch(g.batch_id, viewer=self.user) if g.batch_id else [g]

    def pick_variation(self, generation_id: int) -> None:
        """Make one clip of a batch the current plan (one clip, its seed) and the result the chat continues from."""
        g = self.store.get_generation(generation_id, viewer=self.user)
        batch = self.batch_of(g)
        k = next(i for i, b in enumerate(batch, start=1) if b.id == g.id)
        plan = MotionPlan.from_dict(g.plan).with_changes(variations=1)
        old = self.plan
        history = self.state.history + ((old,) if self.state.plan is not None and plan != old else ())
        self.state = replace(self.state, plan=plan, history=history[-MAX_UNDO:])
        self._record(ChatEntry("system", f"Picked variation {k} of {len(batch)} (#{g.id}, seed {g.seed})",
                               kind="branch", generation_id=g.id), plan, **self._state_meta())
        self.base_generation_id = g.id

    def _continue_from_picked(self) -> None:
        """After "I like the third one": the picked clip (same seed, in the newest batch) is the parent."""
        if self.conversation_id is None:
            return
        gens = [g for g in self.store.list_generations(self.conversation_id) if g.batch_id]
        latest = gens[-1].batch_id if gens else None
        match = next((g for g in gens if g.batch_id == latest and g.seed == self.plan.seed), None)
        if match is not None:
            self.base_generation_id = match.id
