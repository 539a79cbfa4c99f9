"""Generate / Cancel, the live progress of the current job, and the result: video, download, backend label.

The progress is a fragment that re-runs on its own every `POLL_S` seconds while a job is queued or
running: it reads the generation record (the runner writes progress there), so the rest of the page stays
usable, and shows the newest live preview strip when this process's runner renders the job; when the job
ends, it re-runs the whole page once to show the video.
"""

from __future__ import annotations

import streamlit as st

from storage import GenerationRecord

from ui.format import PREVIEW_NOTE, backend_label, eta_text, plain, recipe_note, seconds, status_label
from ui.boundary import guarded
from ui.services import ACTION_ERROR, AUTO_RENDER, Context, runner
from ui.widgets import download_button

POLL_S = 0.5
K = "res."


def progress_line(g: GenerationRecord, position: int | None) -> tuple[float, str]:
    """(fraction done, text) for a queued or running record."""
    if g.status == "queued":
        ahead = "next in line" if not position else f"{position} job{'s' if position != 1 else ''} ahead"
        return 0.0, f"#{g.id} queued · {ahead}"
    p = g.progress
    if p is None:
        return 0.0, f"#{g.id} starting…"
    frac = 0.0
    step = ""
    if p.total:
        frac = min(1.0, max(0.0, (p.step or 0) / p.total))
        step = f" · step {p.step or 0}/{p.total}"
    eta = eta_text(p.eta_s)
    cancel = " · cancelling…" if g.cancel_requested else ""
    return frac, f"#{g.id} {p.stage}{step}{' · ' + eta if eta else ''}{cancel}"


def render_progress(ctx: Context, job_id: int) -> None:
    """Body of the polling fragment."""
    g = ctx.store.get_generation(job_id)
    if g.is_terminal:
        ctx.studio.active_job_id = None
        if st.session_state.get(K + "seen_terminal") != job_id:
            st.session_state[K + "seen_terminal"] = job_id
            st.rerun(scope="app")  # show the result in the whole page (video, chat, gallery link)
        return
    position = ctx.store.queue_position(job_id) if g.status == "queued" else None
    frac, text = progress_line(g, position)
    cols = st.columns([3, 1], vertical_alignment="center")
    cols[0].progress(frac, text=text)
    cols[1].button("Cancel", key=K + "cancel", on_click=ctx.cancel, args=(job_id,), width="stretch")
    preview = runner().latest_preview(job_id) if g.status == "running" else None
    if preview is not None:
        st.image(preview.frame, width="stretch",
                 caption=f"Live preview after step {preview.step}/{preview.total} (approximate colours)")


def render_result(ctx: Context, g: GenerationRecord) -> None:
    """The finished (or failed, or cancelled) generation the chat continues from."""
    head = f"**#{g.id}** · {status_label(g.status)} · seed {g.seed} · {g.duration_s:g} s"
    if g.status == "succeeded" and g.video_path is not None and g.video_path.is_file():
        st.video(str(g.video_path), loop=True, autoplay=True, muted=True)
        total = (g.timings or {}).get("total_s")
        st.markdown(head + (f" · rendered in {seconds(total)}" if isinstance(total, int | float) else ""))
        download_button(g, K + f"download.{g.id}", width="stretch")
        if g.backend == "preview":
            st.caption(f":material/science: **Preview** backend: {PREVIEW_NOTE}.")
        else:
            note = recipe_note(g.params)
            st.caption(plain(f"Rendered by {backend_label(g.backend, g.model_id)}" + (f" · {note}" if note else "")))
    elif g.status == "failed":
        st.markdown(head)
        st.error(plain(g.error or "failed"))
        st.button("Retry", key=K + f"retry.{g.id}", on_click=ctx.requeue, args=(g.id,))
    elif g.status == "cancelled":
        st.markdown(head)
        st.info("Cancelled. Change the plan or press Generate to render again.")
    elif g.status == "succeeded":
        st.markdown(head)
        st.warning("The video file of this generation is missing from the data folder.")


def render_latest(ctx: Context) -> GenerationRecord | None:
    """The newest finished result of the conversation (the chat continues from it; a batch of variations as
    its grid), or a placeholder; returns the record shown."""
    from ui.end_and_batch import render_batch

    shown = ctx.studio.latest_result(finished=True)
    if shown is not None and shown.batch_id is not None and render_batch(ctx.studio, shown):  # #12 §3
        return shown
    if shown is not None:
        render_result(ctx, shown)
    else:
        st.markdown(
            "<div style='aspect-ratio:1/1;display:flex;align-items:center;justify-content:center;"
            "text-align:center;padding:1rem;border:1px dashed rgba(128,128,128,.45);border-radius:.5rem;"
            "color:rgba(128,128,128,.9)'>Your video appears here.<br>Describe the motion in the chat, "
            "then press Generate.</div>",
            unsafe_allow_html=True,
        )
    return shown


def show_progress(ctx: Context, job_id: int) -> None:
    """The live progress of a queued or running job: a fragment that polls the record on its own."""
    st.fragment(run_every=POLL_S)(guarded("progress")(render_progress))(ctx, job_id)


GENERATE_SHORTCUT = "Alt+G"  # Streamlit reserves "R" and "C"; the button shows the shortcut


def render_controls(ctx: Context, *, shown: GenerationRecord | None = None, progress: bool = True) -> None:
    """Generate, the backend label, the auto-render switch, errors and (with `progress`, when the chat
    does not show it) the live progress. `shown`: the result on the page (its caption names a preview
    backend already, so the label here does not say it twice)."""
    studio = ctx.studio
    cols = st.columns([2, 3], vertical_alignment="center")
    cols[0].button(
        "Generate",
        icon=":material/play_arrow:",
        key=K + "generate",
        type="primary",
        on_click=ctx.generate,
        disabled=studio.image is None,
        width="stretch",
        shortcut=GENERATE_SHORTCUT,
        help="Upload a picture first" if studio.image is None
        else f"Queue a render of the current plan (again: {GENERATE_SHORTCUT})",
    )
    if ctx.backend_name != "preview":
        label = f" · {ctx.model_id}"
    elif shown is not None and shown.backend == "preview" and shown.video_path is not None and shown.video_path.is_file():
        label = ""  # the result's caption says what the preview is
    else:
        label = f" ({PREVIEW_NOTE})"
    cols[1].caption(f"Renders with **{ctx.backend_name}**{label}")
    if studio.base_generation_id is not None:
        st.session_state.setdefault(AUTO_RENDER, True)
        st.toggle("Render again after each chat change", key=AUTO_RENDER,
                  help="The chat continues from the last result: a refinement renders a child of it")
    if err := st.session_state.pop(ACTION_ERROR, None):
        st.error(plain(err))  # may quote what the person typed
    job = studio.active_job() if progress else None
    if job is not None and job.is_active:
        show_progress(ctx, job.id)
