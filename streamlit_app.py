"""VividFlow studio: a picture, a chat about how it should move, a live plan, and the video.

Thin on purpose: layout and wiring. The widgets live in ui/, the logic in agent/, generation/, storage/.
Run: .venv/bin/streamlit run streamlit_app.py
"""

import streamlit as st

from ui import chat, create, end_and_batch, plan_panel, result, services, sidebar

st.set_page_config(page_title="VividFlow studio", page_icon=":material/movie:", layout="wide")
PLAN_HEIGHT_PX = 680  # the plan scrolls on its own, so the page follows the chat
# less empty space above the studio (data-testid is Streamlit's stable hook; harmless if it changes)
st.html("<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem}</style>")


def studio_page() -> None:
    ctx = services.context()
    studio = ctx.studio
    if prompt := st.chat_input("Describe the motion, e.g. “make her hair flow in the wind, slow zoom in”"):
        ctx.chat(prompt)
    left, right = st.columns([7, 5], gap="large")
    with left:
        picture, video = st.columns([2, 3])
        with picture:
            create.render(studio, max_area=ctx.max_area)
            end_and_batch.render_end_uploader(studio)  # the optional end picture (#12 §1)
        with video:
            result.render_latest(ctx)
        result.render_controls(ctx)
        chat.render(studio)
    with right, st.container(height=PLAN_HEIGHT_PX, border=False):
        st.subheader("Plan")
        plan_panel.render(studio, enhance=ctx.enhancer)


pages = {
    "studio": st.Page(studio_page, title="Studio", icon=":material/movie:", default=True),
    "gallery": st.Page("pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
}
services.register_pages(pages)
page = st.navigation(list(pages.values()))
with st.sidebar:
    sidebar.render_conversations()
    sidebar.render_settings(services.backend_note())
page.run()
