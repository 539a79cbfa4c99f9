"""Loading a Wan2.2 pipeline (I2V-A14B, TI2V-5B, T2V-A14B): device, dtype, quantization, weights, LoRA, memory —
once per process.

    loaded = load_pipeline(GenerationConfig.from_env())        # minutes on a GPU, once per process

Every load-time decision is made here and recorded in `LoadedPipeline.describe()`: the memory plan
(`generation.wan_memory`: precision, offload, VAE tiling from the free GPU memory), LoRA fused and quantization
(`generation.wan_quant`) applied at load time, never inside a call (`generation.wan` does the calling), and the
fused + quantized experts saved to and loaded from the weight cache (`generation.weight_cache`).
torch, diffusers, transformers, torchao and peft are imported inside functions.

Before the video model loads or runs, the callables given to `register_before_load` are called
(the LLM planner registers one that frees its model); they must be cheap when there is nothing to free.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from typing import Any

from generation import wan_speed, weight_cache
from generation.backend import BackendUnavailable
from generation.config import EXPERTS, GenerationConfig, LoraSpec
from generation.embedding_cache import EmbeddingCache
from generation.specs import EXPERT_COMPONENT, ModelSpec
# LoraError: load_pipeline raises it, and callers catch it as `wan_load.LoraError`
from generation.wan_lora import LoraError, apply_loras, looks_like_path, lora_location  # noqa: F401
from generation.wan_memory import MemoryPlan, choose_offload, place_pipeline, plan_for_config
from generation.wan_quant import (  # noqa: F401 (select_quantization: tests reach it here)
    QuantizationChoice,
    parameter_bytes,
    quantize_expert,
    quantize_text_encoder,
    restore_process_settings,
    select_quantization,
    torchao_config,
)
from vividflow.settings import offline

log = logging.getLogger(__name__)

VERSIONED_LIBRARIES = ("torch", "diffusers", "transformers", "torchao", "peft", "accelerate", "imageio-ffmpeg")
_OFFLINE_HINT = (
    "download it on a connected machine (`hf download {id}`, same HF_HOME) or copy the folder here and set "
    "VIVIDFLOW_WAN_MODEL to its path"
)


class ModelNotFound(BackendUnavailable):
    """A model id or folder that cannot be loaded here; the message names it and says how to fix it."""


# --- hooks run before the video model loads or runs ----------------------------------------------

_BEFORE_LOAD: list[Callable[[], Any]] = []
_BEFORE_LOAD_LOCK = threading.Lock()


def register_before_load(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Call `fn()` before the video model loads and before every generation (usable as a decorator).

    Meant for freeing other models' memory (the LLM planner). `fn` must be idempotent and cheap when
    there is nothing to free; an exception in it propagates (a failed unload is a bug to see).
    Registering the same callable twice keeps one entry.
    """
    with _BEFORE_LOAD_LOCK:
        if fn not in _BEFORE_LOAD:
            _BEFORE_LOAD.append(fn)
    return fn


def unregister_before_load(fn: Callable[[], Any]) -> None:
    with _BEFORE_LOAD_LOCK:
        if fn in _BEFORE_LOAD:
            _BEFORE_LOAD.remove(fn)


def run_before_load_hooks() -> None:
    with _BEFORE_LOAD_LOCK:
        hooks = list(_BEFORE_LOAD)
    for fn in hooks:
        log.debug("before-load hook %s", getattr(fn, "__qualname__", fn))
        fn()


# --- device, dtype, versions ---------------------------------------------------------------------


def resolve_device(device: str = "auto") -> str:
    """"auto" → "cuda" when CUDA is available, else "cpu"; an explicit CUDA device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(
            f"device={device!r} but CUDA is not available here (torch {torch.__version__}); "
            "use VIVIDFLOW_WAN_DEVICE=cpu or install a CUDA build of torch"
        )
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """"auto" → bfloat16 on CUDA, float32 on CPU (bf16 matmuls are slow on most CPUs)."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device.startswith("cuda") else "float32"


@functools.lru_cache(maxsize=1)
def _library_versions() -> tuple[tuple[str, str | None], ...]:
    out: dict[str, str | None] = {}
    for name in VERSIONED_LIBRARIES:
        try:
            out[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            out[name] = None
    return tuple(out.items())


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that decide the frames (read once per process)."""
    return dict(_library_versions())


def free_memory(full: bool = False) -> None:
    """Between stages: collect young garbage and return cached CUDA blocks; `full` adds a full gc pass.

    A full `gc.collect()` scans every object (~0.5 M with torch + diffusers loaded: ~0.27 s here), so
    stage boundaries collect generations 0–1 only (what a call just made); load and unload do full passes.
    """
    gc.collect(2 if full else 1)
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- loading ---------------------------------------------------------------------------------------


@dataclass
class LoadedPipeline:
    """A loaded Wan pipeline and every load-time decision, for the generation record.

    `pipe` is the class the spec names (the folder's own outside the registry); `pipeline_for` gives the
    image-to-video or text-to-video pipeline over the same components (TI2V-5B runs both).
    """

    pipe: Any
    cfg: GenerationConfig
    spec: ModelSpec | None
    model_id: str
    transformer_id: str | None
    device: str
    dtype: str
    vae_dtype: str
    quantization: QuantizationChoice
    loras: tuple[LoraSpec, ...]
    boundary_ratio: float | None
    size_multiple: int = 16  # output sides are multiples of this (the spec's; else the VAE scale × patch size)
    parameter_bytes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _siblings: dict[str, Any] = field(default_factory=dict, repr=False)
    speed: dict[str, Any] = field(default_factory=dict)  # load-time speed switches (generation.wan_speed)
    offload: str = "none"  # none | model | group (generation.wan_memory)
    memory_plan: MemoryPlan | None = None
    weight_cache: dict[str, Any] = field(default_factory=dict)  # status (hit, miss, off, …) and key
    embedding_cache: EmbeddingCache = field(default_factory=EmbeddingCache)  # reuse between renders

    @property
    def takes_image(self) -> bool:
        """It can animate a picture: an I2V pipeline, or one that expands timesteps (TI2V-5B)."""
        return type(self.pipe).__name__ == "WanImageToVideoPipeline" or bool(self.pipe.config.get("expand_timesteps"))

    @property
    def takes_text_only(self) -> bool:
        """It can start from words alone: a text-to-video pipeline, or TI2V-5B."""
        return type(self.pipe).__name__ == "WanPipeline" or bool(self.pipe.config.get("expand_timesteps"))

    def pipeline_for(self, image: bool) -> Any:
        """The pipeline for a call with or without a picture, sharing `pipe`'s components (built once, no copy)."""
        from diffusers import WanImageToVideoPipeline, WanPipeline

        cls = WanImageToVideoPipeline if image else WanPipeline
        if isinstance(self.pipe, cls) or not (self.takes_image if image else self.takes_text_only):
            return self.pipe
        if cls.__name__ not in self._siblings:
            import inspect

            accepted = inspect.signature(cls.__init__).parameters
            kwargs = {k: v for k, v in self.pipe.components.items() if k in accepted}
            kwargs.update({k: self.pipe.config.get(k) for k in ("boundary_ratio", "expand_timesteps") if k in accepted})
            sibling = cls(**kwargs)  # not `from_pipe`: that casts every component to float32
            sibling.set_progress_bar_config(disable=True)
            self._siblings[cls.__name__] = sibling
        return self._siblings[cls.__name__]

    def describe(self) -> dict[str, Any]:
        """Load-time facts recorded with every generation."""
        return {
            "model_id": self.model_id,
            "transformer_id": self.transformer_id,
            "registry_id": self.spec.model_id if self.spec else None,
            "loras": [{**lora.to_dict(), "fused": True} for lora in self.loras],
            "quantization": self.quantization.to_dict(),
            "device": self.device,
            "dtype": self.dtype,
            "vae_dtype": self.vae_dtype,
            "offload": self.offload,
            "vae_tiling": self.cfg.vae_tiling,  # the setting; each call's choice is in "speed"
            "memory_plan": self.memory_plan.to_dict() if self.memory_plan else None,
            "weight_cache": dict(self.weight_cache),
            "parameter_bytes": dict(self.parameter_bytes),
            "speed": dict(self.speed),
        }


def _check_model_source(source: str, what: str, required_file: str) -> str:
    """A local folder (checked) or a hub repo id (checked against the cache when offline)."""
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, required_file)):
            raise ModelNotFound(
                f"{what} folder {source!r} has no {required_file}: it is not a Diffusers "
                f"Wan pipeline folder (save one with pipe.save_pretrained, or `hf download` the repo)"
            )
        return path
    if looks_like_path(source) or os.path.exists(path):
        raise ModelNotFound(f"{what} {source!r} not found: no such folder")
    if offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, required_file)
        if not isinstance(cached, str):
            raise ModelNotFound(
                f"{what} {source!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading "
                f"it: " + _OFFLINE_HINT.format(id=source) + ", or unset HF_HUB_OFFLINE to download"
            )
    return source


def load_pipeline(cfg: GenerationConfig | None = None) -> LoadedPipeline:
    """Build the Wan2.2 pipeline for `cfg` (default: `GenerationConfig.from_env()`), ready to generate."""
    import diffusers
    import torch
    from diffusers import WanTransformer3DModel

    cfg = cfg or GenerationConfig.from_env()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # 0. Free other models first (the LLM planner)
    run_before_load_hooks()

    # 1. Resolve device, dtype, the memory plan and quantization (decided here, once, from the device)
    spec = cfg.spec
    device = resolve_device(cfg.device)
    dtype_name = resolve_dtype(cfg.dtype, device)
    vae_dtype_name = cfg.vae_dtype or (spec.vae_dtype if spec else "float32")
    plan = plan_for_config(cfg, device)  # too small for this model: a clear message naming the tier that fits
    quant = select_quantization(cfg.quantization, device, plan.precision if plan else None)
    log.info("wan: quantization %s — %s", quant.mode, quant.reason)
    offload = choose_offload(cfg.cpu_offload, device, plan)
    attention = wan_speed.select_attention(cfg.attention, device)  # an unusable backend fails before the weights
    loras = cfg.effective_loras()
    lora_locations = [lora_location(lora) for lora in loras]  # a missing LoRA fails now, not after minutes
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 for the fp32 parts (VAE)
        torch.backends.cudnn.allow_tf32 = True

    on_gpu = device.startswith("cuda") and offload == "none"

    # 2. The experts fused and quantized by an earlier load, from the weight cache
    source = _check_model_source(cfg.model_id, "model", "model_index.json")
    transformer_id = cfg.transformer_id
    cache = _weight_cache_key(cfg, source, transformer_id, loras, lora_locations, quant, dtype_name, device)
    t = time.perf_counter()
    prepared = cache[0].load(cache[1], device if on_gpu else "cpu") if not isinstance(cache, str) else None
    if prepared:
        restore_process_settings(quant)
    cache_status = ({"status": cache} if isinstance(cache, str)
                    else {"status": "hit" if prepared else "miss", "key": cache[1]})
    timings["cache_load"] = time.perf_counter() - t

    # 3. Load the other components (weights stay on the CPU until each is ready)
    dtype = getattr(torch, dtype_name)
    kwargs: dict[str, Any] = {"dtype": {"default": dtype, "vae": getattr(torch, vae_dtype_name)}, **(prepared or {})}
    boundary = cfg.effective_boundary_ratio()
    if boundary is not None:
        kwargs["boundary_ratio"] = boundary
    pipeline_class = spec.pipeline if spec else _folder_pipeline_class(source)
    components = [EXPERT_COMPONENT[e] for e in EXPERTS][: spec.experts if spec else 2]
    t = time.perf_counter()
    try:
        if transformer_id is not None and prepared is None:
            tsource = _check_model_source(transformer_id, "transformer override", "transformer/config.json")
            for sub in components:
                kwargs[sub] = WanTransformer3DModel.from_pretrained(tsource, subfolder=sub, dtype=dtype)
        pipe = getattr(diffusers, pipeline_class).from_pretrained(source, **kwargs)
    except OSError as e:
        raise ModelNotFound(
            f"cannot load model {cfg.model_id!r}"
            + (f" with transformer {transformer_id!r}" if transformer_id else "")
            + f": {e}. Fix: " + _OFFLINE_HINT.format(id=cfg.model_id)
        ) from e
    if spec is not None and spec.experts == 2 and (pipe.transformer_2 is None or pipe.config.boundary_ratio is None):
        raise ModelNotFound(
            f"model {cfg.model_id!r} has no second expert (transformer_2) or no boundary_ratio: "
            f"it is not a {spec.model_id.split('/')[-1]} folder (a two-expert Wan2.2 model)"
        )
    if pipe.transformer is None:
        raise ModelNotFound(f"model {cfg.model_id!r} has no transformer: it is not a Wan2.2 pipeline folder")
    pipe.set_progress_bar_config(disable=True)  # progress goes out as events
    timings["load_weights"] = time.perf_counter() - t

    model = None
    try:
        # 4. LoRA per expert, fused at full precision, then quantized (the reverse order hits a PEFT bug);
        #    cached experts come fused and quantized
        sizes: dict[str, int] = {}
        t_lora = t_quant = 0.0
        for expert in EXPERTS:
            component = EXPERT_COMPONENT[expert]
            model = getattr(pipe, component)
            if model is None:  # a one-expert model (TI2V-5B): a LoRA for the missing expert fails in apply_loras
                apply_loras(pipe, [lora for lora in loras if lora.expert == expert], model_name=cfg.model_id)
                continue
            if on_gpu:
                model.to(device)  # fusing on the GPU takes seconds instead of minutes
            if prepared is None:
                t = time.perf_counter()
                apply_loras(pipe, [lora for lora in loras if lora.expert == expert], fuse=True,
                            model_name=cfg.model_id)
                t_lora += time.perf_counter() - t
                t = time.perf_counter()
                quantize_expert(model, quant, device)  # the blocks' Linear layers only
                t_quant += time.perf_counter() - t
            if offload != "none":
                model.to("cpu")  # quantize_(device=...) left the quantized layers on the GPU
            if not device.startswith("cuda"):
                weight_cache.own_allocations(model)  # the same frames from the model files or the cache
            sizes[component] = parameter_bytes(model)
            if prepared is None:
                free_memory(full=True)  # the weights fusing and quantizing replaced
        if not isinstance(cache, str) and prepared is None:
            t = time.perf_counter()
            experts = {c: getattr(pipe, c) for c in (EXPERT_COMPONENT[e] for e in EXPERTS) if getattr(pipe, c, None)}
            cache_status["saved"] = cache[0].save(cache[1], cache[2], experts) is not None
            timings["cache_save"] = time.perf_counter() - t
        t = time.perf_counter()
        quantize_text_encoder(pipe.text_encoder, quant, device)
        sizes["text_encoder"] = parameter_bytes(pipe.text_encoder)
        sizes["vae"] = parameter_bytes(pipe.vae)
        t_quant += time.perf_counter() - t
        timings["lora"] = t_lora
        timings["quantize"] = t_quant

        # 5. Memory: place the pipeline (resident or offloaded); VAE tiling is decided per call
        t = time.perf_counter()
        place_pipeline(pipe, offload, device)
        free_memory(full=True)
        timings["place"] = time.perf_counter() - t

        # 6. Speed: attention backend, regional compilation (VAE tiling and step caching are per call)
        speed = wan_speed.apply_at_load(pipe, cfg, attention)
    except BaseException as e:
        # A half-built pipeline must not outlive the error: the traceback keeps every frame's locals
        # (tens of GB on a GPU) alive until the caller drops the exception.
        _drop_frames(e)
        pipe = model = prepared = None
        kwargs.clear()
        free_memory(full=True)
        raise
    timings["total"] = time.perf_counter() - t_start
    loaded = LoadedPipeline(
        pipe=pipe, cfg=cfg, spec=spec, model_id=cfg.model_id, transformer_id=transformer_id, device=device,
        dtype=dtype_name, vae_dtype=vae_dtype_name, quantization=quant, loras=tuple(loras),
        boundary_ratio=pipe.config.boundary_ratio,
        size_multiple=spec.size_multiple if spec else pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1],
        parameter_bytes=sizes, timings=timings, speed=speed, offload=offload, memory_plan=plan,
        weight_cache=cache_status,
    )
    log.info(
        "wan: loaded %s on %s (%s, %s, offload %s, weight cache %s) in %.1f s; LoRAs: %s; parameter bytes: %s",
        cfg.model_id, device, dtype_name, quant.mode, offload, cache_status["status"], timings["total"],
        ", ".join(f"{lo.label}@{lo.scale:g}→{lo.expert}" for lo in loras) or "none", sizes,
    )
    return loaded


def _folder_pipeline_class(source: str) -> str:
    """The Wan pipeline class a folder outside the registry saved itself as (WanImageToVideoPipeline otherwise)."""
    import json

    try:
        with open(os.path.join(source, "model_index.json"), encoding="utf-8") as f:
            name = json.load(f).get("_class_name")
    except (OSError, ValueError):
        name = None
    return name if name in ("WanImageToVideoPipeline", "WanPipeline") else "WanImageToVideoPipeline"


def _weight_cache_key(
    cfg: GenerationConfig, source: str, transformer_id: str | None, loras: tuple[LoraSpec, ...],
    lora_locations: list[tuple[str, dict[str, Any]]], quant: QuantizationChoice, dtype: str, device: str,
) -> tuple[weight_cache.WeightCache, str, dict[str, Any]] | str:
    """(cache, key, key parts), or why the weight cache is not used: "off" (the setting), "nothing to prepare"
    (no LoRA to fuse, no expert to quantize), "not in the HF cache yet" (written on the next load)."""
    if not cfg.weight_cache:
        return "off"
    if not loras and quant.experts is None:
        return "nothing to prepare"
    parts: dict[str, Any] = {
        "model": weight_cache.source_fingerprint(source, "model_index.json"),
        "transformer": (weight_cache.source_fingerprint(transformer_id, "transformer/config.json")
                        if transformer_id else None),
        "loras": [weight_cache.lora_fingerprint(lo, *where) for lo, where in zip(loras, lora_locations)],
        "quantization": repr(torchao_config(quant.experts)) if quant.experts else None,
        "quantized_layers": "blocks.*.Linear" if quant.experts else None,
        "dtype": dtype,
        "device": device.split(":")[0],
        "versions": {k: v for k, v in library_versions().items() if k in ("torch", "torchao", "diffusers", "peft")},
    }
    if parts["model"] is None or (transformer_id and parts["transformer"] is None) or None in parts["loras"]:
        log.info("wan: weight cache skipped: the model or a LoRA is not in the local HF cache yet")
        return "not in the HF cache yet"
    return weight_cache.WeightCache(weight_cache.cache_root()), weight_cache.cache_key(parts), parts


def _drop_frames(error: BaseException) -> None:
    """Clear the locals of the frames held by `error`, its cause and its context (not the running ones)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        stack += [x for x in (e.__cause__, e.__context__) if x is not None]
