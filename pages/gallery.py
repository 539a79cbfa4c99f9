"""The gallery page: every generation in the store, newest first, with details and actions."""

import streamlit as st

from ui import auth, boundary, gallery, services

boundary.start(services.settings().home)
if not auth.gate():  # already passed when the studio's navigation runs this page
    st.stop()
with boundary.guard("gallery"):
    ctx = services.context()
    st.title("Gallery")
    gallery.render(ctx.store, ctx.gallery_actions(), user=ctx.user, admin=ctx.is_admin)
