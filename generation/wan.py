"""The Wan2.2-I2V-A14B backend: load once (weights, LoRA, quantization, memory), then render clips.

    loaded = load_pipeline(GenerationConfig.from_env())        # minutes on a GPU, once per process
    backend = WanBackend(loaded=loaded)                         # or WanBackend(); backend.load(cfg)
    result = backend.generate(plan, image, on_event, cancel, out_dir=...)

Loading (`load_pipeline`) and calling (`WanBackend.generate`) are separate, as in diffusers: LoRA and
quantization are decided once at load time, never inside a call. `generate` reads top to bottom like
a diffusers `__call__`. torch, diffusers, transformers, torchao and peft are imported inside functions.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation.backend import BackendUnavailable
from generation.config import EXPERT_COMPONENT, EXPERTS, ConfigError, GenerationConfig, LoraSpec, ModelSpec
from generation.events import CancelToken, EventListener, GenerationCancelled, GenerationResult, Progress, ignore

if TYPE_CHECKING:
    from PIL import Image

    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

BACKEND_NAME = "wan"
FP8_MIN_CAPABILITY = (8, 9)  # Ada / Hopper: FP8 tensor cores
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
            "cpu_offload": self.cfg.cpu_offload,
            "vae_tiling": self.cfg.vae_tiling,
            "parameter_bytes": dict(self.parameter_bytes),
        }


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


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
    if _offline():
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

    # 1. Resolve device, dtype and quantization (decided here, once, from the device)
    spec = cfg.spec
    device = resolve_device(cfg.device)
    dtype_name = resolve_dtype(cfg.dtype, device)
    vae_dtype_name = spec.vae_dtype if spec else "float32"
    quant = select_quantization(cfg.quantization, device)
    log.info("wan: quantization %s — %s", quant.mode, quant.reason)
    loras = cfg.effective_loras()
    for lora in loras:
        _lora_location(lora)  # a missing LoRA fails now, not after minutes of loading weights
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
    boundary = cfg.boundary_ratio if cfg.boundary_ratio is not None else (spec.boundary_ratio if spec else None)
    if boundary is not None:
        kwargs["boundary_ratio"] = boundary
    t = time.perf_counter()
    try:
        if transformer_id is not None:
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
        # 3. LoRA per expert, fused at full precision, then quantized (the reverse order hits a PEFT bug)
        on_gpu = device.startswith("cuda") and not cfg.cpu_offload
        sizes: dict[str, int] = {}
        t_lora = t_quant = 0.0
        for expert in EXPERTS:
            component = EXPERT_COMPONENT[expert]
            model = getattr(pipe, component)
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
        if cfg.vae_tiling:
            pipe.vae.enable_tiling()  # `pipe.enable_vae_tiling` does not exist on this pipeline
        free_memory(full=True)
        timings["place"] = time.perf_counter() - t
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
        boundary_ratio=pipe.config.boundary_ratio, parameter_bytes=sizes, timings=timings,
    )
    log.info(
        "wan: loaded %s on %s (%s, %s) in %.1f s; LoRAs: %s; parameter bytes: %s",
        cfg.model_id, device, dtype_name, quant.mode, timings["total"],
        ", ".join(f"{lo.label}@{lo.scale:g}→{lo.expert}" for lo in loras) or "none", sizes,
    )
    return loaded


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
    if _offline():
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


# --- generating ------------------------------------------------------------------------------------


def default_out_dir() -> Path:
    """`<VIVIDFLOW_HOME>/media/videos` — used when the caller (normally the job runner) gives none."""
    from storage.store import MEDIA_DIRNAME, resolve_location

    return resolve_location()[1] / MEDIA_DIRNAME / "videos"


class WanBackend:
    """The `wan` backend: Wan2.2-I2V-A14B through diffusers (see `load_pipeline` for what loading does)."""

    name = BACKEND_NAME

    def __init__(self, cfg: GenerationConfig | None = None, *, loaded: LoadedPipeline | None = None) -> None:
        self.cfg = loaded.cfg if loaded is not None else cfg
        self.loaded = loaded
        self._lock = threading.Lock()  # one generation at a time on one pipeline
        self._tail_s_per_unit: float | None = None  # decode+export seconds per frame·pixel, for the ETA

    # --- loading ----------------------------------------------------------------------------------

    def load(self, cfg: GenerationConfig | None = None) -> None:
        """Load once; a different `cfg` replaces the pipeline (the old one is freed first)."""
        cfg = cfg or self.cfg or GenerationConfig.from_env()
        if self.loaded is not None and self.loaded.cfg == cfg:
            return
        self.unload()
        self.cfg = cfg
        self.loaded = load_pipeline(cfg)

    def unload(self) -> None:
        """Drop the pipeline and free its memory (the next generate loads again)."""
        if self.loaded is not None:
            self.loaded = None
            free_memory(full=True)
            log.info("wan: pipeline unloaded")

    @property
    def pipe(self) -> Any:
        return self.loaded.pipe if self.loaded is not None else None

    # --- the call ---------------------------------------------------------------------------------

    def generate(
        self,
        plan: MotionPlan,
        image: Image.Image | str | os.PathLike[str] | bytes,
        on_event: EventListener = ignore,
        cancel: CancelToken | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> GenerationResult:
        """Render `plan` from `image` into `out_dir`; raises GenerationCancelled (no file) when cancelled."""
        import torch

        from agent.plan import MotionPlan
        from generation.export import export_video
        from generation.image import load_image, preprocess

        cancel = cancel or CancelToken()
        timings: dict[str, float] = {}
        t_start = time.perf_counter()

        def stage(name: str, step: int = 0, total: int = 1) -> None:
            _check_cancel(cancel, name)
            on_event(Progress(stage=name, step=step, total=total, elapsed_s=time.perf_counter() - t_start))

        # 1. Check inputs
        if not isinstance(plan, MotionPlan):
            raise TypeError(f"plan must be a MotionPlan, got {type(plan).__name__}")
        with self._lock:
            run_before_load_hooks()
            if self.loaded is None:
                stage("loading")
                self.load()
            loaded = self.loaded
            assert loaded is not None
            pipe = loaded.pipe
            cfg = loaded.cfg
            spec = loaded.spec
            steps, g1, g2 = plan.steps, plan.guidance_scale, plan.guidance_scale_2
            _check_plan(plan, loaded)

            # 2. Preprocess the image: EXIF, RGB, size rule (multiples of 16 within the model's max area)
            stage("preprocessing")
            t = time.perf_counter()
            source = load_image(image)
            picture = preprocess(source, max_area=cfg.effective_max_area())
            width, height = picture.size
            flow_shift = cfg.flow_shift if cfg.flow_shift is not None else (
                spec.flow_shift_for(width, height) if spec else None
            )
            flow_shift = _set_flow_shift(pipe, flow_shift)
            timings["preprocess"] = time.perf_counter() - t

            # 3. Encode the prompt (and the negative one when guidance needs it)
            stage("encoding")
            t = time.perf_counter()
            device = pipe._execution_device
            max_len = cfg.max_sequence_length or (spec.max_sequence_length if spec else 512)
            with torch.no_grad():
                prompt_embeds, negative_embeds = pipe.encode_prompt(
                    prompt=plan.prompt, negative_prompt=plan.negative_prompt,
                    do_classifier_free_guidance=g1 > 1.0, num_videos_per_prompt=1,
                    max_sequence_length=max_len, device=device,
                )
            timings["encode"] = time.perf_counter() - t
            free_memory()

            # 4. Sample: the two-expert denoising loop; progress and cancel at every step
            _check_cancel(cancel, "sampling")
            boundary_t = (
                pipe.config.boundary_ratio * pipe.scheduler.config.num_train_timesteps
                if pipe.config.boundary_ratio is not None else None
            )
            tail_units = width * height * plan.num_frames
            expert_steps = {e: 0 for e in EXPERTS}
            t_sample = time.perf_counter()

            def on_step_end(p: Any, i: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                expert = "high_noise" if boundary_t is None or float(timestep) >= boundary_t else "low_noise"
                expert_steps[expert] += 1
                now = time.perf_counter()
                per_step = (now - t_sample) / (i + 1)
                eta = per_step * (steps - i - 1)
                if self._tail_s_per_unit is not None:
                    eta += self._tail_s_per_unit * tail_units
                on_event(Progress(
                    stage="sampling", step=i + 1, total=steps, eta_s=eta, elapsed_s=now - t_start, expert=expert,
                ))
                if cancel.cancelled:
                    p._interrupt = True  # the pipeline skips the remaining steps
                return {}

            generator = torch.Generator(device=device).manual_seed(plan.seed)
            with torch.no_grad():
                latents = pipe(
                    image=picture, prompt=None, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                    height=height, width=width, num_frames=plan.num_frames, num_inference_steps=steps,
                    guidance_scale=g1, guidance_scale_2=g2, generator=generator, output_type="latent",
                    callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=[],
                ).frames
            timings["sample"] = time.perf_counter() - t_sample
            del prompt_embeds, negative_embeds
            if cancel.cancelled or pipe.interrupt:
                del latents  # half-denoised: never decoded, never exported
                free_memory()
                raise GenerationCancelled(f"cancelled during sampling after {sum(expert_steps.values())} of {steps} steps")
            free_memory()

            # 5. Decode the latents to frames (the VAE, tiled)
            stage("decoding")
            t = time.perf_counter()
            frames = decode_latents(pipe, latents)
            del latents
            timings["decode"] = time.perf_counter() - t
            free_memory()

            # 6. Export: H.264 MP4 + thumbnail, atomically, with the reproduction record in its metadata
            stage("exporting")
            t = time.perf_counter()
            params = {
                "backend": BACKEND_NAME,
                "prompt": plan.prompt,
                "negative_prompt": plan.negative_prompt,
                "seed": plan.seed,
                "steps": steps,
                "guidance_scale": g1,
                "guidance_scale_2": g2,
                "classifier_free_guidance": g1 > 1.0,
                "boundary_ratio": pipe.config.boundary_ratio,
                "flow_shift": flow_shift,
                "scheduler": type(pipe.scheduler).__name__,
                "width": width,
                "height": height,
                "input_width": source.width,
                "input_height": source.height,
                "num_frames": plan.num_frames,
                "fps": plan.fps,
                "max_sequence_length": max_len,
                "generator_device": str(device),
                "expert_steps": dict(expert_steps),
                **loaded.describe(),
                "crf": cfg.crf,
                "versions": library_versions(),
                "plan": plan.to_dict(),
            }
            out = Path(out_dir) if out_dir is not None else default_out_dir()
            exported = export_video(frames, out, fps=plan.fps, metadata={"vividflow": params}, crf=cfg.crf)
            timings["export"] = time.perf_counter() - t
            timings["total"] = time.perf_counter() - t_start
            timings["per_step"] = timings["sample"] / max(steps, 1)
            tail = timings["decode"] + timings["export"]
            self._tail_s_per_unit = tail / max(tail_units, 1)
            on_event(Progress(stage="exporting", step=1, total=1, elapsed_s=timings["total"]))
            log.info(
                "wan: %dx%d, %d frames, %d steps in %.2f s (sample %.2f, decode %.2f, export %.2f) → %s",
                width, height, plan.num_frames, steps, timings["total"], timings["sample"], timings["decode"],
                timings["export"], exported.video_path,
            )
            return GenerationResult(
                video_path=exported.video_path, thumbnail_path=exported.thumbnail_path, width=exported.width,
                height=exported.height, num_frames=exported.num_frames, fps=exported.fps, backend=BACKEND_NAME,
                model_id=loaded.model_id, timings=timings,
                params={**params, "sha256": exported.sha256, "timings": dict(timings), "load_timings": dict(loaded.timings)},
            )


def _check_cancel(cancel: CancelToken, stage: str) -> None:
    if cancel.cancelled:
        raise GenerationCancelled(f"cancelled before {stage}")


def _check_plan(plan: MotionPlan, loaded: LoadedPipeline) -> None:
    """Warn about settings the model runs but that are likely not meant (never changes them)."""
    if not plan.prompt.strip():
        log.warning("wan: plan.prompt is empty (compile the plan first): rendering with an empty prompt")
    if not loaded.loras and plan.steps < 20:
        log.warning("wan: %d steps without a LoRA (Lightning is off): expect a blurry clip; the base model wants ~40", plan.steps)
    if plan.guidance_scale <= 1.0 < plan.guidance_scale_2:
        log.warning(
            "wan: guidance_scale=%g ≤ 1 turns classifier-free guidance off for both experts in diffusers; "
            "guidance_scale_2=%g has no effect", plan.guidance_scale, plan.guidance_scale_2,
        )


def _set_flow_shift(pipe: Any, flow_shift: float | None) -> float | None:
    """Give the scheduler `flow_shift` (a new scheduler from the same config); returns the shift in use."""
    sched = pipe.scheduler
    key = "flow_shift" if "flow_shift" in sched.config else ("shift" if "shift" in sched.config else None)
    if key is None:
        log.warning("wan: scheduler %s has no flow shift setting; left as is", type(sched).__name__)
        return None
    if flow_shift is None or sched.config[key] == flow_shift:
        return float(sched.config[key])
    pipe.scheduler = type(sched).from_config(sched.config, **{key: flow_shift})
    log.debug("wan: scheduler %s=%g", key, flow_shift)
    return float(flow_shift)


def decode_latents(pipe: Any, latents: Any) -> Any:
    """Latents → (T, H, W, 3) float frames in [0, 1]: exactly the end of diffusers' Wan I2V `__call__`."""
    import torch

    with torch.no_grad():
        return _decode(pipe, latents)


def _decode(pipe: Any, latents: Any) -> Any:
    import torch
    from diffusers.utils.torch_utils import get_module_execution_device

    vae = pipe.vae
    latents = latents.to(device=get_module_execution_device(vae), dtype=vae.dtype)
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1).to(latents.device, latents.dtype)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1).to(latents.device, latents.dtype)
    video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
    frames = pipe.video_processor.postprocess_video(video, output_type="np")[0]
    pipe.maybe_free_model_hooks()
    return frames
