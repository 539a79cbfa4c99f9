"""Loading a Wan2.2 pipeline (I2V-A14B, TI2V-5B, T2V-A14B): device, dtype, quantization, weights, LoRA, memory —
once per process.

    loaded = load_pipeline(GenerationConfig.from_env())        # minutes on a GPU, once per process

Every load-time decision is made here and recorded in `LoadedPipeline.describe()`: LoRA is fused and
quantization (torchao) applied at load time, never inside a call (`generation.wan` does the calling).
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

from generation import wan_speed
from generation.backend import BackendUnavailable
from generation.config import EXPERTS, ConfigError, GenerationConfig, LoraSpec
from generation.specs import EXPERT_COMPONENT, ModelSpec
# LoraError: load_pipeline raises it, and callers catch it as `wan_load.LoraError`
from generation.wan_lora import LoraError, apply_loras, looks_like_path, lora_location  # noqa: F401
from generation.embedding_cache import EmbeddingCache
from vividflow.settings import offline

log = logging.getLogger(__name__)

FP8_MIN_CAPABILITY = (8, 9)  # Ada / Hopper: FP8 tensor cores
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


# --- device, dtype, quantization -----------------------------------------------------------------


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


@dataclass(frozen=True)
class QuantizationChoice:
    """What load_pipeline quantizes with (torchao config names) and why."""

    mode: str  # "none" | "int8" | "fp8"
    reason: str
    experts: str | None = None
    text_encoder: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.reason, "experts": self.experts, "text_encoder": self.text_encoder}


_INT8 = "Int8WeightOnlyConfig"
_FP8 = "Float8DynamicActivationFloat8WeightConfig"


def select_quantization(requested: str, device: str) -> QuantizationChoice:
    """Pick the quantization for `device` ("auto" | "none" | "int8" | "fp8"); the reason is logged by the caller.

    auto: FP8 dynamic activation+weight on both experts and int8 weight-only on the text encoder on CUDA
    with compute capability ≥ 8.9; int8 weight-only everywhere on older GPUs; none on CPU.
    """
    import torch

    on_cuda = device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise BackendUnavailable(f"device={device!r} but CUDA is not available here")
    cap = tuple(torch.cuda.get_device_capability(device)) if on_cuda else None
    cap_text = f"compute capability {cap[0]}.{cap[1]}" if cap else "CPU"
    fp8_ok = cap is not None and cap >= FP8_MIN_CAPABILITY
    if requested == "auto":
        if fp8_ok:
            return QuantizationChoice(
                "fp8", f"auto: CUDA {cap_text} ≥ 8.9 has FP8 tensor cores: FP8 experts, int8 text encoder", _FP8, _INT8
            )
        if on_cuda:
            return QuantizationChoice("int8", f"auto: CUDA {cap_text} < 8.9 has no FP8: int8 weight-only", _INT8, _INT8)
        return QuantizationChoice(
            "none", "auto: CPU runs unquantized by default (quantization=int8 works on CPU too)"
        )
    if requested == "none":
        return QuantizationChoice("none", f"requested none ({cap_text})")
    if requested == "int8":
        return QuantizationChoice("int8", f"requested int8 weight-only ({cap_text})", _INT8, _INT8)
    if requested == "fp8":
        if not fp8_ok:
            raise ConfigError(
                f"quantization='fp8' needs CUDA compute capability ≥ 8.9 (Ada, Hopper, Blackwell); this device is "
                f"{cap_text}: use quantization='int8' or 'auto'"
            )
        return QuantizationChoice("fp8", f"requested fp8 ({cap_text})", _FP8, _INT8)
    raise ConfigError(f"quantization must be one of auto, none, int8, fp8, got {requested!r}")


def _torchao_config(name: str) -> Any:
    from torchao import quantization as q

    return getattr(q, name)()


def parameter_bytes(module: Any) -> int:
    """Bytes held by a module's parameters and buffers, counting the inner tensors of torchao subclasses."""
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    def size(t: Any) -> int:
        if is_traceable_wrapper_subclass(t):
            names, _ = t.__tensor_flatten__()
            return sum(size(getattr(t, n)) for n in names)
        return t.numel() * t.element_size()

    return sum(size(p) for p in module.parameters()) + sum(size(b) for b in module.buffers())


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
            "cpu_offload": self.cfg.cpu_offload,
            "vae_tiling": self.cfg.vae_tiling,
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

    # 1. Resolve device, dtype and quantization (decided here, once, from the device)
    spec = cfg.spec
    device = resolve_device(cfg.device)
    dtype_name = resolve_dtype(cfg.dtype, device)
    vae_dtype_name = cfg.vae_dtype or (spec.vae_dtype if spec else "float32")
    quant = select_quantization(cfg.quantization, device)
    log.info("wan: quantization %s — %s", quant.mode, quant.reason)
    attention = wan_speed.select_attention(cfg.attention, device)  # an unusable backend fails before the weights
    loras = cfg.effective_loras()
    for lora in loras:
        lora_location(lora)  # a missing LoRA fails now, not after minutes of loading weights
    if cfg.cpu_offload and not device.startswith("cuda"):
        log.info("wan: cpu_offload ignored: the device is already the CPU")
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 for the fp32 parts (VAE)
        torch.backends.cudnn.allow_tf32 = True

    # 2. Load the components (weights stay on the CPU until each is ready)
    source = _check_model_source(cfg.model_id, "model", "model_index.json")
    transformer_id = cfg.transformer_id
    dtype = getattr(torch, dtype_name)
    kwargs: dict[str, Any] = {"dtype": {"default": dtype, "vae": getattr(torch, vae_dtype_name)}}
    boundary = cfg.effective_boundary_ratio()
    if boundary is not None:
        kwargs["boundary_ratio"] = boundary
    pipeline_class = spec.pipeline if spec else _folder_pipeline_class(source)
    components = [EXPERT_COMPONENT[e] for e in EXPERTS][: spec.experts if spec else 2]
    t = time.perf_counter()
    try:
        if transformer_id is not None:
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
        # 3. LoRA per expert, fused at full precision, then quantized (the reverse order hits a PEFT bug)
        on_gpu = device.startswith("cuda") and not cfg.cpu_offload
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
            t = time.perf_counter()
            apply_loras(pipe, [lora for lora in loras if lora.expert == expert], fuse=True, model_name=cfg.model_id)
            t_lora += time.perf_counter() - t
            # 4. Quantize this expert (torchao), then free before the next one
            t = time.perf_counter()
            if quant.experts is not None:
                from torchao.quantization import quantize_

                quantize_(model, _torchao_config(quant.experts), device=device if device.startswith("cuda") else None)
            if cfg.cpu_offload:
                model.to("cpu")
            sizes[component] = parameter_bytes(model)
            t_quant += time.perf_counter() - t
            free_memory(full=True)
        t = time.perf_counter()
        if quant.text_encoder is not None:
            from torchao.quantization import quantize_

            quantize_(
                pipe.text_encoder, _torchao_config(quant.text_encoder),
                device=device if device.startswith("cuda") else None,
            )
        sizes["text_encoder"] = parameter_bytes(pipe.text_encoder)
        sizes["vae"] = parameter_bytes(pipe.vae)
        t_quant += time.perf_counter() - t
        timings["lora"] = t_lora
        timings["quantize"] = t_quant

        # 5. Memory: place the rest, VAE tiling, optional model CPU offload
        t = time.perf_counter()
        if cfg.cpu_offload and device.startswith("cuda"):
            pipe.to("cpu")  # quantize_(device=...) left the quantized layers on the GPU
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        free_memory(full=True)
        timings["place"] = time.perf_counter() - t

        # 6. Speed: attention backend, regional compilation (VAE tiling and step caching are per call)
        speed = wan_speed.apply_at_load(pipe, cfg, attention)
    except BaseException as e:
        # A half-built pipeline must not outlive the error: the traceback keeps every frame's locals
        # (tens of GB on a GPU) alive until the caller drops the exception.
        _drop_frames(e)
        pipe = model = None
        kwargs.clear()
        free_memory(full=True)
        raise
    timings["total"] = time.perf_counter() - t_start
    loaded = LoadedPipeline(
        pipe=pipe, cfg=cfg, spec=spec, model_id=cfg.model_id, transformer_id=transformer_id, device=device,
        dtype=dtype_name, vae_dtype=vae_dtype_name, quantization=quant, loras=tuple(loras),
        boundary_ratio=pipe.config.boundary_ratio,
        size_multiple=spec.size_multiple if spec else pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1],
        parameter_bytes=sizes, timings=timings, speed=speed,
    )
    log.info(
        "wan: loaded %s on %s (%s, %s) in %.1f s; LoRAs: %s; parameter bytes: %s",
        cfg.model_id, device, dtype_name, quant.mode, timings["total"],
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
