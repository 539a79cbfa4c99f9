"""Which video model, loaded how: `GenerationConfig`, the frozen load-time configuration that the UI, the CLI
and the job runner share: the `wan` section of the settings (`vividflow.sections.WanSettings`, which reads and
checks every value) plus what the model registry (`generation.specs`) derives from it: the model's spec, the
active recipe (Lightning or base), the Lightning LoRAs, the max area, the flow shift and the boundary.

Light on purpose: no torch import here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import model_validator

from generation.specs import MODELS, ModelSpec, Recipe, default_spec, model_spec
from vividflow.sections import CRF_RANGE, DEFAULT_CRF, DTYPES, MIN_MAX_AREA, QUANTIZATIONS, DType, Quantization, WanSettings
from vividflow.settings import section_from_env
from vividflow.values import EXPERTS, Expert, LoraSpec, SettingsError, parse_bool, parse_loras

log = logging.getLogger(__name__)

ConfigError = SettingsError  # a configuration value outside what we support (one error class for all settings)
__all__ = ["CRF_RANGE", "DEFAULT_CRF", "DTYPES", "MIN_MAX_AREA", "QUANTIZATIONS", "DType", "Quantization", "Expert",
           "EXPERTS", "LoraSpec", "parse_bool", "parse_loras", "ConfigError", "GenerationConfig"]


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

    @property
    def recipe(self) -> Recipe | None:
        """Lightning when it is on and the model has it, else the model's base recipe; None outside the registry
        (a local folder without `defaults_from`: the plan's values as written, the folder's own scheduler)."""
        spec = self.spec
        return spec.recipe(self.lightning) if spec is not None else None

    def effective_loras(self) -> tuple[LoraSpec, ...]:
        """The recipe's Lightning LoRAs (when that recipe is active) then the user's LoRAs, in load order."""
        spec, recipe = self.spec, self.recipe
        if self.lightning and spec is None:
            log.info("model %s is not in the registry: no Lightning LoRA is added", self.model)
        elif self.lightning and recipe is not None and recipe.name != "lightning":
            log.info("model %s has no Lightning recipe: its base recipe runs", spec.model_id)
        lightning = spec.lightning_loras if (recipe is not None and recipe.name == "lightning") else ()
        return tuple(LoraSpec(r.repo, r.file, scale=r.scale, expert=r.expert) for r in lightning) + self.loras

    def effective_max_area(self) -> int:
        if self.max_area is not None:
            return self.max_area
        return (self.spec or default_spec()).max_area

    @property
    def size_multiple(self) -> int:
        """Output sides are multiples of this (the spec's; the default model's outside the registry until loaded)."""
        return (self.spec or default_spec()).size_multiple

    def effective_boundary_ratio(self) -> float | None:
        """The configured boundary, else the model's; None outside the registry (the folder's own)."""
        if self.boundary_ratio is not None:
            return self.boundary_ratio
        return self.spec.boundary_ratio if self.spec else None

    def effective_flow_shift(self) -> float | None:
        """VIVIDFLOW_WAN_FLOW_SHIFT, else the active recipe's; None outside the registry (the scheduler's own)."""
        if self.flow_shift is not None:
            return self.flow_shift
        recipe = self.recipe
        return recipe.flow_shift if recipe is not None else None
