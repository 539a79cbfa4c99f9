"""The sidebar shows the settings (vividflow.settings: env over vividflow.toml over defaults) and edits a few."""

from __future__ import annotations

import pytest



def _loaded(at) -> str:
    """The read-only table of what the server loads."""
    return " ".join(m.value for m in at.markdown if "loaded at start-up" in m.value)


def test_sidebar_switches_backend_and_llm_and_shows_what_the_server_loads_read_only(monkeypatch, kit, tmp_path):
    from ui.format import plain

    monkeypatch.setenv("VIVIDFLOW_LLM_MODEL", "smollm2")
    monkeypatch.setenv("VIVIDFLOW_DB_URL", f"sqlite:///{tmp_path / 'records.db'}")
    at = kit.new_session()
    assert not at.exception
    assert at.selectbox(key="sb.backend").value == "preview"  # VIVIDFLOW_BACKEND=preview in tests
    assert any(c.value.startswith("Renders with **preview**") for c in at.caption)
    loaded = _loaded(at)
    for expected in ("| Wan model | Wan-AI/Wan2.2-I2V-A14B-Diffusers |", "| LoRAs | none |", "| LLM model | smollm2 |",
                     "| data folder |", "| database | " + plain("sqlite:///")):
        assert expected in loaded, (expected, loaded)
    # nothing that decides which code, weights or files the server loads can be typed into the page
    keys = {w.key for w in at.text_input} | {w.key for w in at.text_area}
    assert not {k for k in keys if k and k.startswith("sb.")}, keys
    at.selectbox(key="sb.backend").set_value("wan").run()
    assert any(c.value.startswith("Renders with **wan** · Wan-AI/Wan2.2") for c in at.caption)
    at.selectbox(key="sb.backend").set_value("preview").run()
    assert at.session_state["settings"].llm.available
    assert at.button(key="pp.enhance")  # "enhance prompt" appears only with the LLM planner on
    at.toggle(key="sb.llm").set_value(False).run()
    assert not at.session_state["settings"].llm.available
    assert not any(b.key == "pp.enhance" for b in at.button)
    assert at.session_state["settings"].llm.model == "smollm2"  # switched off, not changed
    assert not at.exception


def test_a_database_password_is_never_shown():
    from ui.sidebar import database_label
    from vividflow.settings import load_settings

    s = load_settings(env={"VIVIDFLOW_DB_URL": "postgresql+psycopg://ann:s3cret-pw@db.example/vf"}, use_file=False)
    assert database_label(s) == "postgresql+psycopg://ann:***@db.example/vf"
    s = load_settings(env={"VIVIDFLOW_DB_URL": "not a url with s3cret-pw"}, use_file=False)
    assert "s3cret" not in database_label(s)


def test_unavailable_backend_is_a_clear_message_not_a_crash(app, kit):
    at = kit.upload(app)
    at.selectbox(key="sb.backend").set_value("wan").run()
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            import pytest

            pytest.skip("this machine has CUDA: wan is available")
    assert any("no CUDA device" in c.value for c in at.caption)  # said under the setting
    at.button(key="res.generate").click().run()
    assert not at.exception
    assert any("no CUDA device" in e.value for e in at.error)
    assert kit.store().counts()["generations"] == 0  # nothing was written


def test_wan_backend_unloads_the_llm_planner_first(monkeypatch):
    # the runner's factory registers the LLM unload before Wan loads; without CUDA, Wan is then refused
    import agent.llm as planner_llm
    import generation.wan_load as wan
    from generation.backend import BackendUnavailable
    from generation.config import GenerationConfig
    from ui.services import make_backend

    unloads = []
    monkeypatch.setattr(wan, "_BEFORE_LOAD", [])  # this test's hooks only
    monkeypatch.setattr(planner_llm, "unload_all", lambda: unloads.append("llm"))
    monkeypatch.setattr("generation.choose.check_available",
                        lambda name, cfg=None: (_ for _ in ()).throw(BackendUnavailable("no CUDA device")))
    with pytest.raises(BackendUnavailable):
        make_backend("wan", GenerationConfig())
    with pytest.raises(BackendUnavailable):
        make_backend("wan", GenerationConfig())
    assert make_backend("preview", GenerationConfig()).name == "preview"
    wan.run_before_load_hooks()  # what Wan runs before it loads and before every clip
    assert unloads == ["llm"]  # the planner is unloaded, once however often the factory ran
