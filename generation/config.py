"""Which video model, with which defaults, loaded how: the model registry and `GenerationConfig`.

The registry (`MODELS`) is the one table of per-model defaults (Wan2.2's `wan/configs/` idea, typed):
boundary ratio, flow shift per resolution tier, guidance pair, steps, fps, max area and the Lightning
LoRA recipe. `GenerationConfig` is the frozen load-time configuration that the UI, the CLI and the job
runner share; `GenerationConfig.from_env()` is the only place that reads environment variables.

Light on purpose: no torch import here.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

log = logging.getLogger(__name__)

Expert = Literal["high_noise", "low_noise"]
Quantization = Literal["auto", "none", "int8", "fp8"]
DType = Literal["auto", "bfloat16", "float16", "float32"]

EXPERTS: tuple[str, ...] = get_args(Expert)
QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
DTYPES: tuple[str, ...] = get_args(DType)
# The pipeline component that holds each expert (Wan2.2 A14B: `transformer` runs t ≥ boundary).
EXPERT_COMPONENT: dict[str, str] = {"high_noise": "transformer", "low_noise": "transformer_2"}

DEFAULT_MODEL_ID = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
# Same weights as the default model's experts, stored in bf16 (half the download of the fp32 shards).
BF16_TRANSFORMER_ID = "cbensimon/Wan2.2-I2V-A14B-bf16-Diffusers"

AREA_480P = 832 * 480  # 399,360
AREA_720P = 1280 * 720  # 921,600
CRF_RANGE = (0, 51)
DEFAULT_CRF = 18
MIN_MAX_AREA = 16 * 16


class ConfigError(ValueError):
    """A configuration value outside what we support; the message names the field, value and range."""


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA for one expert: a .safetensors file, or a folder / hub repo plus `weight_name`."""

    source: str
    weight_name: str | None = None
    scale: float = 1.0
    expert: Expert = "high_noise"

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError(f"LoRA source must be a file, folder or hub repo id, got {self.source!r}")
        if self.expert not in EXPERTS:
            raise ConfigError(f"LoRA expert must be one of {', '.join(EXPERTS)}, got {self.expert!r}")
        if not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale) or abs(self.scale) > 100:
            raise ConfigError(f"LoRA scale must be a finite number in -100–100, got {self.scale!r}")

    @property
    def label(self) -> str:
        """`source` or `source::weight_name`, the form `parse_loras` reads back."""
        return f"{self.source}::{self.weight_name}" if self.weight_name else self.source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    """A supported model and its defaults; `GenerationConfig` fields left unset are filled from here."""

    model_id: str
    description: str
    boundary_ratio: float = 0.9  # t ≥ ratio·1000 runs on the high-noise expert
    flow_shift_480p: float = 3.0
    flow_shift_720p: float = 5.0
    guidance_scale: float = 3.5  # without Lightning (high-noise expert)
    guidance_scale_2: float = 3.5  # without Lightning (low-noise expert)
    steps: int = 40  # without Lightning
    fps: int = 16
    max_area: int = AREA_480P
    max_area_720p: int = AREA_720P
    max_sequence_length: int = 512
    vae_dtype: str = "float32"  # the Wan VAE decodes visibly better in fp32 (diffusers' Wan docs)
    transformer_override: str | None = None  # a repo with bf16 `transformer/` + `transformer_2/`
    lightning_loras: tuple[LoraSpec, ...] = ()
    lightning_steps: int = 4
    lightning_guidance: tuple[float, float] = (1.0, 1.0)

    def flow_shift_for(self, width: int, height: int) -> float:
        """3.0 up to the 480p area, 5.0 above it (the Wan recommendation per resolution tier)."""
        return self.flow_shift_480p if width * height <= self.max_area else self.flow_shift_720p


# The Wan2.1 lightx2v I2V step/CFG-distill LoRA: 4 steps at guidance 1.0. On Wan2.2 A14B the popular
# recipe loads the same file into both experts, 3.0 on high-noise and 1.0 on low-noise.
LIGHTX2V_REPO = "Kijai/WanVideo_comfy"
LIGHTX2V_FILE = "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank128_bf16.safetensors"
LIGHTNING_LORAS: tuple[LoraSpec, ...] = (
    LoraSpec(LIGHTX2V_REPO, LIGHTX2V_FILE, scale=3.0, expert="high_noise"),
    LoraSpec(LIGHTX2V_REPO, LIGHTX2V_FILE, scale=1.0, expert="low_noise"),
)

MODELS: dict[str, ModelSpec] = {
    DEFAULT_MODEL_ID: ModelSpec(
        model_id=DEFAULT_MODEL_ID,
        description="Wan2.2 image-to-video, 2×14B experts (MoE), 480p/720p, 16 fps",
        lightning_loras=LIGHTNING_LORAS,
    ),
}
ALIASES: dict[str, str] = {"wan2.2-i2v-a14b": DEFAULT_MODEL_ID, "wan": DEFAULT_MODEL_ID}


def model_spec(model: str) -> ModelSpec | None:
    """The registry entry for a hub id or alias; None for anything else (e.g. a local folder)."""
    return MODELS.get(ALIASES.get(model.lower(), model))


# --- the config ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationConfig:
    """How to load and run the Wan backend: one frozen value shared by the UI, the CLI and the worker.

    `None` means "the registry's value" (or, for a local folder outside the registry, the folder's own).
    """

    model: str = DEFAULT_MODEL_ID  # hub id, alias, or local Diffusers folder
    defaults_from: str | None = None  # registry entry for a local folder of a registered model
    transformer: str | None = None  # override for both experts, e.g. BF16_TRANSFORMER_ID
    lightning: bool = True  # add the registry's Lightning LoRAs
    loras: tuple[LoraSpec, ...] = ()  # user LoRAs, applied after Lightning, same path
    quantization: Quantization = "auto"  # auto: fp8 on CUDA cc ≥ 8.9, int8 on older GPUs, none on CPU
    cpu_offload: bool = False  # model CPU offload, for cards under ~40 GB
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: DType = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    crf: int = DEFAULT_CRF  # H.264 quality in CRF_RANGE, 0 = lossless
    max_area: int | None = None
    boundary_ratio: float | None = None
    flow_shift: float | None = None  # fixed shift; None: by resolution tier from the registry
    max_sequence_length: int | None = None
    vae_tiling: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a hub id, alias or local folder, got {self.model!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {self.quantization!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        dev = self.device
        if not isinstance(dev, str) or not (dev in ("auto", "cpu", "cuda") or _is_cuda_index(dev)):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {dev!r}")
        lo, hi = CRF_RANGE
        if not isinstance(self.crf, int) or isinstance(self.crf, bool) or not lo <= self.crf <= hi:
            raise ConfigError(f"crf must be an integer in {lo}–{hi}, got {self.crf!r}")
        if self.max_area is not None and (not isinstance(self.max_area, int) or self.max_area < MIN_MAX_AREA):
            raise ConfigError(f"max_area must be an integer ≥ {MIN_MAX_AREA} (16×16), got {self.max_area!r}")
        if self.boundary_ratio is not None and not 0.0 < self.boundary_ratio < 1.0:
            raise ConfigError(f"boundary_ratio must be in (0, 1), got {self.boundary_ratio!r}")
        if self.flow_shift is not None and not 0.0 < self.flow_shift <= 50.0:
            raise ConfigError(f"flow_shift must be in (0, 50], got {self.flow_shift!r}")
        if self.max_sequence_length is not None and not 1 <= self.max_sequence_length <= 512:
            raise ConfigError(f"max_sequence_length must be in 1–512, got {self.max_sequence_length!r}")
        if self.defaults_from is not None:
            self.spec  # raises ConfigError for an unknown registry id
        if not all(isinstance(x, LoraSpec) for x in self.loras):
            raise ConfigError("loras must be LoraSpec values (see parse_loras for the text form)")
        object.__setattr__(self, "loras", tuple(self.loras))

    # --- derived values -------------------------------------------------------------------------

    @property
    def spec(self) -> ModelSpec | None:
        """The registry entry of `defaults_from` or `model`; None for a folder/id outside the registry."""
        if self.defaults_from is not None:
            spec = model_spec(self.defaults_from)
            if spec is None:
                raise ConfigError(
                    f"defaults_from must name a registry model ({', '.join(MODELS)}), got {self.defaults_from!r}"
                )
            return spec
        return model_spec(self.model)

    @property
    def model_id(self) -> str:
        """`model` with aliases resolved to the hub id (a local folder stays its path)."""
        spec = model_spec(self.model)
        return spec.model_id if spec else self.model

    @property
    def transformer_id(self) -> str | None:
        return self.transformer if self.transformer is not None else (self.spec.transformer_override if self.spec else None)

    def effective_loras(self) -> tuple[LoraSpec, ...]:
        """Lightning (when on and the model has it) then the user's LoRAs, in load order."""
        spec = self.spec
        lightning = spec.lightning_loras if (self.lightning and spec is not None) else ()
        if self.lightning and spec is None:
            log.info("model %s is not in the registry: no Lightning LoRA is added", self.model)
        return tuple(lightning) + self.loras

    def effective_max_area(self) -> int:
        if self.max_area is not None:
            return self.max_area
        return self.spec.max_area if self.spec else AREA_480P

    def replace(self, **changes: Any) -> GenerationConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loras"] = [lora.to_dict() for lora in self.loras]
        return d

    # --- environment ----------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> GenerationConfig:
        """Read ENV_VARS (unset or empty = default), then apply `overrides` (e.g. CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (fieldname, parse) in ENV_VARS.items():
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[fieldname] = parse(raw.strip())
            except ConfigError as e:
                raise ConfigError(f"{name}: {e}") from None
            except ValueError as e:
                raise ConfigError(f"{name}={raw!r} is not valid: {e}") from None
        from_env = {fieldname: name for name, (fieldname, _) in ENV_VARS.items() if fieldname in values}
        values.update(overrides)
        try:
            return cls(**values)
        except ConfigError as e:
            fieldname = str(e).split(" ", 1)[0]
            if fieldname in from_env and fieldname not in overrides:
                raise ConfigError(f"{from_env[fieldname]}: {e}") from None
            raise


def _is_cuda_index(dev: str) -> bool:
    head, _, idx = dev.partition(":")
    return head == "cuda" and idx.isdigit()


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


def _optional_str(text: str) -> str | None:
    return None if text.lower() in ("none", "off") else text


def parse_loras(text: str) -> tuple[LoraSpec, ...]:
    """`expert:scale:source[::weight_name]` items separated by `;`.

    e.g. `high_noise:3.0:Kijai/WanVideo_comfy::Lightx2v/x.safetensors;low_noise:1.0:/loras/mine.safetensors`.
    """
    specs = []
    for item in (p.strip() for p in text.split(";")):
        if not item:
            continue
        parts = item.split(":", 2)
        if len(parts) != 3:
            raise ConfigError(f"LoRA {item!r} must be expert:scale:source[::weight_name]")
        expert, scale, rest = parts
        source, _, weight_name = rest.partition("::")
        try:
            value = float(scale)
        except ValueError:
            raise ConfigError(f"LoRA {item!r}: scale {scale!r} is not a number") from None
        specs.append(LoraSpec(source.strip(), weight_name.strip() or None, value, expert.strip()))  # type: ignore[arg-type]
    return tuple(specs)


# The one table of environment variables: name -> (GenerationConfig field, parser).
ENV_VARS: dict[str, tuple[str, Any]] = {
    "VIVIDFLOW_WAN_MODEL": ("model", str),
    "VIVIDFLOW_WAN_DEFAULTS_FROM": ("defaults_from", str),
    "VIVIDFLOW_WAN_TRANSFORMER": ("transformer", _optional_str),
    "VIVIDFLOW_WAN_LIGHTNING": ("lightning", parse_bool),
    "VIVIDFLOW_WAN_LORAS": ("loras", parse_loras),
    "VIVIDFLOW_WAN_QUANT": ("quantization", str.lower),
    "VIVIDFLOW_WAN_CPU_OFFLOAD": ("cpu_offload", parse_bool),
    "VIVIDFLOW_WAN_DEVICE": ("device", str.lower),
    "VIVIDFLOW_WAN_DTYPE": ("dtype", str.lower),
    "VIVIDFLOW_CRF": ("crf", int),
    "VIVIDFLOW_WAN_MAX_AREA": ("max_area", int),
    "VIVIDFLOW_WAN_BOUNDARY": ("boundary_ratio", float),
    "VIVIDFLOW_WAN_FLOW_SHIFT": ("flow_shift", float),
    "VIVIDFLOW_WAN_VAE_TILING": ("vae_tiling", parse_bool),
}
