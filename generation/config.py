"""Which video model, with which defaults, loaded how: the model registry and `GenerationConfig`.

The registry (`MODELS`) is the one table of per-model defaults (Wan2.2's `wan/configs/` idea, typed):
boundary ratio, flow shift per resolution tier, guidance pair, steps, fps, max area and the Lightning
LoRA recipe. `GenerationConfig` is the frozen load-time configuration that the UI, the CLI and the job
runner share: the `wan` section of the settings (`vividflow.sections.WanSettings`, which reads and checks
every value) plus what the registry derives from it.

Light on purpose: no torch import here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import model_validator

from vividflow.sections import CRF_RANGE, DEFAULT_CRF, DTYPES, MIN_MAX_AREA, QUANTIZATIONS, DType, Quantization, WanSettings
from vividflow.settings import section_from_env
from vividflow.values import EXPERTS, Expert, LoraSpec, SettingsError, parse_bool, parse_loras

log = logging.getLogger(__name__)

ConfigError = SettingsError  # a configuration value outside what we support (one error class for all settings)
__all__ = ["CRF_RANGE", "DEFAULT_CRF", "DTYPES", "MIN_MAX_AREA", "QUANTIZATIONS", "DType", "Quantization", "Expert",
           "EXPERTS", "LoraSpec", "parse_bool", "parse_loras", "ConfigError", "GenerationConfig", "ModelSpec",
           "MODELS", "model_spec", "DEFAULT_MODEL_ID", "BF16_TRANSFORMER_ID", "EXPERT_COMPONENT", "AREA_480P",
           "AREA_720P", "LIGHTX2V_REPO", "LIGHTX2V_FILE", "LIGHTNING_LORAS", "ALIASES"]

# The pipeline component that holds each expert (Wan2.2 A14B: `transformer` runs t ≥ boundary).
EXPERT_COMPONENT: dict[str, str] = {"high_noise": "transformer", "low_noise": "transformer_2"}

DEFAULT_MODEL_ID = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
# Same weights as the default model's experts, stored in bf16 (half the download of the fp32 shards).
BF16_TRANSFORMER_ID = "cbensimon/Wan2.2-I2V-A14B-bf16-Diffusers"

AREA_480P = 832 * 480  # 399,360
AREA_720P = 1280 * 720  # 921,600


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


class GenerationConfig(WanSettings):
    """How to load and run the Wan backend: one frozen value shared by the UI, the CLI and the worker.

    The fields and their checks are the settings' `wan` section; `None` means "the registry's value" (or, for a
    local folder outside the registry, the folder's own).
    """

    @model_validator(mode="after")
    def _known_registry_entry(self) -> GenerationConfig:
        if self.defaults_from is not None:
            self.spec  # raises for an unknown registry id
        return self

    @classmethod
    def from_settings(cls, wan: WanSettings) -> GenerationConfig:
        return wan if isinstance(wan, cls) else cls(**wan.values())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> GenerationConfig:
        """The environment's VIVIDFLOW_WAN_* settings (no file), then `overrides` (e.g. CLI flags)."""
        return section_from_env(cls, env, **overrides)

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
