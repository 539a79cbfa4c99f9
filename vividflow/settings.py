"""Every setting of VividFlow, read in one place: environment over `vividflow.toml` over defaults.

One `Settings` object (pydantic-settings) in four sections (`vividflow.sections`); `load_settings()` builds
it and records where each value came from::

    VIVIDFLOW_HOME, VIVIDFLOW_DB_URL                 -> storage.home, storage.db_url
    VIVIDFLOW_MEDIA_ROOT, VIVIDFLOW_LEASE_S          -> storage.media_root, storage.lease_s
    VIVIDFLOW_BACKEND, VIVIDFLOW_WORKERS             -> studio.backend, studio.workers
    VIVIDFLOW_WAN_*, VIVIDFLOW_CRF                   -> wan.*      (generation.config.GenerationConfig)
    VIVIDFLOW_LLM_*                                  -> llm.*      (agent.llm.LLMConfig)
    VIVIDFLOW_CONFIG                                 -> the TOML file (else ./vividflow.toml, else <home>/vividflow.toml)

The file has the same sections (`[storage]`, `[studio]`, `[wan]`, `[llm]`); `backend` and `home` may also
stand at its top. This is the only module that reads `VIVIDFLOW_*` variables (tests/test_architecture.py
checks it); it imports nothing of ours but the sections and no ML library, so every floor may use it.
"""

from __future__ import annotations

import contextvars
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vividflow.sections import (
    SECTIONS,
    TOP_LEVEL_FILE_KEYS,
    LLMSettings,
    Section,
    StorageSettings,
    StudioSettings,
    WanSettings,
    env_variables,
    section_name,
)
from vividflow.values import TRUE_WORDS, SettingsError, first_error, short

CONFIG_ENV = "VIVIDFLOW_CONFIG"
CONFIG_FILENAME = "vividflow.toml"
S = TypeVar("S", bound=Section)

# --- the sources: environment table, TOML file ----------------------------------------------------------------

_ENV: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("vividflow_env")
_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("vividflow_file")


class _EnvTableSource(PydanticBaseSettingsSource):
    """The environment, read through the one table of variable names (they predate a naming scheme)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.origins: dict[tuple[str, str], str] = {}
        self.data: dict[str, dict[str, str]] = {}
        for name, (section, fieldname) in env_variables().items():
            raw = env.get(name)
            if raw is not None and raw.strip():
                self.data.setdefault(section, {})[fieldname] = raw.strip()
                self.origins[(section, fieldname)] = f"env {name}"

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, True

    def __call__(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.data.items()}


class _TomlSource(PydanticBaseSettingsSource):
    """`vividflow.toml`: one table per section; unknown keys are an error, not ignored."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.origins: dict[tuple[str, str], str] = {}
        self.data: dict[str, dict[str, Any]] = {}
        if path is None:
            return
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{path}: not valid TOML: {e}") from None
        except OSError as e:
            raise SettingsError(f"{path}: cannot be read ({e.strerror or e})") from None
        allowed = sorted(set(SECTIONS) | set(TOP_LEVEL_FILE_KEYS))
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise SettingsError(f"{path}: unknown keys {short(unknown)}; allowed: {allowed}")
        for key, (section, fieldname) in TOP_LEVEL_FILE_KEYS.items():
            if key in raw:
                self._put(path, section, fieldname, raw[key])
        for section, cls in SECTIONS.items():
            table = raw.get(section, {})
            if not isinstance(table, dict):
                raise SettingsError(f"{path}: [{section}] must be a table")
            unknown = sorted(set(table) - set(cls.model_fields))
            if unknown:
                raise SettingsError(f"{path}: unknown [{section}] keys {short(unknown)}; "
                                    f"allowed: {sorted(cls.model_fields)}")
            for fieldname, value in table.items():
                self._put(path, section, fieldname, value)

    def _put(self, path: Path, section: str, fieldname: str, value: Any) -> None:
        self.data.setdefault(section, {})[fieldname] = value
        self.origins[(section, fieldname)] = path.name

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, True

    def __call__(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.data.items()}


# --- the object -----------------------------------------------------------------------------------------------


class Settings(BaseSettings):
    """All of VividFlow's settings; build it with `load_settings()`."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    storage: StorageSettings = Field(default_factory=StorageSettings)
    studio: StudioSettings = Field(default_factory=StudioSettings)
    wan: WanSettings = Field(default_factory=WanSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    config_file: Path | None = None
    sources: dict[str, str] = Field(default_factory=dict, exclude=True)  # "wan.model" -> "env X" | file | "default"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_unused: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first, then the environment (through the table), then the file, then the defaults.
        return (init_settings, _EnvTableSource(settings_cls, _ENV.get({})), _TomlSource(settings_cls, _FILE.get(None)))

    # --- shorthands the studio and the CLI use ------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.storage.home

    @property
    def backend(self) -> str:
        return self.studio.backend

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with whole sections replaced (the sidebar's edits); each changed field is marked as set here."""
        sources = dict(self.sources)
        for name, section in changes.items():
            old = getattr(self, name)
            for field, value in section.values().items():
                if getattr(old, field) != value:
                    sources[f"{name}.{field}"] = "sidebar (this session)"
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update(changes, sources=sources)
        return Settings.model_construct(**values)

    def describe(self) -> list[tuple[str, Any, str]]:
        """(setting, value, where it came from) for every setting, in section order."""
        rows = []
        for section in SECTIONS:
            for name, value in getattr(self, section).to_dict().items():
                key = f"{section}.{name}"
                rows.append((key, value, self.sources.get(key, "default")))
        return rows


def find_config_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    """`$VIVIDFLOW_CONFIG` (which must exist), else ./vividflow.toml, else $VIVIDFLOW_HOME/vividflow.toml."""
    explicit = env.get(CONFIG_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise SettingsError(f"{CONFIG_ENV}={short(explicit)}: no such file")
        return path.resolve()
    candidates = [cwd / CONFIG_FILENAME]
    home = env.get(StorageSettings.env_names["home"], "").strip()
    if home:
        candidates.append(Path(home).expanduser() / CONFIG_FILENAME)
    return next((p.resolve() for p in candidates if p.is_file()), None)


def load_settings(env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None, *,
                  use_file: bool = True) -> Settings:
    """Read the settings: `env` (default os.environ) over the TOML file over defaults.

    Raises SettingsError naming the variable or file key at fault.
    """
    env = dict(os.environ if env is None else env)
    cwd_path = Path(cwd) if cwd is not None else Path.cwd()
    path = find_config_file(env, cwd_path) if use_file else None
    env_token, file_token = _ENV.set(env), _FILE.set(path)
    try:
        env_source = _EnvTableSource(Settings, env)
        file_source = _TomlSource(Settings, path)
        try:
            settings = Settings(config_file=path)
        except SettingsError as e:
            raise SettingsError(_name_the_origin(str(e), env_source, file_source)) from None
        except ValidationError as e:
            raise SettingsError(_name_the_origin(first_error(e), env_source, file_source)) from None
    finally:
        _ENV.reset(env_token)
        _FILE.reset(file_token)
    sources = {}
    for section, cls in SECTIONS.items():
        for name in cls.model_fields:
            key = (section, name)
            sources[f"{section}.{name}"] = env_source.origins.get(key) or file_source.origins.get(key) or "default"
    home = settings.storage.home
    storage = settings.storage if home.is_absolute() else settings.storage.replace(home=(cwd_path / home).resolve())
    return Settings.model_construct(**{**{n: getattr(settings, n) for n in Settings.model_fields},
                                       "storage": storage, "sources": sources})


def _name_the_origin(message: str, env_source: _EnvTableSource, file_source: _TomlSource) -> str:
    """'wan.crf: crf must be …' -> 'VIVIDFLOW_CRF: crf must be …' (or the file and key)."""
    head, sep, rest = message.partition(": ")
    section, dot, fieldname = head.partition(".")
    if not sep or not dot:
        return message
    origin = env_source.origins.get((section, fieldname))
    if origin:
        return f"{origin.removeprefix('env ')}: {rest}"
    origin = file_source.origins.get((section, fieldname))
    if origin:
        return f"{origin} [{section}] {fieldname}: {rest}"
    return message


def offline() -> bool:
    """HF_HUB_OFFLINE is set: only local folders and weights already in the cache load."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_WORDS


def debug_enabled() -> bool:
    """VIVIDFLOW_DEBUG is on: tracebacks go to stderr as well as the log."""
    return os.environ.get("VIVIDFLOW_DEBUG", "").strip().lower() in TRUE_WORDS


def section_from_env(cls: type[S], env: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """One section (or a subclass such as GenerationConfig) from the environment alone, no file, then
    `overrides` (CLI flags; None = not given). Errors name the variable."""
    section = getattr(load_settings(env=env, use_file=False), section_name(cls))
    return cls(**{**section.values(), **{k: v for k, v in overrides.items() if v is not None}})
