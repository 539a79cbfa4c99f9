"""Streamlit pieces more than one page uses: the download button of a finished generation."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import streamlit as st

from storage import GenerationRecord


def _read(path: Path) -> bytes:
    return path.read_bytes()


def download_button(g: GenerationRecord, key: str, **kw: object) -> None:
    """"Download MP4" for a finished generation; the file is read only when the button is clicked."""
    if g.video_path is None:
        return
    st.download_button(
        "Download MP4",
        icon=":material/download:",
        data=partial(_read, g.video_path),
        file_name=f"vividflow-{g.id}.mp4",
        mime="video/mp4",
        key=key,
        on_click="ignore",
        **kw,
    )


# --- per-conversation widget keys -----------------------------------------------------------------
# Widgets that belong to one conversation (the plan panel, the picture uploader, the open-chat picker)
# take their key through `scoped`: opening another conversation starts a new scope, so the browser's
# widgets of the previous one are new widgets, never stale ones whose callbacks or values leak into the
# new conversation (issue 17 item 1). The first conversation of a session keeps the plain keys.

SCOPE = "ui.scope"


def scoped(key: str) -> str:
    """`key` in the current conversation's scope ("pp.template", then "pp.template@1", …)."""
    n = st.session_state.get(SCOPE, 0)
    return key if not n else f"{key}@{n}"


def new_scope() -> int:
    """Start a new scope of widget keys (another conversation opens); returns its number."""
    n = int(st.session_state.get(SCOPE, 0)) + 1
    st.session_state[SCOPE] = n
    return n


def is_current(studio: object) -> bool:
    """False for a callback of a widget drawn for a studio that is no longer the session's (stale)."""
    current = st.session_state.get("studio")
    return current is None or current is studio
