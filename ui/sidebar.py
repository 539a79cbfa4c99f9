"""The sidebar: conversations (new / recent) and the settings: backend and LLM switches for this session, and
what the server loads (models, LoRAs, data folder, database), read-only."""

from __future__ import annotations

import streamlit as st

from ui import services
from ui.format import markdown_table, plain
from ui.widgets import scoped
from vividflow.sections import BACKENDS, WanSettings
from vividflow.settings import Settings

K = "sb."


def _new_chat() -> None:
    services.switch_conversation(None)


def _open_chat(key: str) -> None:
    conv_id = st.session_state.get(key)
    if conv_id is not None and conv_id != services.studio().conversation_id:
        services.switch_conversation(int(conv_id))


def render_conversations() -> None:
    studio = services.studio()
    st.button("New chat", icon=":material/add:", key=K + "new", on_click=_new_chat, width="stretch",
              help="Start a new conversation (the picture is kept)")
    recent = services.store().list_conversations(limit=20, user=studio.user)
    if not recent:
        return
    titles = {c.id: (c.title or f"chat {c.id}") for c in recent}
    if studio.conversation_id is not None and studio.conversation_id not in titles:
        titles[studio.conversation_id] = f"chat {studio.conversation_id}"
    # the picker's key is scoped per conversation: after "New chat" it is a new, empty widget, so the
    # browser's old selection cannot reopen the previous chat (issue 17 item 1)
    key = scoped(K + "conversation")
    if studio.conversation_id is not None:
        st.session_state[key] = studio.conversation_id
    st.selectbox(
        "Recent chats",
        list(titles),
        key=key,
        format_func=lambda i: f"#{i} · {titles[i][:40]}",
        on_change=_open_chat,
        args=(key,),
        index=None,
        placeholder="open a chat…",
    )


def _update(**changes: object) -> None:
    st.session_state["settings"] = services.settings().with_changes(**changes)


def _on_backend() -> None:
    s = services.settings()
    _update(studio=s.studio.replace(backend=st.session_state[K + "backend"]))


def _on_llm() -> None:
    s = services.settings()
    _update(llm=s.llm.replace(enabled=bool(st.session_state[K + "llm"])))


def lora_label(wan: WanSettings) -> str:
    """The LoRAs as one line ("none" when there are none); Lightning is shown separately."""
    return "; ".join(f"{lora.expert}:{lora.scale:g}:{lora.label}" for lora in wan.loras) or "none"


def database_label(s: Settings) -> str:
    """The database as shown in the page: the URL without its password, or the default SQLite file."""
    url = s.storage.db_url
    if url is None:
        return f"SQLite in the data folder ({s.home / 'vividflow.db'})"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: it might hold a password, so show none of it
        return "set by VIVIDFLOW_DB_URL (not a URL SQLAlchemy reads)"


def loaded_rows(s: Settings) -> list[tuple[str, str]]:
    """What the server loads (code, weights, files): read from the environment and vividflow.toml at start-up,
    shown read-only; a visitor can never change them from the page."""
    return [
        ("Wan model", s.wan.model),
        ("LoRAs", lora_label(s.wan)),
        ("Lightning 4-step LoRA", "on" if s.wan.lightning else "off"),
        ("quantization", s.wan.quantization),
        ("LLM model", s.llm.model or "none (the rule planner only)"),
        ("data folder", str(s.home)),
        ("database", database_label(s)),
    ]


def render_settings(backend_note: str = "") -> None:
    s: Settings = services.settings()
    state = st.session_state
    if state.get(K + "_synced") is not s:  # the settings changed (or first run): the widgets show them
        state[K + "backend"] = s.backend
        state[K + "llm"] = s.llm.enabled
        state[K + "_synced"] = s
    with st.expander("Settings", expanded=False):
        st.selectbox("Video backend", BACKENDS, key=K + "backend", on_change=_on_backend,
                     help="auto: Wan2.2 when a CUDA GPU and its weights are there, else the CPU preview")
        if backend_note:
            st.caption(backend_note)
        st.toggle("LLM planner", key=K + "llm", on_change=_on_llm, disabled=s.llm.model is None,
                  help="Let the configured local instruct model read the chat too (rules stay the fallback)")
        st.markdown(markdown_table(loaded_rows(s), ("loaded at start-up", "value")))
        where = s.config_file.name if s.config_file else "no vividflow.toml"
        st.caption(f"Read-only here: set them with VIVIDFLOW_* variables or {plain(where)} and restart the studio "
                   "(see `python -m vividflow config`). Backend and LLM switches last for this session.")
