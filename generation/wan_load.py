"""Loading the Wan2.2-I2V-A14B pipeline: device, dtype, quantization, weights, LoRA, memory — once per process.

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

from generation import weight_cache
from generation.backend import BackendUnavailable
from generation.config import EXPERT_COMPONENT, EXPERTS, GenerationConfig, LoraSpec, ModelSpec
from generation.wan_memory import MemoryPlan, choose_offload, choose_vae_tiling, place_pipeline, plan_for_config
from generation.wan_quant import (
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


class LoraError(ValueError):
    """A LoRA that cannot be found or does not fit the model; the message names the file and the expert."""


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


# --- device, dtype, versions --------------------------------------------------------------------


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
    """A loaded `WanImageToVideoPipeline` and every load-time decision, for the generation record."""

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
    offload: str = "none"
    vae_tiling: bool = False
    memory_plan: MemoryPlan | None = None
    weight_cache: dict[str, Any] = field(default_factory=dict)
    parameter_bytes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

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
            "vae_tiling": self.vae_tiling,
            "memory_plan": self.memory_plan.to_dict() if self.memory_plan else None,
            "weight_cache": dict(self.weight_cache),
            "parameter_bytes": dict(self.parameter_bytes),
        }


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", "\\")) or os.path.splitdrive(source)[0] != "" or source.count("/") > 1


def _check_model_source(source: str, what: str, required_file: str) -> str:
    """A local folder (checked) or a hub repo id (checked against the cache when offline)."""
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, required_file)):
            raise ModelNotFound(
                f"{what} folder {source!r} has no {required_file}: it is not a Diffusers "
                f"WanImageToVideoPipeline folder (save one with pipe.save_pretrained, or `hf download` the repo)"
            )
        return path
    if _looks_like_path(source) or os.path.exists(path):
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
    """Build the Wan2.2 I2V pipeline for `cfg` (default: `GenerationConfig.from_env()`), ready to generate."""
    import torch
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel

    cfg = cfg or GenerationConfig.from_env()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # 0. Free other models first (the LLM planner)
    run_before_load_hooks()

    # 1. Resolve device, dtype, the memory plan and quantization (decided here, once, from the device)
    spec = cfg.spec
    device = resolve_device(cfg.device)
    dtype_name = resolve_dtype(cfg.dtype, device)
    vae_dtype_name = spec.vae_dtype if spec else "float32"
    plan = plan_for_config(cfg, device)  # too small for this model: a clear message naming the tier that fits
    quant = select_quantization(cfg.quantization, device, plan.precision if plan else None)
    log.info("wan: quantization %s — %s", quant.mode, quant.reason)
    offload = choose_offload(cfg.cpu_offload, device, plan)
    vae_tiling = choose_vae_tiling(cfg.vae_tiling, offload, cfg.effective_max_area(), plan)
    loras = cfg.effective_loras()
    lora_locations = [_lora_location(lora) for lora in loras]  # a missing LoRA fails now, not after minutes
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
    boundary = cfg.boundary_ratio if cfg.boundary_ratio is not None else (spec.boundary_ratio if spec else None)
    if boundary is not None:
        kwargs["boundary_ratio"] = boundary
    t = time.perf_counter()
    try:
        if transformer_id is not None and prepared is None:
            tsource = _check_model_source(transformer_id, "transformer override", "transformer/config.json")
            for sub in ("transformer", "transformer_2"):
                kwargs[sub] = WanTransformer3DModel.from_pretrained(tsource, subfolder=sub, dtype=dtype)
        pipe = WanImageToVideoPipeline.from_pretrained(source, **kwargs)
    except OSError as e:
        raise ModelNotFound(
            f"cannot load model {cfg.model_id!r}"
            + (f" with transformer {transformer_id!r}" if transformer_id else "")
            + f": {e}. Fix: " + _OFFLINE_HINT.format(id=cfg.model_id)
        ) from e
    if getattr(pipe, "transformer_2", None) is None or pipe.config.boundary_ratio is None:
        raise ModelNotFound(
            f"model {cfg.model_id!r} has no second expert (transformer_2) or no boundary_ratio: "
            "it is not a Wan2.2 two-expert I2V model"
        )
    pipe.set_progress_bar_config(disable=True)  # progress goes out as events
    timings["load_weights"] = time.perf_counter() - t

    model = None
    try:
        # 4. LoRA per expert, fused at full precision, then quantized (the reverse order hits a PEFT bug);
        #    cached experts come fused and quantized
        sizes: dict[str, int] = {}
        t_lora = t_quant = 0.0
        for expert, located in ((e, [lo for lo in loras if lo.expert == e]) for e in EXPERTS):
            component = EXPERT_COMPONENT[expert]
            model = getattr(pipe, component)
            if on_gpu:
                model.to(device)  # fusing on the GPU takes seconds instead of minutes
            if prepared is None:
                t = time.perf_counter()
                apply_loras(pipe, located, fuse=True, model_name=cfg.model_id)
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
            experts = {EXPERT_COMPONENT[e]: getattr(pipe, EXPERT_COMPONENT[e]) for e in EXPERTS}
            cache_status["saved"] = cache[0].save(cache[1], cache[2], experts) is not None
            timings["cache_save"] = time.perf_counter() - t
        t = time.perf_counter()
        quantize_text_encoder(pipe.text_encoder, quant, device)
        sizes["text_encoder"] = parameter_bytes(pipe.text_encoder)
        sizes["vae"] = parameter_bytes(pipe.vae)
        t_quant += time.perf_counter() - t
        timings["lora"] = t_lora
        timings["quantize"] = t_quant

        # 5. Memory: place the pipeline (resident or offloaded), VAE tiling
        t = time.perf_counter()
        place_pipeline(pipe, offload, device)
        if vae_tiling:
            pipe.vae.enable_tiling()  # `pipe.enable_vae_tiling` does not exist on this pipeline
        free_memory(full=True)
        timings["place"] = time.perf_counter() - t
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
        boundary_ratio=pipe.config.boundary_ratio, offload=offload, vae_tiling=vae_tiling, memory_plan=plan,
        weight_cache=cache_status, parameter_bytes=sizes, timings=timings,
    )
    log.info(
        "wan: loaded %s on %s (%s, %s, offload %s, VAE tiling %s, weight cache %s) in %.1f s; LoRAs: %s; "
        "parameter bytes: %s",
        cfg.model_id, device, dtype_name, quant.mode, offload, "on" if vae_tiling else "off", cache_status["status"],
        timings["total"], ", ".join(f"{lo.label}@{lo.scale:g}→{lo.expert}" for lo in loras) or "none", sizes,
    )
    return loaded


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


def _lora_location(lora: LoraSpec) -> tuple[str, dict[str, Any]]:
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
    if _looks_like_path(lora.source):
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
        model = getattr(pipe, component)
        adapter = f"{lora.expert}_{len(getattr(model, 'peft_config', {}) or {})}"
        location, kwargs = _lora_location(lora)
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
