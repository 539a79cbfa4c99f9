"""The settings sections: storage, studio, wan, llm. Frozen pydantic models with one validation style;
each field's environment variable is named beside it (`env_names`). Built by `vividflow.settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationError

from vividflow.values import (
    FALSE_WORDS,
    TRUE_WORDS,
    gguf_name,
    LoraSpec,
    SettingsError,
    choice,
    device_name,
    first_error,
    float_in,
    int_in,
    lora_specs,
    optional_text,
    parse_bool,

    text,
)

DEFAULT_HOME = "./vividflow-data"
CRF_RANGE = (0, 51)  # H.264 quality: 0 lossless – 51 worst
DEFAULT_CRF = 18
MIN_MAX_AREA = 16 * 16

Backend = Literal["auto", "preview", "wan"]
Workers = Literal["in-process", "external"]
Quantization = Literal["auto", "none", "int8", "fp8"]
DType = Literal["auto", "bfloat16", "float16", "float32"]
NagMode = Literal["auto", "on", "off"]
LLMMode = Literal["fallback_only", "always"]
# diffusers' attention backends that need no download (`diffusers.models.attention_dispatch.AttentionBackendName`)
Attention = Literal["auto", "native", "_native_cudnn", "_native_flash", "_native_efficient", "flash", "flash_varlen",
                    "_flash_3", "_flash_varlen_3", "sage", "sage_varlen", "flex", "xformers"]
VaeDType = Literal["float32", "bfloat16"]
VaeTiling = Literal["auto", "on", "off"]
StepCache = Literal["auto", "off", "first_block", "mag"]
Offload = Literal["auto", "none", "model", "group"]
BACKENDS: tuple[str, ...] = get_args(Backend)
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
DTYPES: tuple[str, ...] = get_args(DType)
NAG_MODES: tuple[str, ...] = get_args(NagMode)
LLM_MODES: tuple[str, ...] = get_args(LLMMode)
ATTENTIONS: tuple[str, ...] = get_args(Attention)
VAE_DTYPES: tuple[str, ...] = get_args(VaeDType)
VAE_TILINGS: tuple[str, ...] = get_args(VaeTiling)
STEP_CACHES: tuple[str, ...] = get_args(StepCache)
OFFLOADS: tuple[str, ...] = get_args(Offload)
WORKERS: tuple[str, ...] = get_args(Workers)
LEASE_RANGE = (0.1, 3600.0)  # seconds a worker's hold on a job lasts unless renewed
BUSY_TIMEOUT_RANGE = (0.0, 3600.0)  # seconds a write waits for another process's write lock
MIN_PASSWORD_CHARS = 8

Bool = Annotated[bool, BeforeValidator(parse_bool)]


def secret(value: Any) -> SecretStr | None:
    """A password: None when unset or blank; never quoted back in an error."""
    if value is None or isinstance(value, SecretStr):
        return value
    text = str(value).strip()
    if not text:
        return None
    if len(text) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password must be at least {MIN_PASSWORD_CHARS} characters long")
    return SecretStr(text)


Password = Annotated[SecretStr | None, BeforeValidator(secret)]
OptionalText = Annotated[str | None, BeforeValidator(optional_text)]


def switch(name: str, choices: tuple[str, ...], on: str, off: str) -> Any:
    """One of `choices`, where the yes/no words (1/0, true/false, on/off) mean `on` / `off`."""
    check = choice(name, choices)

    def parse(value: Any) -> str:
        if isinstance(value, bool):
            return on if value else off
        text = str(value).strip().lower()
        return on if text in TRUE_WORDS else off if text in FALSE_WORDS else check(value)

    return parse


class Section(BaseModel):
    """A frozen group of settings. Constructing one with a bad value raises SettingsError with one sentence."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    env_names: ClassVar[dict[str, str]] = {}  # field -> environment variable

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            field = str(err["loc"][0]) if err["loc"] else None
            raise SettingsError(first_error(e), field=field) from None

    def replace(self, **changes: Any) -> Any:
        """A validated copy with `changes` applied (same class)."""
        return type(self)(**{**self.values(), **changes})

    def values(self) -> dict[str, Any]:
        """Field name -> value, without conversion (LoRAs stay LoraSpec values)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (LoRAs as dicts, paths as text)."""
        out = {}
        for name, value in self.values().items():
            if isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, LoraSpec) else v for v in value]
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, SecretStr):
                value = "********"  # set, never shown
            out[name] = value
        return out



class StorageSettings(Section):
    """Where records and media live, and how long a worker's lease on a job of the shared queue lasts."""

    home: Annotated[Path, BeforeValidator(lambda v: Path(str(v)).expanduser())] = Path(DEFAULT_HOME)
    db_url: OptionalText = None  # any SQLAlchemy URL; None: sqlite:///<home>/vividflow.db
    media_root: Annotated[Path | None, BeforeValidator(
        lambda v: None if optional_text(v) is None else Path(str(v)).expanduser())] = None  # None: <home>/media
    lease_s: Annotated[float, BeforeValidator(float_in(
        "lease_s", *LEASE_RANGE, what="a number of seconds"))] = 30.0  # renewed every lease_s / 3
    # how long a write waits for another process's write lock before "the database is busy"
    busy_timeout_s: Annotated[float, BeforeValidator(float_in(
        "busy_timeout_s", *BUSY_TIMEOUT_RANGE, what="a number of seconds"))] = 30.0
    env_names: ClassVar[dict[str, str]] = {
        "home": "VIVIDFLOW_HOME", "db_url": "VIVIDFLOW_DB_URL", "media_root": "VIVIDFLOW_MEDIA_ROOT",
        "lease_s": "VIVIDFLOW_LEASE_S", "busy_timeout_s": "VIVIDFLOW_DB_BUSY_TIMEOUT_S",
    }


def name_list(value: Any) -> tuple[str, ...]:
    """Names from "a@x.org, b@y.org" (environment) or a TOML list; blanks dropped, order kept."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(x, str) for x in items):
        raise ValueError(f"admins must be names separated by commas, got {value!r}")
    return tuple(dict.fromkeys(x.strip() for x in items if x.strip()))


class StudioSettings(Section):
    """The studio page, and the people who share it."""

    backend: Annotated[Backend, BeforeValidator(choice("backend", BACKENDS))] = "auto"
    # in-process: the studio runs the jobs it queues; external: workers (`python -m generation worker`) do
    workers: Annotated[Workers, BeforeValidator(choice("workers", WORKERS))] = "in-process"
    # a shared password for the studio (ui.auth); required before it serves beyond 127.0.0.1 unless st.login is set up
    password: Password = None
    # the most jobs one person may have queued or running at once; 0: no limit
    queue_quota: Annotated[int, BeforeValidator(int_in("queue_quota", 0, 100_000))] = 10
    # the people (login names or e-mails) who see every person's queue in the studio
    admins: Annotated[tuple[str, ...], BeforeValidator(name_list)] = ()
    env_names: ClassVar[dict[str, str]] = {
        "backend": "VIVIDFLOW_BACKEND", "workers": "VIVIDFLOW_WORKERS", "password": "VIVIDFLOW_PASSWORD",
        "queue_quota": "VIVIDFLOW_QUEUE_QUOTA", "admins": "VIVIDFLOW_ADMINS",
    }


class WanSettings(Section):
    """How to load and run the Wan backend (`generation.config.GenerationConfig` adds the model registry).

    None means "the registry's value" (or, for a local folder outside the registry, the folder's own).
    """

    model: Annotated[str, BeforeValidator(text("model", "a hub id, alias or local folder"))] = (
        "Wan-AI/Wan2.2-I2V-A14B-Diffusers")
    defaults_from: OptionalText = None  # registry entry for a local folder of a registered model
    transformer: OptionalText = None  # override for both experts (a bf16 copy of the experts)
    lightning: Bool = True  # add the registry's Lightning LoRAs
    loras: Annotated[tuple[LoraSpec, ...], BeforeValidator(lora_specs)] = ()  # user LoRAs, after Lightning
    quantization: Annotated[Quantization, BeforeValidator(choice("quantization", QUANTIZATIONS))] = "auto"
    # auto: from the free GPU memory (generation.wan_memory); model: one component on the GPU at a time (1/on);
    # group: block by block, streamed; none: everything resident (0/off)
    cpu_offload: Annotated[Offload, BeforeValidator(switch("cpu_offload", OFFLOADS, "model", "none"))] = "auto"
    device: Annotated[str, BeforeValidator(device_name())] = "auto"
    dtype: Annotated[DType, BeforeValidator(choice("dtype", DTYPES))] = "auto"
    crf: Annotated[int, BeforeValidator(int_in("crf", *CRF_RANGE))] = DEFAULT_CRF
    max_area: Annotated[int | None, BeforeValidator(
        int_in("max_area", MIN_MAX_AREA, None, optional=True))] = None
    boundary_ratio: Annotated[float | None, BeforeValidator(
        float_in("boundary_ratio", 0.0, 1.0, lo_open=True, hi_open=True, optional=True))] = None
    flow_shift: Annotated[float | None, BeforeValidator(
        float_in("flow_shift", 0.0, 50.0, lo_open=True, optional=True))] = None  # None: from the recipe
    max_sequence_length: Annotated[int | None, BeforeValidator(
        int_in("max_sequence_length", 1, 512, optional=True))] = None
    # negative prompt through NAG: auto = when guidance ≤ 1 and the negative prompt is not empty; on = also
    # beside CFG; off = never (`generation.nag`)
    nag: Annotated[NagMode, BeforeValidator(choice("nag", NAG_MODES))] = "auto"
    vae_tiling: Annotated[VaeTiling, BeforeValidator(switch("vae_tiling", VAE_TILINGS, "on", "off"))] = "auto"  # auto: offload or ≥720p
    vae_dtype: Annotated[VaeDType | None, BeforeValidator(
        lambda v: None if optional_text(v) is None else choice("vae_dtype", VAE_DTYPES)(v))] = None  # None: the spec's
    attention: Annotated[Attention, BeforeValidator(choice("attention", ATTENTIONS))] = "auto"  # auto: best installed
    compile: Bool = False  # regional torch.compile of both experts' repeated blocks
    embedding_cache: Bool = True  # reuse prompt embeddings and image latents between renders (small LRU)
    live_preview: Bool = True  # a cheap latent→RGB strip at every step (no VAE)
    step_cache: Annotated[StepCache, BeforeValidator(choice("step_cache", STEP_CACHES))] = "auto"  # auto: the recipe's
    weight_cache: Bool = True  # save the fused + quantized experts under <home>/cache/wan, load them next time
    # smoother (#12 §5): Practical-RIFE's flownet.pkl (or its folder) interpolates frames; None: ffmpeg's minterpolate
    rife_weights: OptionalText = None
    upscaler_weights: OptionalText = None  # larger (#12 §5): a Real-ESRGAN ×4 checkpoint; None: Lanczos + unsharp

    env_names: ClassVar[dict[str, str]] = {
        "model": "VIVIDFLOW_WAN_MODEL",
        "defaults_from": "VIVIDFLOW_WAN_DEFAULTS_FROM",
        "transformer": "VIVIDFLOW_WAN_TRANSFORMER",
        "lightning": "VIVIDFLOW_WAN_LIGHTNING",
        "loras": "VIVIDFLOW_WAN_LORAS",
        "quantization": "VIVIDFLOW_WAN_QUANT",
        "cpu_offload": "VIVIDFLOW_WAN_CPU_OFFLOAD",
        "device": "VIVIDFLOW_WAN_DEVICE",
        "dtype": "VIVIDFLOW_WAN_DTYPE",
        "crf": "VIVIDFLOW_CRF",
        "max_area": "VIVIDFLOW_WAN_MAX_AREA",
        "boundary_ratio": "VIVIDFLOW_WAN_BOUNDARY",
        "flow_shift": "VIVIDFLOW_WAN_FLOW_SHIFT",
        "vae_tiling": "VIVIDFLOW_WAN_VAE_TILING",
        "nag": "VIVIDFLOW_WAN_NAG",
        "vae_dtype": "VIVIDFLOW_WAN_VAE_DTYPE",
        "attention": "VIVIDFLOW_WAN_ATTENTION",
        "compile": "VIVIDFLOW_WAN_COMPILE",
        "embedding_cache": "VIVIDFLOW_WAN_EMBEDDING_CACHE",
        "live_preview": "VIVIDFLOW_WAN_LIVE_PREVIEW",
        "step_cache": "VIVIDFLOW_WAN_STEP_CACHE",
        "weight_cache": "VIVIDFLOW_WAN_WEIGHT_CACHE",
        "rife_weights": "VIVIDFLOW_RIFE_WEIGHTS",
        "upscaler_weights": "VIVIDFLOW_UPSCALER_WEIGHTS",
    }


class LLMSettings(Section):
    """How to load and use the LLM planner (`agent.llm.LLMConfig` adds what the planner derives from it)."""

    model: OptionalText = None  # hub id, local folder, .gguf path, or "smollm2"; None = no LLM
    gguf_file: Annotated[str | None, BeforeValidator(gguf_name)] = None  # a GGUF file inside `model`
    device: Annotated[str, BeforeValidator(device_name())] = "auto"
    dtype: Annotated[DType, BeforeValidator(choice("dtype", DTYPES))] = "auto"
    max_new_tokens: Annotated[int, BeforeValidator(int_in("max_new_tokens", 16, 4096))] = 512
    enhance_max_new_tokens: Annotated[int, BeforeValidator(int_in("enhance_max_new_tokens", 16, 1024))] = 160
    timeout_s: Annotated[float, BeforeValidator(float_in(
        "timeout_s", 0.0, 600.0, lo_open=True, what="a number of seconds"))] = 20.0  # decoding only
    enabled: Bool = True
    mode: Annotated[LLMMode, BeforeValidator(choice("mode", LLM_MODES))] = "fallback_only"
    history_turns: Annotated[int, BeforeValidator(int_in("history_turns", 0, 20))] = 4
    max_edits: Annotated[int, BeforeValidator(int_in("max_edits", 1, 12))] = 4  # grammar bound
    grounded_only: Bool = True  # keep only edits whose target the message names
    temperature: Annotated[float, BeforeValidator(float_in("temperature", 0.0, 2.0))] = 0.0  # 0 = greedy
    seed: Annotated[int, BeforeValidator(int_in("seed", 0, 2**31 - 1))] = 0

    env_names: ClassVar[dict[str, str]] = {
        "model": "VIVIDFLOW_LLM_MODEL",
        "gguf_file": "VIVIDFLOW_LLM_GGUF_FILE",
        "device": "VIVIDFLOW_LLM_DEVICE",
        "dtype": "VIVIDFLOW_LLM_DTYPE",
        "max_new_tokens": "VIVIDFLOW_LLM_MAX_NEW_TOKENS",
        "enhance_max_new_tokens": "VIVIDFLOW_LLM_ENHANCE_MAX_NEW_TOKENS",
        "timeout_s": "VIVIDFLOW_LLM_TIMEOUT_S",
        "enabled": "VIVIDFLOW_LLM_ENABLED",
        "mode": "VIVIDFLOW_LLM_MODE",
        "history_turns": "VIVIDFLOW_LLM_HISTORY_TURNS",
        "max_edits": "VIVIDFLOW_LLM_MAX_EDITS",
        "grounded_only": "VIVIDFLOW_LLM_GROUNDED_ONLY",
        "temperature": "VIVIDFLOW_LLM_TEMPERATURE",
    }

    @property
    def available(self) -> bool:
        """On, and a model is named."""
        return self.enabled and self.model is not None


SECTIONS: dict[str, type[Section]] = {
    "storage": StorageSettings, "studio": StudioSettings, "wan": WanSettings, "llm": LLMSettings,
}
TOP_LEVEL_FILE_KEYS = {"backend": ("studio", "backend"), "home": ("storage", "home")}  # older file layout


def section_name(cls: type) -> str:
    """The section a (sub)class of a section extends, e.g. GenerationConfig -> "wan"."""
    for name, section in SECTIONS.items():
        if issubclass(cls, section):
            return name
    raise TypeError(f"{cls.__name__} is not a settings section")


def env_variables() -> dict[str, tuple[str, str]]:
    """Every VIVIDFLOW_* variable -> (section, field); VIVIDFLOW_CONFIG names the file."""
    return {env: (section, name) for section, cls in SECTIONS.items() for name, env in cls.env_names.items()}


