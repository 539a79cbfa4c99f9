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
from dataclasses import dataclass, field
from typing import Any

from agent.edits import SetSeed
from agent.plan import MotionPlan
from storage import TERMINAL_STATUSES, GenerationRecord, ImageRecord, MessageRecord, NotFoundError, Store

from ui.diff import plan_diff

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "portrait_subtle"


class StudioError(ValueError):
    """Something the person asked for that cannot be done yet; the message says what to do."""


@dataclass(frozen=True)
class ChatEntry:
    """One line of the chat as the page shows it."""

    role: str  # user | assistant | system
    text: str
    kind: str = "chat"  # chat | panel_edit | image | generation
    diff: str = ""
    generation_id: int | None = None
    image_id: int | None = None


@dataclass
class Studio:
    """The current conversation, plan, picture and jobs of one browser session."""

    store: Store
    plan: MotionPlan
    conversation_id: int | None = None
    template_locked: bool = False
    image: ImageRecord | None = None
    entries: list[ChatEntry] = field(default_factory=list)
    history: list[MotionPlan] = field(default_factory=list)  # plans before each change, for undo
    base_generation_id: int | None = None  # the result the chat continues from (parent of the next render)
    active_job_id: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def fresh(cls, store: Store, rng: random.Random | None = None) -> Studio:
        """A new, empty session (the conversation row is created on the first thing worth keeping)."""
        from agent.templates import get_template

        rng = rng or random.Random()
        plan = get_template(DEFAULT_TEMPLATE).default_plan(seed=rng.randint(0, 2**31 - 1))
        return cls(store=store, plan=plan, rng=rng)

    @classmethod
    def resume(cls, store: Store, conversation_id: int | None = None, rng: random.Random | None = None) -> Studio:
        """The given conversation (default: the most recently active one) rebuilt from the store."""
        if conversation_id is None:
            recent = store.list_conversations(limit=1)
            if not recent:
                return cls.fresh(store, rng)
            conversation_id = recent[0].id
        messages = store.list_messages(conversation_id)
        studio = cls.fresh(store, rng)
        studio.conversation_id = conversation_id
        studio._replay(messages)
        gens = store.list_generations(conversation_id)
        if gens:
            studio.base_generation_id = gens[-1].id
            active = [g for g in gens if g.is_active]
            if active:  # still queued or running (another tab, or before a page reload)
                studio.active_job_id = active[-1].id
        return studio

    def _replay(self, messages: Sequence[MessageRecord]) -> None:
        for m in messages:
            meta = m.meta or {}
            kind = meta.get("kind", "chat")
            if m.plan is not None:
                try:
                    plan = MotionPlan.from_dict(m.plan)
                except ValueError as e:  # a plan written by an older version: skip it, say so in the log
                    log.warning("message %d holds a plan that no longer validates: %s", m.id, e)
                else:
                    if plan != self.plan:
                        self.history.append(self.plan)
                    self.plan = plan
            if "template_locked" in meta:
                self.template_locked = bool(meta["template_locked"])
            if kind == "branch" and meta.get("generation_id") is not None:
                self.base_generation_id = int(meta["generation_id"])
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

    def _ensure_conversation(self, title: str) -> int:
        if self.conversation_id is None:
            self.conversation_id = self.store.create_conversation(title[:80]).id
            if self.image is not None:  # the picture is part of the conversation from its first line
                self._record(self._image_entry(self.image), self.plan)
        return self.conversation_id

    def _record(self, entry: ChatEntry, plan: MotionPlan | None = None, **meta: Any) -> None:
        conv = self._ensure_conversation(entry.text if entry.role == "user" else "new conversation")
        full_meta = {"kind": entry.kind, **meta}
        if entry.diff:
            full_meta["diff"] = entry.diff
        if entry.generation_id is not None:
            full_meta["generation_id"] = entry.generation_id
        if entry.image_id is not None:
            full_meta["image_id"] = entry.image_id
        self.store.append_message(conv, entry.role, entry.text, plan.to_dict() if plan else None, full_meta)
        self.entries.append(entry)

    # --- the picture --------------------------------------------------------------------------

    def set_image(self, data: bytes, filename: str | None, width: int, height: int, fmt: str) -> ImageRecord:
        """Keep an uploaded picture (already validated by the page) as this conversation's input."""
        record = self.store.add_image(data, filename=filename, width=width, height=height, format=fmt)
        if self.image is not None and self.image.id == record.id:
            return record
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

    # --- plan edits -----------------------------------------------------------------------------

    def edit(self, edits: Sequence[Any], *, lock_template: bool = False) -> str:
        """Apply plan-panel edits (edit values); returns the compact diff ("" when nothing changed)."""
        from ui.adapters import apply_plan_edits

        new = apply_plan_edits(self.plan, edits, self.rng)
        return self._set_plan(new, lock_template=lock_template)

    def replace_plan(self, plan: MotionPlan, *, lock_template: bool = False) -> str:
        """Take a plan built elsewhere (the negative-terms box, a branch from the gallery)."""
        return self._set_plan(plan, lock_template=lock_template)

    def _set_plan(self, new: MotionPlan, *, lock_template: bool) -> str:
        diff = plan_diff(self.plan, new)
        locked_now = self.template_locked or lock_template
        if new == self.plan and locked_now == self.template_locked:
            return ""
        self.history.append(self.plan)
        self.plan = new
        self.template_locked = locked_now
        self._record(
            ChatEntry("system", "Plan edited in the panel", kind="panel_edit", diff=diff),
            new,
            template_locked=self.template_locked,
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

    def submit(self, runner: Any, backend: str, model_id: str, *, parent_id: int | None = None) -> GenerationRecord:
        """Queue the current plan on `runner`: a generation record (child of the result the chat
        continues from), a chat line, and the active job the progress bar follows."""
        if self.image is None:
            raise StudioError("Upload a picture first: the video starts from it.")
        plan = self.seed_for_render()
        conv = self._ensure_conversation("new conversation")
        parent = parent_id if parent_id is not None else self.base_generation_id
        record = runner.submit(plan.to_dict(), self.image.id, backend=backend, model_id=model_id,
                               conversation_id=conv, parent_id=parent)
        label = f"#{record.id} queued ({backend})" + (f", from #{parent}" if parent else "")
        self._record(ChatEntry("system", label, kind="generation", generation_id=record.id), plan)
        self.active_job_id = record.id
        self.base_generation_id = record.id
        return record

    def rerun(self, runner: Any, generation_id: int, *, new_seed: bool) -> GenerationRecord:
        """Render an earlier generation again as its child: the same plan and picture (and seed, unless
        `new_seed`), on the same backend and model. It joins that generation's conversation."""
        from agent.plan import MAX_SEED

        g = self.store.get_generation(generation_id)
        if g.source_image_id is None:
            raise StudioError(f"#{generation_id} has no source picture any more; it cannot be rendered again.")
        plan = MotionPlan.from_dict(g.plan)
        if new_seed:
            seed = plan.seed
            while seed == plan.seed:
                seed = self.rng.randint(0, MAX_SEED)
            plan = plan.with_changes(seed=seed, seed_policy="new")
        return runner.submit(plan.to_dict(), g.source_image_id, backend=g.backend, model_id=g.model_id,
                             conversation_id=g.conversation_id, parent_id=g.id)

    def branch_from(self, generation_id: int) -> None:
        """Start this (fresh) conversation from an earlier generation: its picture and plan, and it as parent."""
        g = self.store.get_generation(generation_id)
        if g.source_image_id is not None:
            self.image = self.store.get_image(g.source_image_id)
        self.plan = MotionPlan.from_dict(g.plan)
        self._ensure_conversation(f"branch of #{g.id}")
        self._record(ChatEntry("system", f"Branched from #{g.id}", kind="branch", generation_id=g.id), self.plan)
        self.base_generation_id = g.id
