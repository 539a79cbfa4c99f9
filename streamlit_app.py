"""VividFlow studio: a picture, a chat about how it should move, a live plan, and the video.

Thin on purpose: layout and wiring. The widgets live in ui/, the logic in agent/, generation/, storage/.
Run: .venv/bin/streamlit run streamlit_app.py
"""

import streamlit as st

from ui import chat, create, plan_panel, result, services, sidebar

st.set_page_config(page_title="VividFlow studio", page_icon=":material/movie:", layout="wide")


def studio_page() -> None:
    ctx = services.context()
    studio = ctx.studio
    if prompt := st.chat_input("Describe the motion, e.g. “make her hair flow in the wind, slow zoom in”"):
        ctx.chat(prompt)
    left, right = st.columns([7, 5], gap="large")
    with left:
        create.render(studio, max_area=ctx.max_area)
        result.render(ctx)
        chat.render(studio)
    with right:
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
