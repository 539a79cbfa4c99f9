"""The studio's settings: environment variables first, then an optional `vividflow.toml`, then defaults.

The file is looked for at `$VIVIDFLOW_CONFIG`, then `./vividflow.toml`, then `$VIVIDFLOW_HOME/vividflow.toml`::

    backend = "auto"              # auto | preview | wan        (env VIVIDFLOW_BACKEND)
    home = "./vividflow-data"     # data folder: database + media (env VIVIDFLOW_HOME)

    [wan]                         # any GenerationConfig field (env VIVIDFLOW_WAN_*, see generation/config.py)
    model = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
    loras = "high_noise:1.0:/loras/mine.safetensors"
    quantization = "auto"

    [llm]                         # any LLMConfig field (env VIVIDFLOW_LLM_*, see agent/llm/config.py)
    model = "Qwen/Qwen2.5-1.5B-Instruct"   # or a folder, a .gguf file, or "smollm2"; none = LLM off
    enabled = true

An environment variable always wins over the file; the file wins over the defaults. `Settings.sources`
says where each value came from, and the sidebar shows it. Light: no torch, no Streamlit.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.llm import ENV_VARS as LLM_ENV_VARS
from agent.llm import LLMConfig
from generation.config import ENV_VARS as WAN_ENV_VARS
from generation.config import GenerationConfig

log = logging.getLogger(__name__)

CONFIG_ENV = "VIVIDFLOW_CONFIG"
HOME_ENV = "VIVIDFLOW_HOME"
BACKEND_ENV = "VIVIDFLOW_BACKEND"
CONFIG_FILENAME = "vividflow.toml"
DEFAULT_HOME = "./vividflow-data"
BACKENDS = ("auto", "preview", "wan")


class SettingsError(ValueError):
    """A setting with a value we cannot use; the message names the setting, where it came from, and the choices."""


@dataclass(frozen=True)
class Settings:
    """Everything the sidebar shows: which backend and model render, whether the LLM plans, where data lives."""

    backend: str = "auto"  # auto: wan when CUDA and weights are there, else preview
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    home: Path = Path(DEFAULT_HOME).resolve()
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)  # setting -> "env X" | file | "default"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise SettingsError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with sidebar edits applied; the edited fields are marked as coming from the sidebar."""
        sources = dict(self.sources)
        for key in changes:
            sources[key] = "sidebar (this session)"
        return replace(self, sources=sources, **changes)

    @property
    def llm_on(self) -> bool:
        """The LLM planner runs: switched on and a model named."""
        return self.llm.available

    @property
    def lora_label(self) -> str:
        """The LoRAs as one line ("none" when there are none); Lightning is shown separately."""
        loras = self.generation.loras
        if not loras:
            return "none"
        return "; ".join(f"{l.expert}:{l.scale:g}:{l.label}" for l in loras)


def find_config_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    """`$VIVIDFLOW_CONFIG` (which must exist), else ./vividflow.toml, else $VIVIDFLOW_HOME/vividflow.toml."""
    explicit = env.get(CONFIG_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise SettingsError(f"{CONFIG_ENV}={explicit!r}: no such file")
        return path.resolve()
    candidates = [cwd / CONFIG_FILENAME]
    home = env.get(HOME_ENV, "").strip()
    if home:
        candidates.append(Path(home).expanduser() / CONFIG_FILENAME)
    return next((p.resolve() for p in candidates if p.is_file()), None)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML: {e}") from None


_TOP_KEYS = {"backend", "home", "wan", "llm"}


def _as_env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):  # loras as a list of "expert:scale:source" strings
        return ";".join(str(v) for v in value)
    return str(value)


def load_settings(env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> Settings:
    """Read the settings; raises SettingsError (or generation's ConfigError) naming what is wrong."""
    env = dict(os.environ if env is None else env)
    cwd_path = Path(cwd) if cwd is not None else Path.cwd()
    path = find_config_file(env, cwd_path)
    raw = _read_toml(path) if path else {}
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise SettingsError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    file_label = path.name if path else ""
    sources: dict[str, str] = {}

    def pick(key: str, env_name: str, file_value: Any, default: Any) -> Any:
        text = env.get(env_name, "").strip()
        if text:
            sources[key] = f"env {env_name}"
            return text
        if file_value is not None:
            sources[key] = file_label
            return file_value
        sources[key] = "default"
        return default

    backend = str(pick("backend", BACKEND_ENV, raw.get("backend"), "auto")).strip().lower()
    if backend not in BACKENDS:
        raise SettingsError(f"backend ({sources['backend']}) must be one of {', '.join(BACKENDS)}, got {backend!r}")
    home = (cwd_path / Path(str(pick("home", HOME_ENV, raw.get("home"), DEFAULT_HOME))).expanduser()).resolve()

    generation = GenerationConfig.from_env(_file_under_env(env, raw, "wan", WAN_ENV_VARS, path, file_label, sources))
    llm = LLMConfig.from_env(_file_under_env(env, raw, "llm", LLM_ENV_VARS, path, file_label, sources))
    return Settings(
        backend=backend,
        generation=generation,
        llm=llm,
        home=home,
        config_file=path,
        sources=sources,
    )


def _file_under_env(
    env: Mapping[str, str],
    raw: Mapping[str, Any],
    section: str,
    table: Mapping[str, tuple[str, Any]],
    path: Path | None,
    file_label: str,
    sources: dict[str, str],
) -> dict[str, str]:
    """The environment with the file's `[section]` values filled in where no variable is set, so the
    owning package's own parsers (`from_env`) read both; records where each value came from."""
    values = raw.get(section, {})
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: [{section}] must be a table")
    by_field = {fieldname: name for name, (fieldname, _parse) in table.items()}
    unknown = set(values) - set(by_field)
    if unknown:
        raise SettingsError(f"{path}: unknown [{section}] keys {sorted(unknown)}; allowed: {sorted(by_field)}")
    merged = dict(env)
    for fieldname, name in by_field.items():
        if env.get(name, "").strip():
            sources[f"{section}.{fieldname}"] = f"env {name}"
        elif fieldname in values:
            merged[name] = _as_env_text(values[fieldname])
            sources[f"{section}.{fieldname}"] = file_label
    return merged
