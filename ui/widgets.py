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
