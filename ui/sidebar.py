"""The sidebar: conversations (new / recent) and the settings, editable for this browser session."""

from __future__ import annotations

import streamlit as st

from ui import services
from vividflow.sections import BACKENDS, WanSettings
from vividflow.settings import Settings

K = "sb."


def _new_chat() -> None:
    services.switch_conversation(None)


def _open_chat() -> None:
    conv_id = st.session_state.get(K + "conversation")
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
    if studio.conversation_id is not None:
        st.session_state[K + "conversation"] = studio.conversation_id
    else:
        st.session_state.pop(K + "conversation", None)
    st.selectbox(
        "Recent chats",
        list(titles),
        key=K + "conversation",
        format_func=lambda i: f"#{i} · {titles[i][:40]}",
        on_change=_open_chat,
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


def _on_llm_model() -> None:
    s = services.settings()
    value = (st.session_state[K + "llm_model"] or "").strip()
    try:
        _update(llm=s.llm.replace(model=value or None))
        st.session_state.pop(K + "error", None)
    except ValueError as e:
        st.session_state[K + "error"] = f"LLM model: {e}"


def lora_label(wan: WanSettings) -> str:
    """The LoRAs as one line ("none" when there are none); Lightning is shown separately."""
    return "; ".join(f"{lora.expert}:{lora.scale:g}:{lora.label}" for lora in wan.loras) or "none"


def render_settings(backend_note: str = "") -> None:
    s: Settings = services.settings()
    state = st.session_state
    if state.get(K + "_synced") is not s:  # the settings changed (or first run): the widgets show them
        state[K + "backend"] = s.backend
        state[K + "model"] = s.wan.model
        state[K + "lora"] = lora_label(s.wan)
        state[K + "llm"] = s.llm.enabled
        state[K + "llm_model"] = s.llm.model or ""
        state[K + "_synced"] = s
    with st.expander("Settings", expanded=False):
        if err := state.get(K + "error"):
            st.error(err)
        st.selectbox("Video backend", BACKENDS, key=K + "backend", on_change=_on_backend,
                     help="auto: Wan2.2 when a CUDA GPU and its weights are there, else the CPU preview")
        if backend_note:
            st.caption(backend_note)
        st.text_input("Wan model (hub id or folder)", key=K + "model", disabled=True,
                      help="VIVIDFLOW_WAN_MODEL or [wan] model in vividflow.toml; read when the app starts")
        st.text_input("LoRA", key=K + "lora", disabled=True,
                      help="VIVIDFLOW_WAN_LORAS (expert:scale:source[::weight_name]; …) or [wan] loras; "
                           "the Lightning 4-step LoRA is added on its own")
        st.caption(f"Lightning 4-step LoRA: {'on' if s.wan.lightning else 'off'} · "
                   f"quantization {s.wan.quantization} · the Wan settings are read at start-up")
        st.toggle("LLM planner", key=K + "llm", on_change=_on_llm,
                  help="Let a local instruct model read the chat too (rules stay the fallback)")
        st.text_input("LLM model (hub id, folder, .gguf or smollm2)", key=K + "llm_model", on_change=_on_llm_model,
                      placeholder="none: the rule planner only")
        if s.llm.enabled and s.llm.model is None:
            st.caption("Name a model below to use the LLM planner; until then the rules plan alone.")
        state[K + "home"] = str(s.home)
        st.text_input("Data folder", key=K + "home", disabled=True,
                      help="Set VIVIDFLOW_HOME or `home` in vividflow.toml and restart to change it")
        where = s.config_file.name if s.config_file else "no vividflow.toml"
        st.caption(f"From env and {where}; changes here last for this session.")
        st.caption(" · ".join(f"{k}: {v}" for k, v in sorted(s.sources.items()) if v != "default") or "all defaults")
