"""The gallery: every generation in the store, newest first, paged and filtered, with a details panel
(plan, every parameter, timings, lineage) and the actions Rerun, Rerun with new seed, Branch into chat
and Delete (with confirmation). The store is the only source: nothing here lives in session state
except the filters, the page number and which item is open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import streamlit as st

from agent.plan import TEMPLATE_IDS
from generation.choose import BACKEND_NAMES
from storage import STATUSES, GalleryPage, GenerationRecord, Lineage, NotFoundError, Store

from ui.format import (
    PREVIEW_NOTE,
    backend_label,
    card_caption,
    card_subcaption,
    markdown_table,
    parameter_rows,
    status_label,
    template_title,
    timing_rows,
)
from ui.widgets import download_button

PAGE_SIZE = 12
COLUMNS = 4
K = "g."


@dataclass(frozen=True)
class GalleryActions:
    """What the details panel's buttons do; the page wires them to the studio and the runner."""

    rerun: Callable[[int, bool], GenerationRecord]  # (generation id, new seed?) -> the new child record
    branch: Callable[[int], None]  # open the generation's plan and picture in a new chat
    delete: Callable[[int], None]


@dataclass(frozen=True)
class Filters:
    templates: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    text: str = ""
    created_from: date | None = None
    created_to: date | None = None

    def query(self, store: Store, page: int) -> GalleryPage:
        return store.list_gallery(
            template=self.templates or None,
            status=self.statuses or None,
            backend=self.backends or None,
            text=self.text.strip() or None,
            created_from=self.created_from,
            created_to=self.created_to,
            page=page,
            page_size=PAGE_SIZE,
        )


def _reset_page() -> None:
    st.session_state[K + "page"] = 1


def render_filters() -> Filters:
    with st.container(border=True):
        row = st.columns([3, 2, 2, 2, 3])
        text = row[0].text_input("Prompt contains", key=K + "text", on_change=_reset_page, placeholder="e.g. hair")
        templates = row[1].multiselect("Template", TEMPLATE_IDS, key=K + "templates", format_func=template_title,
                                       on_change=_reset_page, placeholder="any")
        statuses = row[2].multiselect("Status", STATUSES, key=K + "statuses", on_change=_reset_page, placeholder="any")
        backends = row[3].multiselect("Backend", BACKEND_NAMES, key=K + "backends", on_change=_reset_page, placeholder="any")
        dates = row[4].date_input("Created between", value=(), key=K + "dates", on_change=_reset_page,
                                  help="Pick a first and a last day (inclusive)")
    start = end = None
    if isinstance(dates, tuple | list):
        if len(dates) >= 1:
            start = dates[0]
        if len(dates) == 2:
            end = dates[1]
    elif isinstance(dates, date):
        start = dates
    return Filters(tuple(templates), tuple(statuses), tuple(backends), text or "", start, end)


def _open(generation_id: int) -> None:
    st.session_state[K + "selected"] = generation_id
    st.session_state.pop(K + "confirm_delete", None)


def render_card(g: GenerationRecord, batch: str = "") -> None:
    with st.container(border=True):
        if g.thumbnail_path is not None and g.thumbnail_path.is_file():
            st.image(str(g.thumbnail_path), width="stretch")
        else:
            st.markdown(
                f"<div style='aspect-ratio:16/10;display:flex;align-items:center;justify-content:center;"
                f"background:rgba(128,128,128,.12);border-radius:.4rem;font-size:1rem;color:gray'>"
                f"{g.status}</div>",
                unsafe_allow_html=True,
            )
        st.markdown(card_caption(g))
        st.caption(card_subcaption(g))
        if batch:  # a batch of variations is one card (#12 §3)
            st.caption(batch)
        st.button("Details", key=f"{K}open.{g.id}", on_click=_open, args=(g.id,), width="stretch")


def render_grid(page: GalleryPage) -> None:
    if not page.items:
        st.info("No generations match these filters." if page.total == 0 and page.page == 1 else "Nothing on this page.")
        return
    from ui.end_and_batch import batch_caption, group_batches

    groups = group_batches(page.items)
    for start in range(0, len(groups), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, (g, members) in zip(cols, groups[start : start + COLUMNS], strict=False):
            with col:
                render_card(g, batch_caption(members))


def _go(page: int) -> None:
    st.session_state[K + "page"] = page


def render_pager(page: GalleryPage) -> None:
    cols = st.columns([1, 2, 1], vertical_alignment="center")
    cols[0].button("← Newer", key=K + "prev", disabled=page.page <= 1, on_click=_go, args=(page.page - 1,))
    cols[1].markdown(
        f"<div style='text-align:center'>page {page.page} of {page.pages} · {page.total} generation"
        f"{'s' if page.total != 1 else ''}</div>",
        unsafe_allow_html=True,
    )
    cols[2].button("Older →", key=K + "next", disabled=not page.has_next, on_click=_go, args=(page.page + 1,))


def _close() -> None:
    st.session_state.pop(K + "selected", None)
    st.session_state.pop(K + "confirm_delete", None)


def render_details(store: Store, generation_id: int, actions: GalleryActions) -> None:
    try:
        lineage = store.lineage(generation_id)
    except NotFoundError:
        _close()
        st.warning(f"Generation #{generation_id} no longer exists.")
        return
    g = lineage.generation
    with st.container(border=True):
        head = st.columns([6, 1], vertical_alignment="center")
        head[0].subheader(f"#{g.id} · {template_title(g.template)}")
        head[1].button("Close", icon=":material/close:", key=K + "close", on_click=_close, width="stretch")
        left, right = st.columns([1, 1], gap="large")
        with left:
            _details_media(g)
            _details_actions(g, actions)
            _details_lineage(lineage)
            from ui.end_and_batch import render_batch_links

            render_batch_links(store, g, _open)  # the other clips of its batch (#12 §3)
        with right:
            st.markdown("**Prompt**")
            st.markdown(f"> {g.prompt or '—'}")
            st.caption("**Negative prompt:** " + (g.negative_prompt or "—"))
            st.markdown("**Parameters**")
            st.markdown(markdown_table(parameter_rows(g), ("parameter", "value")))
            timings = timing_rows(g)
            if timings:
                st.markdown("**Timings**")
                st.markdown(markdown_table(timings, ("stage", "time")))
            if g.params:
                with st.expander("Backend parameters (JSON)"):
                    st.json(g.params, expanded=False)
            with st.expander("Plan (JSON)"):
                st.json(g.plan, expanded=True)


def _details_media(g: GenerationRecord) -> None:
    st.markdown(f"{status_label(g.status)} · {backend_label(g.backend, g.model_id)}")
    if g.backend == "preview":
        st.caption(f"Rendered by the **preview** backend: {PREVIEW_NOTE}.")
    if g.error:
        st.error(g.error)
    if g.status == "succeeded" and g.video_path is not None and g.video_path.is_file():
        st.video(str(g.video_path), loop=True)
        download_button(g, f"{K}download.{g.id}")
    elif g.status == "succeeded":
        st.warning("The video file is missing from the data folder.")


def _details_actions(g: GenerationRecord, actions: GalleryActions) -> None:
    a = st.columns(2) + st.columns(2)
    if a[0].button("Rerun", icon=":material/replay:", key=f"{K}rerun.{g.id}", width="stretch",
                   help="Render the same plan and seed again (a child of this one)"):
        child = actions.rerun(g.id, False)
        st.session_state[K + "flash"] = f"Queued #{child.id} (rerun of #{g.id})."
        st.rerun()
    if a[1].button("Rerun, new seed", icon=":material/casino:", key=f"{K}reseed.{g.id}", width="stretch",
                   help="Rerun with the same plan and a fresh seed"):
        child = actions.rerun(g.id, True)
        st.session_state[K + "flash"] = f"Queued #{child.id} (new seed {child.seed}, from #{g.id})."
        st.rerun()
    if a[2].button("Branch into chat", icon=":material/call_split:", key=f"{K}branch.{g.id}", width="stretch",
                   help="Open this plan and picture in a new chat"):
        actions.branch(g.id)
    deletable = g.status != "running"
    if a[3].button("Delete", icon=":material/delete:", key=f"{K}delete.{g.id}", disabled=not deletable,
                   width="stretch",
                   help="Delete the record and its video files" if deletable else "Cancel it first"):
        st.session_state[K + "confirm_delete"] = g.id
    if st.session_state.get(K + "confirm_delete") == g.id:
        st.warning(f"Delete #{g.id} and its video and thumbnail files? This cannot be undone.")
        c = st.columns(2)
        if c[0].button(f"Yes, delete #{g.id}", key=f"{K}confirm.{g.id}", type="primary", width="stretch"):
            actions.delete(g.id)
            _close()
            st.session_state[K + "flash"] = f"Deleted #{g.id}."
            st.rerun()
        if c[1].button("Keep it", key=f"{K}keep.{g.id}", width="stretch"):
            st.session_state.pop(K + "confirm_delete", None)
            st.rerun()


def _details_lineage(lineage: Lineage) -> None:
    g = lineage.generation
    st.markdown("**Lineage**")
    if not lineage.ancestors and not lineage.children:
        st.caption("No parent, no children.")
    for label, items in (("parent chain (root first)", lineage.ancestors), ("children", lineage.children)):
        if not items:
            continue
        st.caption(label)
        cols = st.columns(6)
        for i, other in enumerate(items[:12]):
            cols[i % 6].button(
                f"#{other.id}",
                key=f"{K}lineage.{g.id}.{other.id}",
                on_click=_open,
                args=(other.id,),
                help=f"{template_title(other.template)} · {other.status} · seed {other.seed}",
                width="stretch",
            )


def render(store: Store, actions: GalleryActions) -> None:
    """The whole gallery page body."""
    if msg := st.session_state.pop(K + "flash", None):
        st.success(msg)
    filters = render_filters()
    page_no = int(st.session_state.setdefault(K + "page", 1))
    page = filters.query(store, page_no)
    if page_no > page.pages:  # the last page emptied (deletes, filters): go to the last one that exists
        st.session_state[K + "page"] = page_no = page.pages
        page = filters.query(store, page_no)
    selected = st.session_state.get(K + "selected")
    if selected is not None:
        render_details(store, int(selected), actions)
    render_grid(page)
    render_pager(page)
    active = tuple(g.id for g in page.items if g.is_active)
    if active:  # something on this page is queued or rendering: refresh the page when it ends
        st.fragment(run_every=1.0)(_watch)(store, active)


def _watch(store: Store, ids: tuple[int, ...]) -> None:
    records = [store.get_generation(i) for i in ids if _exists(store, i)]
    if len(records) < len(ids) or any(r.is_terminal for r in records):
        st.rerun(scope="app")
    running = [r for r in records if r.status == "running"]
    st.caption(f":material/autorenew: {len(records)} on this page queued or rendering"
               + (f" · #{running[0].id} {running[0].progress.stage if running[0].progress else 'starting'}"
                  if running else ""))


def _exists(store: Store, generation_id: int) -> bool:
    try:
        store.get_generation(generation_id)
    except NotFoundError:
        return False
    return True
