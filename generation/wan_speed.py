"""The Wan backend's speed switches (`wan` settings), each decided in one place, logged and recorded.

At load (`apply_at_load`, after the weights are placed):
- `attention`: diffusers' attention backend on both experts; `auto` picks the best installed kernel for the
  device (FlashAttention 3 on Hopper, FlashAttention 2, SageAttention, else torch's SDPA, "native"); a backend
  asked for by name that cannot run here is a ConfigError naming what is missing.
- `compile`: regional compilation (`compile_repeated_blocks`) of both experts with static shapes, so each
  resolution compiles once (torch's recompile limit, 8 shapes per block, then falls back to eager). Compiled
  with `fullgraph=True` unless a step cache may run (its hooks break the graph).
Per call (`for_call`, once the frame size is known):
- `vae_tiling`: `auto` tiles only under CPU offload or for a 720p-class frame (tiling costs ~1.7× VAE work);
- `step_cache`: `generation.step_cache` (first-block or MagCache, for many-step recipes only).
The VAE dtype (`vae_dtype`) is a load option of `generation.wan_load`. torch and diffusers load lazily.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generation import step_cache
from generation.config import ConfigError, GenerationConfig
from generation.wan_memory import HD_AREA, needs_vae_tiling

if TYPE_CHECKING:
    from generation.specs import Recipe

log = logging.getLogger(__name__)

AUTO_ATTENTION = (("_flash_3", "flash_attn_interface"), ("flash", "flash_attn"), ("sage", "sageattention"))  # best first
_LEAST_CAPABILITY = {  # CUDA-only backends: the least compute capability each runs on
    "_native_cudnn": (8, 0), "_native_flash": (8, 0), "_native_efficient": (5, 0), "xformers": (5, 0),
    "flash": (8, 0), "flash_varlen": (8, 0), "sage": (8, 0), "sage_varlen": (8, 0),
    "_flash_3": (9, 0), "_flash_varlen_3": (9, 0),  # FlashAttention 3: Hopper
}
COMPILE_BACKEND = "inductor"


@dataclass(frozen=True)
class Choice:
    """A decided switch: its value and why (logged, and stored with the generation)."""

    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason}


def experts(pipe: Any) -> list[Any]:
    """The pipeline's transformer experts (one for TI2V-5B, two for the A14B models)."""
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def recipe_of(cfg: GenerationConfig) -> Recipe | None:
    """The active recipe (generation.specs) of `cfg`'s model and Lightning switch; None outside the registry."""
    from generation.specs import model_spec

    spec = model_spec(cfg.defaults_from or cfg.model)
    return spec.recipe(cfg.lightning) if spec is not None else None


# --- attention --------------------------------------------------------------------------------------------------


def _capability(device: str) -> tuple[int, int] | None:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def _unusable(name: str, device: str) -> str | None:
    """Why diffusers' backend `name` cannot run on `device`, or None when it can."""
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    least = _LEAST_CAPABILITY.get(name)
    cap = _capability(device)
    if least is not None and cap is None:
        return f"it needs a CUDA GPU and this device is {device}"
    if least is not None and cap is not None and cap < least:
        return f"it needs CUDA compute capability ≥ {least[0]}.{least[1]}, this GPU has {cap[0]}.{cap[1]}"
    try:
        _check_attention_backend_requirements(AttentionBackendName(name))
    except RuntimeError as e:
        return str(e).rstrip(".")
    return None


def select_attention(requested: str, device: str) -> Choice:
    """The attention backend for `device`: `requested` checked, or auto's best installed one."""
    if requested != "auto":
        why = _unusable(requested, device)
        if why is not None:
            raise ConfigError(
                f"attention={requested!r} is not usable here ({why}): use attention='auto' or 'native'", field="attention")
        return Choice(requested, f"requested {requested}")
    cap = _capability(device)
    if cap is None:
        return Choice("native", f"auto: torch SDPA on {device}")
    for name, module in AUTO_ATTENTION:
        if importlib.util.find_spec(module) is not None and _unusable(name, device) is None:
            return Choice(name, f"auto: {module} is installed, compute capability {cap[0]}.{cap[1]}")
    return Choice("native", f"auto: no flash-attn / FA3 / sageattention installed; torch SDPA (capability "
                            f"{cap[0]}.{cap[1]})")


def apply_attention(pipe: Any, choice: Choice) -> None:
    for model in experts(pipe):
        model.set_attention_backend(choice.value)


# --- compilation ------------------------------------------------------------------------------------------------


def compile_experts(pipe: Any, *, fullgraph: bool = True, backend: str = COMPILE_BACKEND) -> None:
    """Regional `torch.compile` of each expert's repeated blocks; static shapes: one compile per resolution."""
    for model in experts(pipe):
        model.compile_repeated_blocks(fullgraph=fullgraph, dynamic=False, backend=backend)


def apply_at_load(pipe: Any, cfg: GenerationConfig, attention: Choice) -> dict[str, Any]:
    """Attention backend and compilation on a placed pipeline; returns the load-time speed facts to record."""
    apply_attention(pipe, attention)
    log.info("wan: attention %s — %s", attention.value, attention.reason)
    compiled = Choice(False, "off")
    if cfg.compile:
        recipe = recipe_of(cfg)
        may_cache = cfg.step_cache in ("first_block", "mag") or (
            cfg.step_cache == "auto" and recipe is not None and recipe.step_cache != "none")
        compile_experts(pipe, fullgraph=not may_cache)
        compiled = Choice(True, "regional, static shapes, " + (
            "fullgraph=False: the step cache's hooks break the graph" if may_cache else "fullgraph"))
        log.info("wan: compile — %s", compiled.reason)
    return {"attention": attention.to_dict(), "compile": compiled.to_dict()}


# --- per call ---------------------------------------------------------------------------------------------------


def vae_tiling_for(mode: str, *, offload: bool, width: int, height: int) -> Choice:
    """Tile the VAE ("on"/"off") for a `width`×`height` clip: `mode` "on"/"off" as asked; "auto" tiles only
    under CPU offload or from the 720p-class area up."""
    if mode in ("on", "off"):
        return Choice(mode, f"requested {mode}")
    if offload:
        return Choice("on", "auto: CPU offload")
    if needs_vae_tiling("none", width * height):
        return Choice("on", f"auto: {width}×{height} is 720p class (≥ {HD_AREA} px)")
    return Choice("off", f"auto: {width}×{height} decodes whole (< {HD_AREA} px)")


def set_vae_tiling(vae: Any, on: bool) -> None:
    if on and not vae.use_tiling:
        vae.enable_tiling()
    elif not on and vae.use_tiling:
        vae.disable_tiling()


@dataclass(frozen=True)
class CallSpeed:
    """The per-call switches: VAE tiling and the step cache."""

    vae_tiling: Choice
    step_cache: step_cache.StepCacheChoice

    def to_dict(self) -> dict[str, Any]:
        return {"vae_tiling": self.vae_tiling.to_dict(), "step_cache": self.step_cache.to_dict()}


def for_call(cfg: GenerationConfig, steps: int, width: int, height: int, *, with_image: bool = True,
             offload: bool = False) -> CallSpeed:
    """Decide (and log) the per-call switches for a `steps`-step `width`×`height` render (`offload`: the
    pipeline was placed with CPU or group offload at load)."""
    from generation.specs import model_spec

    tiling = vae_tiling_for(cfg.vae_tiling, offload=offload, width=width, height=height)
    recipe = recipe_of(cfg)
    spec = model_spec(cfg.defaults_from or cfg.model)
    cache = step_cache.choose(
        cfg.step_cache, recipe.step_cache if recipe else None, steps,
        model_id=spec.model_id if spec else None, with_image=with_image,
    )
    log.info("wan: VAE tiling %s — %s; step cache %s — %s", tiling.value, tiling.reason, cache.mode, cache.reason)
    return CallSpeed(tiling, cache)
