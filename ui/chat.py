"""The chat replayed from the studio's entries: user turns, replies with their plan diff, and small
system lines for panel edits, new pictures and renders."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import streamlit as st

from storage import GenerationRecord

from ui.format import plain, status_label
from vividflow.studio import ChatEntry, Studio

AVATARS = {"user": "user", "assistant": "assistant"}


def render_entry(entry: ChatEntry, generations: Mapping[int, GenerationRecord],
                 progress: Callable[[int], None] | None = None) -> bool:
    """Draw one entry; a render still queued or running gets `progress(generation id)` under its line
    (True when it did)."""
    if entry.kind == "chat" and entry.role in AVATARS:
        with st.chat_message(entry.role):
            st.markdown(plain(entry.text))  # typed text shows as typed (no images, links, HTML)
            if entry.diff:
                st.caption(f":material/difference: {plain(entry.diff)}")
        return False
    # system lines: one small caption each
    if entry.kind == "panel_edit":
        st.caption(f":material/tune: panel: {plain(entry.diff or 'plan edited')}")
    elif entry.kind == "image":
        st.caption(f":material/image: {plain(entry.text)}")
    elif entry.kind == "generation" and entry.generation_id is not None:
        g = generations.get(entry.generation_id)
        status = status_label(g.status) if g else "deleted"
        st.caption(f":material/movie: {plain(entry.text)} — {status}")
        if progress is not None and g is not None and g.is_active:
            progress(g.id)  # the render's progress shows in the turn that caused it
            return True
    else:
        st.caption(plain(entry.text))
    return False


SHOWN = 40  # entries drawn by default; older ones behind a toggle (long chats stay fast to rerun)


def render(studio: Studio, *, progress: Callable[[int], None] | None = None) -> bool:
    """The conversation, oldest first (the last SHOWN entries unless the person asks for all). The
    active render's progress (`progress(generation id)`) shows under its line; True when it was drawn."""
    if not studio.entries:
        with st.chat_message("assistant"):
            st.markdown(
                "Tell me how the picture should move, for example *“make her hair flow in the wind, "
                "slow zoom in”*. Then refine: *“slower hair, same seed”*, *“make it 5 seconds”*."
            )
        return False
    entries = studio.entries
    hidden = len(entries) - SHOWN
    if hidden > 0 and not st.toggle(f"Show {hidden} earlier message{'s' if hidden != 1 else ''}", key="chat.all"):
        entries = entries[-SHOWN:]
    generations: dict[int, GenerationRecord] = {}
    if studio.conversation_id is not None and any(e.kind == "generation" for e in entries):
        generations = {g.id: g for g in studio.store.list_generations(studio.conversation_id)}
    shown = False
    for entry in entries:
        active = progress if entry.generation_id == studio.active_job_id and not shown else None
        shown = render_entry(entry, generations, active) or shown
    return shown

