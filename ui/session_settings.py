"""The session's settings: loaded once per browser session from the environment and vividflow.toml.

Its own module because the sign-in gate (ui.auth) needs them before anything else of the page (ui.services).
"""

from __future__ import annotations

import streamlit as st

from vividflow.settings import Settings, SettingsError, load_settings

LOADED = "settings.loaded"


def settings() -> Settings:
    """The session's settings: loaded once from env + vividflow.toml; the sidebar may change them."""
    if "settings" not in st.session_state:
        try:
            st.session_state["settings"] = st.session_state[LOADED] = load_settings()
        except (SettingsError, ValueError) as e:
            st.error(f"The settings cannot be read: {e}")
            st.stop()
    return st.session_state["settings"]


def startup_settings() -> Settings:
    """The settings as loaded from the environment and vividflow.toml when the session began (no sidebar edits)."""
    s = settings()
    return st.session_state.get(LOADED, s)
