"""The end picture uploader and the grid of a batch of variations (#12 §1, §3).

The optional "End frame" uploader keeps a second picture; the chat's "end on this picture" makes the clip end
on it ("make it loop" ends on the first picture instead). A batch of variations shows as a grid, each clip
with "Use this one", which makes it the current plan for further refinement ("I like the third one" in the
chat does the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from storage import GenerationRecord

from ui.format import plain, status_label
from ui.widgets import is_current, scoped
from vividflow.studio import Studio

K = "endbatch."
GRID_COLUMNS = 2  # the result column is narrow: 2 × 2 for a batch of 4
LINK_COLUMNS = 4


UPLOADER = K + "upload"  # the widget's key, scoped per conversation (ui.widgets.scoped)
ERROR = K + "error"  # (file id, message) of the end picture that could not be used
SEEN = K + "seen"  # the file id last taken from the uploader


def _on_end_upload(studio: Studio, key: str) -> None:
    """The end-frame uploader's callback (ui.create.take_upload, as for the first picture)."""
    from ui.create import take_upload

    take_upload(studio, key, seen=SEEN, error=ERROR,
                use=lambda c: studio.set_end_image(c.data, c.filename, c.width, c.height, c.format))


def _on_remove(studio: Studio) -> None:
    if is_current(studio):
        studio.clear_end_image()


def _on_pick(studio: Studio, generation_id: int) -> None:
    if is_current(studio):
        studio.pick_variation(generation_id)


def render_end_uploader(studio: Studio) -> None:
    """An expander with the optional end picture: upload, show, remove."""
    from ui.create import MAX_UPLOAD_MB, UPLOAD_EXTENSIONS, thumbnail

    end = studio.end_image
    plan = studio.plan
    key = scoped(UPLOADER)
    err = st.session_state.get(ERROR)
    current = st.session_state.get(key)
    message = err[1] if err and current is not None and current.file_id == err[0] else None
    title = "End frame (optional)" + (" · used" if plan.end_image else "") + (" · loop" if plan.loop else "")
    with st.expander(title, expanded=end is not None or message is not None):
        st.file_uploader("A picture the clip ends on", type=list(UPLOAD_EXTENSIONS), key=key,
                         max_upload_size=MAX_UPLOAD_MB, on_change=_on_end_upload, args=(studio, key),
                         help="Then say “end on this picture”; “make it loop” ends on the first one")
        if message:
            st.error(plain(message), icon=":material/error:")  # names the file
        if end is not None:
            st.image(thumbnail(end.path), width="stretch")
            used = plan.end_image == end.sha256
            st.caption("The clip ends on this picture." if used
                       else "Say “end on this picture” to end the clip on it.")
            st.button("Remove the end picture", key=scoped(K + "remove"), on_click=_on_remove, args=(studio,))
        elif plan.loop:
            st.caption("A seamless loop: the clip ends on the first picture.")


def render_batch(studio: Studio, g: GenerationRecord) -> bool:
    """The grid of `g`'s batch of variations; False (nothing drawn) when `g` is a single clip."""
    batch = studio.batch_of(g)
    if len(batch) < 2:
        return False
    st.markdown(f"**{len(batch)} variations** · pick one to refine it (or say “I like the third one”)")
    for start in range(0, len(batch), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, (k, clip) in zip(cols, list(enumerate(batch, start=1))[start:start + GRID_COLUMNS], strict=False):
            with col:
                if clip.status == "succeeded" and clip.video_path is not None and clip.video_path.is_file():
                    st.video(str(clip.video_path), loop=True, autoplay=True, muted=True)
                current = (studio.base_generation_id == clip.id and studio.plan.variations == 1
                           and studio.plan.seed == clip.seed)  # picked: the plan is this clip's
                state = "" if clip.status == "succeeded" else f" · {status_label(clip.status)}"
                st.caption(f"{k}. #{clip.id} · seed {clip.seed}{state}" + (" · current" if current else ""))
                st.button("Use this one", key=K + f"pick.{clip.id}", on_click=_on_pick,
                          args=(studio, clip.id), disabled=clip.status != "succeeded" or current, width="stretch")
    return True


def group_batches(items: Sequence[GenerationRecord]) -> list[tuple[GenerationRecord, list[GenerationRecord]]]:
    """The gallery's items with each batch of variations as one entry: (the newest clip shown, every clip of the
    batch on this page, oldest first); a single clip is (itself, [itself])."""
    groups: dict[str, list[GenerationRecord]] = {}
    out: list[tuple[GenerationRecord, list[GenerationRecord]]] = []
    for g in items:
        if g.batch_id is None:
            out.append((g, [g]))
        elif g.batch_id in groups:
            groups[g.batch_id].insert(0, g)
        else:
            groups[g.batch_id] = [g]
            out.append((g, groups[g.batch_id]))
    return out


def batch_caption(members: Sequence[GenerationRecord]) -> str:
    """"batch of 4 variations: #5 #6 #7 #8" for a card, "" for a single clip."""
    if len(members) < 2:
        return ""
    return f":material/grid_view: batch of {len(members)} variations: " + " ".join(f"#{m.id}" for m in members)


def render_batch_links(store: Any, g: GenerationRecord, open_one: Callable[[int], None],
                       viewer: str | None = None) -> None:
    """In a generation's details: the other clips of its batch that `viewer` may see, each a button that
    opens it."""
    if g.batch_id is None:
        return
    batch = store.list_batch(g.batch_id, viewer=viewer)
    st.markdown(f"**Batch of {len(batch)} variations**")
    cols = st.columns(min(len(batch), LINK_COLUMNS))
    for i, clip in enumerate(batch):
        cols[i % len(cols)].button(f"#{clip.id} · seed {clip.seed}", key=K + f"open.{clip.id}", on_click=open_one,
                                   args=(clip.id,), disabled=clip.id == g.id, width="stretch")
