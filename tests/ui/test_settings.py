"""Settings: environment variables over vividflow.toml over defaults, shown in the sidebar."""

from __future__ import annotations

import pytest

from ui.settings import SettingsError, load_settings


def test_defaults_without_file_or_env(tmp_path):
    s = load_settings(env={}, cwd=tmp_path)
    assert s.backend == "auto"
    assert s.config_file is None
    assert s.home == (tmp_path / "vividflow-data").resolve()
    assert s.generation.model == "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
    assert s.generation.loras == ()
    assert not s.llm_on  # no LLM model named: the rules plan alone
    assert s.lora_label == "none"


def test_file_values_and_env_precedence(tmp_path):
    (tmp_path / "vividflow.toml").write_text(
        'backend = "wan"\n'
        f'home = "{tmp_path / "data"}"\n'
        "[wan]\n"
        'model = "/models/wan22"\n'
        'loras = ["high_noise:0.8:/loras/style.safetensors"]\n'
        "lightning = false\n"
        "[llm]\n"
        'model = "smollm2"\n'
        "timeout_s = 5\n"
    )
    s = load_settings(env={}, cwd=tmp_path)
    assert s.config_file == (tmp_path / "vividflow.toml").resolve()
    assert (s.backend, s.home, s.generation.model, s.generation.lightning) == ("wan", tmp_path / "data", "/models/wan22", False)
    assert s.generation.loras[0].source == "/loras/style.safetensors" and s.generation.loras[0].scale == 0.8
    assert s.llm.model == "smollm2" and s.llm.timeout_s == 5.0 and s.llm_on
    assert s.sources["wan.model"] == "vividflow.toml"

    env = {"VIVIDFLOW_BACKEND": "preview", "VIVIDFLOW_WAN_MODEL": "/other", "VIVIDFLOW_LLM_ENABLED": "off"}
    s = load_settings(env=env, cwd=tmp_path)
    assert (s.backend, s.generation.model, s.llm_on) == ("preview", "/other", False)
    assert s.sources["backend"] == "env VIVIDFLOW_BACKEND" and s.sources["wan.model"] == "env VIVIDFLOW_WAN_MODEL"
    assert s.generation.loras  # still from the file


def test_config_path_from_env_and_home(tmp_path):
    other = tmp_path / "elsewhere.toml"
    other.write_text('backend = "preview"\n')
    assert load_settings(env={"VIVIDFLOW_CONFIG": str(other)}, cwd=tmp_path).backend == "preview"
    home = tmp_path / "home"
    home.mkdir()
    (home / "vividflow.toml").write_text('backend = "wan"\n')
    assert load_settings(env={"VIVIDFLOW_HOME": str(home)}, cwd=tmp_path).backend == "wan"


@pytest.mark.parametrize(
    "text, env, message",
    [
        ('backend = "gpu"\n', {}, "backend"),
        ("colour = 1\n", {}, "unknown keys ['colour']"),
        ("[wan]\nmodle = 'x'\n", {}, "unknown [wan] keys ['modle']"),
        ("backend = \n", {}, "not valid TOML"),
        ("", {"VIVIDFLOW_CONFIG": "/no/such/file.toml"}, "no such file"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path, text, env, message):
    (tmp_path / "vividflow.toml").write_text(text)
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(env=env, cwd=tmp_path)


def test_sidebar_shows_and_edits_settings(app):
    at = app
    assert at.selectbox(key="sb.backend").value == "preview"  # VIVIDFLOW_BACKEND=preview in tests
    assert any(c.value.startswith("Renders with **preview**") for c in at.caption)
    assert at.text_input(key="sb.lora").value == "none" and at.text_input(key="sb.lora").disabled
    assert at.text_input(key="sb.model").value == "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
    at.selectbox(key="sb.backend").set_value("wan").run()
    assert any(c.value.startswith("Renders with **wan** · Wan-AI/Wan2.2") for c in at.caption)
    at.selectbox(key="sb.backend").set_value("preview").run()
    at.text_input(key="sb.llm_model").set_value("smollm2").run()
    assert at.session_state["settings"].llm_on
    assert at.button(key="pp.enhance")  # "enhance prompt" appears only with the LLM planner on
    at.toggle(key="sb.llm").set_value(False).run()
    assert not at.session_state["settings"].llm_on
    assert not any(b.key == "pp.enhance" for b in at.button)
    assert at.text_input(key="sb.home").disabled
    assert not at.exception


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
