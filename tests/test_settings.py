"""One settings object: environment over vividflow.toml over defaults, errors that name the variable or key,
and where each value came from (what `vividflow config` and the studio's sidebar show)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vividflow.sections import SECTIONS, LLMSettings, WanSettings, env_variables
from vividflow.settings import SettingsError, load_settings, section_from_env
from vividflow.values import LoraSpec

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_without_file_or_env(tmp_path):
    s = load_settings(env={}, cwd=tmp_path)
    assert (s.backend, s.config_file, s.storage.db_url) == ("auto", None, None)
    assert s.home == (tmp_path / "vividflow-data").resolve()
    assert s.wan == WanSettings() and s.llm == LLMSettings()
    assert set(s.sources.values()) == {"default"}
    assert len(s.sources) == sum(len(cls.model_fields) for cls in SECTIONS.values())


def test_every_variable_reaches_its_field():
    samples = {
        "VIVIDFLOW_HOME": "/data/vf", "VIVIDFLOW_DB_URL": "postgresql+psycopg://u@h/db", "VIVIDFLOW_BACKEND": "Preview",
        "VIVIDFLOW_MEDIA_ROOT": "/shared/media", "VIVIDFLOW_LEASE_S": "5", "VIVIDFLOW_WORKERS": "External",
        "VIVIDFLOW_DB_BUSY_TIMEOUT_S": "2.5",
        "VIVIDFLOW_PASSWORD": "correct horse battery",
        "VIVIDFLOW_QUEUE_QUOTA": "3", "VIVIDFLOW_ADMINS": "ann@example.com, bob",
        "VIVIDFLOW_WAN_MODEL": "/models/wan", "VIVIDFLOW_WAN_DEFAULTS_FROM": "wan", "VIVIDFLOW_WAN_TRANSFORMER": "me/bf16",
        "VIVIDFLOW_WAN_LIGHTNING": "no", "VIVIDFLOW_WAN_LORAS": "low_noise:0.5:/l.safetensors",
        "VIVIDFLOW_WAN_QUANT": "INT8", "VIVIDFLOW_WAN_CPU_OFFLOAD": "on", "VIVIDFLOW_WAN_DEVICE": "cuda:1",
        "VIVIDFLOW_WAN_DTYPE": "bfloat16", "VIVIDFLOW_CRF": "23", "VIVIDFLOW_WAN_MAX_AREA": "921600",
        "VIVIDFLOW_WAN_BOUNDARY": "0.9", "VIVIDFLOW_WAN_FLOW_SHIFT": "5", "VIVIDFLOW_WAN_VAE_TILING": "0",
        "VIVIDFLOW_WAN_NAG": "Off",
        "VIVIDFLOW_WAN_VAE_DTYPE": "bfloat16", "VIVIDFLOW_WAN_ATTENTION": "sage", "VIVIDFLOW_WAN_COMPILE": "on",
        "VIVIDFLOW_WAN_EMBEDDING_CACHE": "off", "VIVIDFLOW_WAN_LIVE_PREVIEW": "0", "VIVIDFLOW_WAN_STEP_CACHE": "mag",
        "VIVIDFLOW_WAN_WEIGHT_CACHE": "off", "VIVIDFLOW_RIFE_WEIGHTS": "/models/rife",
        "VIVIDFLOW_UPSCALER_WEIGHTS": "/models/esrgan.pth",
        "VIVIDFLOW_LLM_MODEL": "smollm2", "VIVIDFLOW_LLM_GGUF_FILE": "x.gguf", "VIVIDFLOW_LLM_DEVICE": "CPU",
        "VIVIDFLOW_LLM_DTYPE": "float32", "VIVIDFLOW_LLM_MAX_NEW_TOKENS": "300",
        "VIVIDFLOW_LLM_ENHANCE_MAX_NEW_TOKENS": "100", "VIVIDFLOW_LLM_TIMEOUT_S": "7.5", "VIVIDFLOW_LLM_ENABLED": "off",
        "VIVIDFLOW_LLM_MODE": "always", "VIVIDFLOW_LLM_HISTORY_TURNS": "2", "VIVIDFLOW_LLM_MAX_EDITS": "3",
        "VIVIDFLOW_LLM_GROUNDED_ONLY": "false", "VIVIDFLOW_LLM_TEMPERATURE": "0.5",
    }
    assert set(samples) == set(env_variables())  # a new variable needs a sample here
    s = load_settings(env=samples, use_file=False)
    for name, (section, field) in env_variables().items():
        assert s.sources[f"{section}.{field}"] == f"env {name}"
        assert getattr(getattr(s, section), field) != getattr(SECTIONS[section](), field), name
    assert (s.home, s.backend, s.wan.transformer, s.wan.quantization, s.wan.crf) == (
        Path("/data/vf"), "preview", "me/bf16", "int8", 23)
    assert (s.storage.media_root, s.storage.lease_s, s.studio.workers) == (Path("/shared/media"), 5.0, "external")
    assert (s.studio.queue_quota, s.studio.admins) == (3, ("ann@example.com", "bob"))
    assert s.wan.loras == (LoraSpec("/l.safetensors", None, 0.5, "low_noise"),)
    assert (s.wan.vae_tiling, s.wan.vae_dtype, s.wan.attention, s.wan.compile, s.wan.step_cache) == (
        "off", "bfloat16", "sage", True, "mag")
    assert (s.llm.device, s.llm.timeout_s, s.llm.grounded_only, s.llm.available) == ("cpu", 7.5, False, False)


def test_file_under_environment_and_sources(tmp_path):
    (tmp_path / "vividflow.toml").write_text(
        'backend = "wan"\n'
        "[storage]\n"
        f'home = "{tmp_path / "data"}"\n'
        "[wan]\n"
        'model = "/models/wan22"\n'
        'loras = ["high_noise:0.8:/loras/style.safetensors"]\n'
        "crf = 20\n"
        "[llm]\n"
        "timeout_s = 5\n"
    )
    s = load_settings(env={"VIVIDFLOW_CRF": "30", "VIVIDFLOW_LLM_MODEL": "smollm2"}, cwd=tmp_path)
    assert s.config_file == (tmp_path / "vividflow.toml").resolve()
    assert (s.backend, s.home, s.wan.model, s.wan.crf, s.llm.timeout_s) == ("wan", tmp_path / "data", "/models/wan22", 30, 5.0)
    assert s.sources["wan.crf"] == "env VIVIDFLOW_CRF" and s.sources["wan.model"] == "vividflow.toml"
    assert s.sources["studio.backend"] == "vividflow.toml" and s.sources["wan.dtype"] == "default"
    assert ("wan.crf", 30, "env VIVIDFLOW_CRF") in s.describe()


@pytest.mark.parametrize(
    "env, text, message",
    [
        ({"VIVIDFLOW_CRF": "99"}, "", "VIVIDFLOW_CRF: crf must be an integer in 0–51, got 99"),
        ({"VIVIDFLOW_CRF": "high"}, "", "VIVIDFLOW_CRF: crf must be an integer in 0–51, got 'high'"),
        ({"VIVIDFLOW_LEASE_S": "0"}, "", "VIVIDFLOW_LEASE_S: lease_s must be a number of seconds in 0.1–3600, got 0"),
        ({"VIVIDFLOW_WORKERS": "ray"}, "", "VIVIDFLOW_WORKERS: workers must be one of in-process, external"),
        ({"VIVIDFLOW_WAN_LIGHTNING": "maybe"}, "", "VIVIDFLOW_WAN_LIGHTNING: expected 1/0, true/false"),
        ({"VIVIDFLOW_LLM_GGUF_FILE": "model.bin"}, "", "VIVIDFLOW_LLM_GGUF_FILE: gguf_file must be a file name ending in .gguf"),
        ({}, "[wan]\ncrf = 99\n", "vividflow.toml [wan] crf: crf must be an integer in 0–51, got 99"),
        ({}, "[llm]\nmode = 'sometimes'\n", "vividflow.toml [llm] mode: mode must be one of fallback_only, always"),
        ({}, "[storage]\nhomes = 'x'\n", "unknown [storage] keys ['homes']"),
        ({"VIVIDFLOW_QUEUE_QUOTA": "-1"}, "", "VIVIDFLOW_QUEUE_QUOTA: queue_quota must be an integer in 0–100000, got -1"),
        ({}, "[studio]\nadmins = ['ann', 3]\n", "admins must be names separated by commas"),
        ({}, "[studio]\n", None),
        ({"VIVIDFLOW_HOME": "x" * 500, "VIVIDFLOW_CONFIG": "/no/" + "y" * 500}, "", "no such file"),
    ],
)
def test_errors_name_the_variable_or_key(tmp_path, env, text, message):
    (tmp_path / "vividflow.toml").write_text(text)
    if message is None:
        assert load_settings(env=env, cwd=tmp_path).backend == "auto"
        return
    with pytest.raises(SettingsError) as info:
        load_settings(env=env, cwd=tmp_path)
    assert message in str(info.value) and len(str(info.value)) < 300 and "\n" not in str(info.value)


def test_admins_from_a_toml_list_and_the_quota_off(tmp_path):
    (tmp_path / "vividflow.toml").write_text("[studio]\nadmins = [' ann@example.com', 'bob', 'bob']\nqueue_quota = 0\n")
    s = load_settings(env={}, cwd=tmp_path)
    assert (s.studio.admins, s.studio.queue_quota) == (("ann@example.com", "bob"), 0)
    assert load_settings(env={}, use_file=False).studio.queue_quota == 10


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
def test_bad_files_name_the_problem(tmp_path, text, env, message):
    (tmp_path / "vividflow.toml").write_text(text)
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(env=env, cwd=tmp_path)


def test_sections_are_frozen_values_with_validated_copies():
    wan = WanSettings(crf=20)
    with pytest.raises(Exception):
        wan.crf = 21  # type: ignore[misc]
    assert wan.replace(crf=21).crf == 21 and wan.crf == 20
    with pytest.raises(SettingsError, match="crf must be an integer in 0–51, got 52"):
        wan.replace(crf=52)
    with pytest.raises(SettingsError, match="crf must be an integer in 0–51, got 2.5"):
        WanSettings(crf=2.5)
    assert hash(wan) == hash(WanSettings(crf=20)) and wan == WanSettings(crf=20)
    assert WanSettings(loras=wan.replace(loras="high_noise:1:/a.safetensors").to_dict()["loras"]).loras[0].source == "/a.safetensors"


def test_one_section_from_the_environment_with_flags_on_top():
    assert section_from_env(WanSettings, {"VIVIDFLOW_CRF": "23"}).crf == 23
    assert section_from_env(WanSettings, {"VIVIDFLOW_CRF": "23"}, crf=30, device=None).crf == 30


def test_the_config_command_prints_every_setting_and_its_source(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VIVIDFLOW_CRF": "25", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "vividflow", "config", "--json"], cwd=tmp_path, env={
        **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)["settings"]
    assert shown["wan.crf"] == {"value": 25, "source": "env VIVIDFLOW_CRF"}
    assert shown["storage.home"]["value"] == str((tmp_path / "vividflow-data").resolve())
    bad = subprocess.run([sys.executable, "-m", "vividflow", "config"], cwd=tmp_path, env={
        **env, "VIVIDFLOW_CRF": "99", "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == "vividflow: error: VIVIDFLOW_CRF: crf must be an integer in 0–51, got 99"


def test_sidebar_changes_mark_only_the_fields_that_changed(tmp_path):
    s = load_settings(env={"VIVIDFLOW_LLM_MODEL": "smollm2"}, cwd=tmp_path)
    changed = s.with_changes(llm=s.llm.replace(enabled=False), studio=s.studio.replace(backend="preview"))
    assert (changed.llm.enabled, changed.backend, changed.llm.model) == (False, "preview", "smollm2")
    assert changed.sources["llm.enabled"] == changed.sources["studio.backend"] == "sidebar (this session)"
    assert changed.sources["llm.model"] == "env VIVIDFLOW_LLM_MODEL" and s.llm.enabled
