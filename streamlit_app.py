"""VividFlow studio: a picture, a chat about how it should move, a live plan, and the video.

Thin on purpose: layout and wiring. The widgets live in ui/, the logic in agent/, generation/, storage/.
Run: .venv/bin/streamlit run streamlit_app.py
"""

import streamlit as st

from agent.plan import MAX_MESSAGE_CHARS
from ui import auth, boundary, chat, compare, create, end_and_batch, plan_panel, result, services, sidebar

# the page icon is an emoji: Streamlit draws it as an inline SVG (a Material icon is fetched from the internet)
st.set_page_config(page_title="VividFlow studio", page_icon="🎬", layout="wide")
boundary.start(services.settings().home)  # logging, once per process: <data folder>/logs/vividflow.log
if not auth.gate():  # sign-in, or the refusal to serve on a network without it: nothing else is drawn
    st.stop()
CHAT_HEIGHT_PX = 560  # the conversation scrolls on its own; CSS below makes it fill the window's height
PLAN_HEIGHT_PX = 520  # the plan scrolls on its own too
# less empty space above the studio, and the conversation as tall as the window (its input stays at the
# bottom of the window); `st-key-<key>` classes are Streamlit's stable hooks, harmless if they change
st.html(
    "<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem}"
    "div:has(>.st-key-chat_log){--h:max(18rem,calc(100vh - 12rem));flex:0 0 var(--h)!important;"
    "height:var(--h)!important}</style>"
)


def studio_page() -> None:
    ctx = services.context()
    talk, work = st.columns([5, 7], gap="large")
    with talk:  # the conversation in one column: messages scroll, newest at the bottom, the input under them
        log = st.container(height=CHAT_HEIGHT_PX, key="chat_log", autoscroll=True, border=True)
        prompt = st.chat_input("Describe the motion, e.g. “make her hair flow in the wind, slow zoom in”",
                               key="chat.input", max_chars=MAX_MESSAGE_CHARS)
    if prompt:
        ctx.chat(prompt)
    with log:
        progress_shown = chat.render(ctx.studio, progress=lambda job_id: result.show_progress(ctx, job_id))
    with work:
        compare.render_from_chat(ctx.store)  # "compare #3 and #5" in the chat
        picture, video = st.columns([2, 3])
        with picture:
            create.render(ctx.studio, max_area=ctx.max_area)
            end_and_batch.render_end_uploader(ctx.studio)  # the optional end picture (#12 §1)
        with video:
            shown = result.render_latest(ctx)
        result.render_controls(ctx, shown=shown, progress=not progress_shown)
        with st.container(height=PLAN_HEIGHT_PX, border=False):
            st.subheader("Plan")
            plan_panel.render(ctx.studio, enhance=ctx.enhancer)


pages = {
    "studio": st.Page(studio_page, title="Studio", icon=":material/movie:", default=True),
    "gallery": st.Page("pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
}
services.register_pages(pages)
page = st.navigation(list(pages.values()))
with st.sidebar, boundary.guard("sidebar"):
    auth.render_account()
    sidebar.render_conversations()
    sidebar.render_settings(services.backend_note())
with boundary.guard(page.title):  # an unexpected error: a friendly box and a line in the log, no traceback
    page.run()
