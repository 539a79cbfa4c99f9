"""The gallery: the person's own generations and those others shared, newest first, paged and filtered, with
a details panel (plan, every parameter, timings, lineage) and the actions Rerun, Rerun with new seed, Branch
into chat, Share and Delete (with confirmation; Share and Delete only for one's own). An admin also sees every
person's queue. The store is the only source: nothing here lives in session state except the filters, the
page number and which item is open."""

from __future__ import annotations

import base64
import functools
import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import streamlit as st

from agent.plan import TEMPLATE_IDS
from generation.choose import BACKEND_NAMES
from storage import (
    LOCAL_USER,
    STATUSES,
    GalleryPage,
    GenerationRecord,
    Lineage,
    NotFoundError,
    StorageError,
    Store,
)

from ui.format import (
    PREVIEW_NOTE,
    backend_label,
    card_caption,
    card_subcaption,
    markdown_table,
    motion_summary,
    parameter_rows,
    plain,
    status_label,
    template_title,
    timing_rows,
)
from ui.boundary import guarded
from ui.compare import show_compare
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
    share: Callable[[int, bool], None] = lambda generation_id, shared: None  # (id, shared?): own ones only


@dataclass(frozen=True)
class Filters:
    templates: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    text: str = ""
    created_from: date | None = None
    created_to: date | None = None
    mine_only: bool = False

    def query(self, store: Store, page: int, viewer: str = LOCAL_USER) -> GalleryPage:
        return store.list_gallery(
            viewer=viewer,
            mine_only=self.mine_only,
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
        mine = st.toggle("Only mine", key=K + "mine", on_change=_reset_page,
                         help="Hide what other people shared")
    start = end = None
    if isinstance(dates, tuple | list):
        if len(dates) >= 1:
            start = dates[0]
        if len(dates) == 2:
            end = dates[1]
    elif isinstance(dates, date):
        start = dates
    return Filters(tuple(templates), tuple(statuses), tuple(backends), text or "", start, end, bool(mine))


def _open(generation_id: int) -> None:
    st.session_state[K + "selected"] = generation_id
    st.session_state.pop(K + "confirm_delete", None)


def card_media(store: Store, g: GenerationRecord) -> tuple[Path | None, Path | None]:
    """(thumbnail, animated preview) files of a card that exist: the thumbnail is a frame of the video;
    the animated WebP (generation.export, older renders have none) plays when the pointer is on the card."""
    thumb = g.thumbnail_path if g.thumbnail_path is not None and g.thumbnail_path.is_file() else None
    key = (g.params or {}).get("animated_preview")
    anim = None
    if isinstance(key, str):
        try:
            path = store.media.path_for(key)
        except ValueError:  # a key that leaves the media root: ignored
            path = None
        anim = path if path is not None and path.is_file() else None
    return thumb, anim


@functools.lru_cache(maxsize=256)
def _data_uri(path: Path) -> str:
    """A small media file as a data: URI (content-addressed files never change: cached per path)."""
    return "data:image/webp;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# the card's still hides and its animated preview shows while the pointer (or the keyboard focus) is on it
HOVER_CSS = (
    "<style>[class*='st-key-g-media-']>div:nth-child(2){display:none}"
    "[class*='st-key-g-card-']:hover [class*='st-key-g-media-']>div:nth-child(1),"
    "[class*='st-key-g-card-']:focus-within [class*='st-key-g-media-']>div:nth-child(1){display:none}"
    "[class*='st-key-g-card-']:hover [class*='st-key-g-media-']>div:nth-child(2),"
    "[class*='st-key-g-card-']:focus-within [class*='st-key-g-media-']>div:nth-child(2){display:flex}</style>"
)


def render_card(g: GenerationRecord, thumb: Path | None = None, anim: Path | None = None,
                user: str = LOCAL_USER, batch: str = "") -> None:
    with st.container(border=True, key=f"g-card-{g.id}"):
        if thumb is not None:
            with st.container(key=f"g-media-{g.id}", gap=None):
                st.image(str(thumb), width="stretch")
                if anim is not None:  # st.image would re-encode it as a still JPEG: an <img> keeps it animated
                    st.html(f"<img src='{_data_uri(anim)}' alt='#{g.id} playing' style='width:100%;"
                            f"border-radius:.5rem'>")
        else:
            st.markdown(
                f"<div style='aspect-ratio:16/10;display:flex;align-items:center;justify-content:center;"
                f"background:rgba(128,128,128,.12);border-radius:.4rem;font-size:1rem;color:#3d3d45'>"
                f"{html.escape(g.status)}</div>",
                unsafe_allow_html=True,
            )
        st.markdown(card_caption(g))
        st.caption(motion_summary(g.plan, g.duration_s))
        st.caption(card_subcaption(g))
        if batch:  # a batch of variations is one card (#12 §3)
            st.caption(batch)
        if g.user_id != user:
            st.caption(f":material/group: shared by {g.user_id}")
        elif g.shared:
            st.caption(":material/group: shared with everyone")
        st.button("Details", key=f"{K}open.{g.id}", on_click=_open, args=(g.id,), width="stretch")
        st.checkbox(f"Compare #{g.id}", key=f"{K}cmp.{g.id}", disabled=g.status != "succeeded",
                    help="Tick two finished generations, then press Compare above the grid")


def render_grid(page: GalleryPage, store: Store | None = None, user: str = LOCAL_USER) -> None:
    if not page.items:
        st.info("No generations match these filters." if page.total == 0 and page.page == 1 else "Nothing on this page.")
        return
    from ui.end_and_batch import batch_caption, group_batches

    st.html(HOVER_CSS)
    groups = group_batches(page.items)  # a batch of variations is one card (#12 §3)
    for start in range(0, len(groups), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, (g, members) in zip(cols, groups[start : start + COLUMNS], strict=False):
            with col:
                render_card(g, *(card_media(store, g) if store is not None else (None, None)), user=user,
                            batch=batch_caption(members))


def picked_for_compare() -> list[int]:
    """Ids of the cards whose "compare" box is ticked, in the order of their ids."""
    prefix = K + "cmp."
    return sorted(int(k[len(prefix):]) for k, v in st.session_state.items()
                  if isinstance(k, str) and k.startswith(prefix) and v)


def _start_compare(a: int, b: int) -> None:
    st.session_state[K + "compare"] = (a, b)
    st.session_state.pop(K + "selected", None)


def _end_compare() -> None:
    st.session_state.pop(K + "compare", None)


def render_compare_bar() -> None:
    """"Compare #a and #b" once two cards are ticked."""
    picked = picked_for_compare()
    if not picked:
        return
    cols = st.columns([3, 2], vertical_alignment="center")
    if len(picked) == 2:
        cols[0].caption(f"Picked #{picked[0]} and #{picked[1]}.")
        cols[1].button(f"Compare #{picked[0]} and #{picked[1]}", icon=":material/compare:", key=K + "compare_go",
                       type="primary", on_click=_start_compare, args=tuple(picked), width="stretch")
    else:
        cols[0].caption(f"Picked {', '.join(f'#{i}' for i in picked)}: tick exactly two cards to compare them.")


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


def render_details(store: Store, generation_id: int, actions: GalleryActions, user: str = LOCAL_USER) -> None:
    try:
        store.get_generation(generation_id, viewer=user)  # another person's, not shared: as if it were gone
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
            _details_actions(g, actions, user)
            _details_lineage(lineage, user)
            from ui.end_and_batch import render_batch_links

            render_batch_links(store, g, _open, viewer=user)  # the other clips of its batch (#12 §3)
        with right:
            st.markdown("**Prompt**")
            st.markdown("> " + plain(g.prompt or "—").replace("\n", "\n> "))
            st.caption("**Negative prompt:** " + plain(g.negative_prompt or "—"))
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
    st.markdown(f"{status_label(g.status)} · {plain(backend_label(g.backend, g.model_id))}")
    if g.backend == "preview":
        st.caption(f"Rendered by the **preview** backend: {PREVIEW_NOTE}.")
    if g.error:
        st.error(plain(g.error))
    if g.status == "succeeded" and g.video_path is not None and g.video_path.is_file():
        st.video(str(g.video_path), loop=True)
        download_button(g, f"{K}download.{g.id}")
    elif g.status == "succeeded":
        st.warning("The video file is missing from the data folder.")


def _details_actions(g: GenerationRecord, actions: GalleryActions, user: str = LOCAL_USER) -> None:
    a = st.columns(2) + st.columns(2)
    if a[0].button("Rerun", icon=":material/replay:", key=f"{K}rerun.{g.id}", width="stretch",
                   help="Render the same plan and seed again (a child of this one)"):
        _rerun(g, actions, new_seed=False)
    if a[1].button("Rerun, new seed", icon=":material/casino:", key=f"{K}reseed.{g.id}", width="stretch",
                   help="Rerun with the same plan and a fresh seed"):
        _rerun(g, actions, new_seed=True)
    if a[2].button("Branch into chat", icon=":material/call_split:", key=f"{K}branch.{g.id}", width="stretch",
                   help="Open this plan and picture in a new chat"):
        actions.branch(g.id)
    mine = g.user_id == user
    deletable = g.status != "running" and mine
    why_not = "Cancel it first" if mine else f"Only {g.user_id} can delete it"
    if a[3].button("Delete", icon=":material/delete:", key=f"{K}delete.{g.id}", disabled=not deletable,
                   width="stretch",
                   help="Delete the record and its video files" if deletable else why_not):
        st.session_state[K + "confirm_delete"] = g.id
    if mine:
        st.toggle("Shared with everyone", value=g.shared, key=f"{K}share.{g.id}", on_change=_share,
                  args=(g.id, actions), help="Shared: it shows in every person's gallery (read only for them)")
    else:
        st.caption(f"Shared by {g.user_id}: you can rerun it or branch from it; the renders are yours.")
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


def _rerun(g: GenerationRecord, actions: GalleryActions, *, new_seed: bool) -> None:
    try:
        child = actions.rerun(g.id, new_seed)
    except StorageError as e:  # the person's quota of queued jobs, mostly: say it, keep the page
        st.session_state[K + "flash_error"] = str(e)
    else:
        seed = f"new seed {child.seed}, from" if new_seed else "rerun of"
        st.session_state[K + "flash"] = f"Queued #{child.id} ({seed} #{g.id})."
    st.rerun()


def _share(generation_id: int, actions: GalleryActions) -> None:
    actions.share(generation_id, bool(st.session_state[f"{K}share.{generation_id}"]))


def _details_lineage(lineage: Lineage, user: str = LOCAL_USER) -> None:
    g = lineage.generation
    st.markdown("**Lineage**")
    if not lineage.ancestors and not lineage.children:
        st.caption("No parent, no children.")
    for label, items in (("parent chain (root first)", lineage.ancestors), ("children", lineage.children)):
        items = tuple(o for o in items if o.user_id == user or o.shared)  # another person's: not shown
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


def render(store: Store, actions: GalleryActions, *, user: str = LOCAL_USER, admin: bool = False) -> None:
    """The whole gallery page body: what ``user`` may see; with ``admin``, every person's queue above it."""
    if msg := st.session_state.pop(K + "flash", None):
        st.success(msg)
    if msg := st.session_state.pop(K + "flash_error", None):
        st.error(msg)
    if admin:
        render_queue(store)
    filters = render_filters()
    page_no = int(st.session_state.setdefault(K + "page", 1))
    page = filters.query(store, page_no, user)
    if page_no > page.pages:  # the last page emptied (deletes, filters): go to the last one that exists
        st.session_state[K + "page"] = page_no = page.pages
        page = filters.query(store, page_no, user)
    render_compare_bar()
    pair = st.session_state.get(K + "compare")
    if pair is not None:
        with st.container(border=True):
            head = st.columns([6, 1], vertical_alignment="center")
            head[1].button("Close", icon=":material/close:", key=K + "compare_close", on_click=_end_compare,
                           width="stretch")
            show_compare(store, *pair)
    selected = st.session_state.get(K + "selected")
    if selected is not None:
        render_details(store, int(selected), actions, user)
    render_grid(page, store, user)
    render_pager(page)
    active = tuple(g.id for g in page.items if g.is_active)
    if active:  # something on this page is queued or rendering: refresh the page when it ends
        st.fragment(run_every=1.0)(guarded("gallery watch")(_watch))(store, active)


def render_queue(store: Store) -> None:
    """The admin's view: every person's running and queued jobs (what `python -m storage queue` prints)."""
    jobs = store.queue_overview()
    per_user = store.queue_by_user()
    title = f"Queue: {len(jobs)} job{'s' if len(jobs) != 1 else ''} queued or running (all people)"
    with st.expander(title, expanded=False, icon=":material/admin_panel_settings:"):
        if not jobs:
            st.caption("Nothing queued or running.")
            return
        st.caption(" · ".join(f"{u.user_id}: {u.queued} queued, {u.running} running" for u in per_user))
        st.dataframe(
            [{"#": g.id, "status": g.status, "person": g.user_id, "backend": g.backend,
              "queued at (UTC)": f"{g.created_at:%Y-%m-%d %H:%M:%S}",
              "progress": (f"{g.progress.stage} {g.progress.step}/{g.progress.total}" if g.progress and
                           g.progress.total else g.progress.stage if g.progress else "")} for g in jobs],
            hide_index=True, key=K + "queue",
        )


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
