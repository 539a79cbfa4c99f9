"""LoRAs on the Wan experts: find each file (local or hub, offline-aware), load it into its expert, fuse it.

Both key formats load: diffusers/PEFT and lightx2v/ComfyUI. peft and safetensors are imported inside functions.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from generation.config import LoraSpec
from generation.specs import EXPERT_COMPONENT
from vividflow.errors import VividflowError
from vividflow.settings import offline

log = logging.getLogger(__name__)


class LoraError(VividflowError, ValueError):
    """A LoRA that cannot be found or does not fit the model; the message names the file and the expert."""


def looks_like_path(source: str) -> bool:
    """A local path rather than a hub repo id (`owner/name`)."""
    return source.startswith(("/", "./", "../", "~", "\\")) or os.path.splitdrive(source)[0] != "" or source.count("/") > 1


def lora_location(lora: LoraSpec) -> tuple[str, dict[str, Any]]:
    """(path or repo id, load_lora_weights kwargs) for a LoRA; raises LoraError when it cannot be found."""
    path = os.path.expanduser(lora.source)
    if os.path.isfile(path):
        if lora.weight_name:
            raise LoraError(f"LoRA {lora.source!r} is a file: weight_name {lora.weight_name!r} applies to folders/repos")
        return path, {}
    if os.path.isdir(path):
        if lora.weight_name and not os.path.isfile(os.path.join(path, lora.weight_name)):
            raise LoraError(f"LoRA file {lora.weight_name!r} not found in folder {lora.source!r}")
        return path, ({"weight_name": lora.weight_name} if lora.weight_name else {})
    if looks_like_path(lora.source):
        raise LoraError(f"LoRA file {lora.source!r} not found")
    if offline():
        from huggingface_hub import try_to_load_from_cache

        name = lora.weight_name or "pytorch_lora_weights.safetensors"
        if not isinstance(try_to_load_from_cache(lora.source, name), str):
            raise LoraError(
                f"LoRA {lora.label!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1: download it "
                f"(`hf download {lora.source} {name}`), point the LoRA at a local .safetensors file, "
                "or turn Lightning off (VIVIDFLOW_WAN_LIGHTNING=0)"
            )
    return lora.source, ({"weight_name": lora.weight_name} if lora.weight_name else {})


def apply_loras(pipe: Any, loras: list[LoraSpec] | tuple[LoraSpec, ...], *, fuse: bool = True, model_name: str = "") -> None:
    """Load `loras` into their experts at their scales; with `fuse`, fuse them and remove the PEFT layers.

    High-noise LoRAs go into `transformer`, low-noise ones into `transformer_2`
    (`load_into_transformer_2=True`). Both key formats load: diffusers/PEFT and lightx2v/ComfyUI.
    With `fuse=False` the adapters stay active (unfused) — the same output within float tolerance.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors import SafetensorError

    names: dict[str, list[tuple[str, float]]] = {}
    for lora in loras:
        component = EXPERT_COMPONENT[lora.expert]
        model = getattr(pipe, component, None)
        if model is None:
            raise LoraError(
                f"LoRA {lora.label!r} is for the {lora.expert} expert, but {model_name or 'this model'} has no "
                f"{component}: a one-expert model takes high_noise LoRAs only"
            )
        adapter = f"{lora.expert}_{len(getattr(model, 'peft_config', {}) or {})}"
        location, kwargs = lora_location(lora)
        where = f"the {lora.expert} expert ({component})" + (f" of {model_name}" if model_name else "")
        try:
            pipe.load_lora_weights(
                location, adapter_name=adapter, load_into_transformer_2=lora.expert == "low_noise", **kwargs
            )
        except (RuntimeError, ValueError, KeyError, SafetensorError) as e:
            first = " ".join(str(e).strip().splitlines()[:2])[:400]
            raise LoraError(
                f"LoRA {lora.label!r} does not fit {where}: {first}. A LoRA must be trained for this model "
                "family and size (Wan2.1/2.2 14B for Wan2.2-I2V-A14B)"
            ) from e
        hit = sum(
            1 for m in model.modules() if isinstance(m, BaseTunerLayer) and adapter in getattr(m, "lora_A", {})
        )
        if hit == 0:
            raise LoraError(f"LoRA {lora.label!r} matched no layer of {where}")
        names.setdefault(component, []).append((adapter, lora.scale))
        log.info("wan: LoRA %s loaded into %s (%d layers) at scale %g", lora.label, component, hit, lora.scale)
    for component, items in names.items():
        model = getattr(pipe, component)
        model.set_adapters([n for n, _ in items], weights=[s for _, s in items])
        if fuse:
            pipe.fuse_lora(components=[component], adapter_names=[n for n, _ in items])
            model.unload_lora()
            left = sum(1 for m in model.modules() if isinstance(m, BaseTunerLayer))
            if left:
                raise RuntimeError(f"{left} PEFT layers remain in {component} after fusing")
