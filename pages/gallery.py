"""The gallery page: every generation in the store, newest first, with details and actions."""

import streamlit as st

from ui import gallery, services

ctx = services.context()
st.title("Gallery")
gallery.render(ctx.store, ctx.gallery_actions(), user=ctx.user, admin=ctx.is_admin)
