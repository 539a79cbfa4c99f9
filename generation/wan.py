"""The Wan2.2-I2V-A14B backend: render a clip from a loaded pipeline (`generation.wan_load` loads it).

    loaded = wan_load.load_pipeline(GenerationConfig.from_env())   # minutes on a GPU, once per process
    backend = WanBackend(loaded=loaded)                             # or WanBackend(); backend.load(cfg)
    result = backend.generate(plan, image, on_event, cancel, out_dir=...)

Loading (`load_pipeline`) and calling (`WanBackend.generate`) are separate, as in diffusers: LoRA and
quantization are decided once at load time, never inside a call. `generate` reads top to bottom like
a diffusers `__call__`; the work lives in the helpers below it. torch and diffusers are imported
inside functions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generation.config import EXPERTS, GenerationConfig
from generation.embedding_cache import EmbeddingCache, picture_key
from generation.events import (
    CancelToken, EventListener, GenerationCancelled, GenerationResult, Preview, Progress, ignore,
)
from generation import export, live_preview, step_cache, wan_speed
from generation.wan_load import LoadedPipeline, free_memory, library_versions, load_pipeline, run_before_load_hooks

if TYPE_CHECKING:
    from PIL import Image

    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

BACKEND_NAME = "wan"


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
        from agent.plan import MotionPlan
        from generation.image import load_image, preprocess

        cancel = cancel or CancelToken()
        timings: dict[str, float] = {}
        t_start = time.perf_counter()

        def stage(name: str) -> None:
            _check_cancel(cancel, name)
            on_event(Progress(stage=name, step=0, total=1, elapsed_s=time.perf_counter() - t_start))

        # 1. Check inputs (and load the pipeline on first use)
        if not isinstance(plan, MotionPlan):
            raise TypeError(f"plan must be a MotionPlan, got {type(plan).__name__}")
        with self._lock:
            run_before_load_hooks()
            if self.loaded is None:
                stage("loading")
                self.load()
            loaded = self.loaded
            assert loaded is not None
            pipe, cfg = loaded.pipe, loaded.cfg
            _check_plan(plan, loaded)

            # 2. Preprocess the image: EXIF, RGB, size rule (multiples of 16 within the model's max area)
            stage("preprocessing")
            t = time.perf_counter()
            source = load_image(image)
            picture = preprocess(source, max_area=cfg.effective_max_area())
            width, height = picture.size
            flow_shift = _set_flow_shift(pipe, _flow_shift_for(loaded, width, height))
            speed = wan_speed.for_call(cfg, plan.steps, width, height)  # VAE tiling and step cache, logged
            wan_speed.set_vae_tiling(pipe.vae, speed.vae_tiling.value == "on")
            timings["preprocess"] = time.perf_counter() - t

            # 3. Encode the prompt (and the negative one when guidance needs it); a text seen before is reused
            stage("encoding")
            t = time.perf_counter()
            device = pipe._execution_device
            max_len = cfg.max_sequence_length or (loaded.spec.max_sequence_length if loaded.spec else 512)
            cache = loaded.embedding_cache if cfg.embedding_cache else EmbeddingCache(size=0)
            cache.stats()  # hits and misses from here on are this call's
            prompt_embeds, negative_embeds = encode_prompt(pipe, plan, max_len, device, cache, loaded.model_id)
            timings["encode"] = time.perf_counter() - t
            free_memory()

            # 4. Sample: the two-expert denoising loop; progress, live preview and cancel at every step (the
            #    picture's VAE encoding reused when seen, the step cache on for this call when it applies)
            _check_cancel(cancel, "sampling")
            t = time.perf_counter()
            preview = cfg.live_preview and on_event is not ignore and live_preview.supported(pipe.vae.config.z_dim)
            reuse = cache.vae_encodes(pipe.vae, picture_key(picture))
            with step_cache.applied(pipe, speed.step_cache, plan.steps), reuse:
                latents, expert_steps = self._sample(
                    pipe, plan, picture, prompt_embeds, negative_embeds, device, on_event, cancel, t_start, preview
                )
            timings["sample"] = time.perf_counter() - t
            reused = cache.stats()
            del prompt_embeds, negative_embeds
            if cancel.cancelled or pipe.interrupt:
                del latents  # half-denoised: never decoded, never exported
                free_memory()
                raise GenerationCancelled(
                    f"cancelled during sampling after {sum(expert_steps.values())} of {plan.steps} steps"
                )
            free_memory()

            # 5. Decode the latents to frames (the VAE; tiled when step 2 chose so)
            stage("decoding")
            t = time.perf_counter()
            frames = decode_latents(pipe, latents)
            del latents
            timings["decode"] = time.perf_counter() - t
            free_memory()

            # 6. Export: H.264 MP4 + thumbnail, atomically, with the reproduction record in its metadata
            stage("exporting")
            t = time.perf_counter()
            params = _reproduction_record(
                plan, loaded, flow_shift=flow_shift, size=(width, height), input_size=source.size,
                max_len=max_len, device=device, expert_steps=expert_steps,
                speed={**speed.to_dict(), "embedding_cache": reused, "live_preview": preview},
            )
            out = out_dir if out_dir is not None else export.default_out_dir()
            exported = export.export_video(frames, out, fps=plan.fps, metadata={"vividflow": params}, crf=cfg.crf)
            timings["export"] = time.perf_counter() - t
            timings["total"] = time.perf_counter() - t_start
            timings["per_step"] = timings["sample"] / max(plan.steps, 1)
            tail = timings["decode"] + timings["export"]
            self._tail_s_per_unit = tail / max(width * height * plan.num_frames, 1)
            on_event(Progress(stage="exporting", step=1, total=1, elapsed_s=timings["total"]))
            log.info(
                "wan: %dx%d, %d frames, %d steps in %.2f s (sample %.2f, decode %.2f, export %.2f) → %s",
                width, height, plan.num_frames, plan.steps, timings["total"], timings["sample"], timings["decode"],
                timings["export"], exported.video_path,
            )

            # 7. Return everything needed to reproduce it
            return GenerationResult(
                video_path=exported.video_path, thumbnail_path=exported.thumbnail_path, width=exported.width,
                height=exported.height, num_frames=exported.num_frames, fps=exported.fps, backend=BACKEND_NAME,
                model_id=loaded.model_id, timings=timings,
                params={**params, "sha256": exported.sha256, "timings": dict(timings), "load_timings": dict(loaded.timings)},
            )

    def _sample(
        self, pipe: Any, plan: MotionPlan, picture: Image.Image, prompt_embeds: Any, negative_embeds: Any,
        device: Any, on_event: EventListener, cancel: CancelToken, t_start: float, preview: bool,
    ) -> tuple[Any, dict[str, int]]:
        """The denoising loop to latents, a Progress event per step (naming the expert that ran it), and with
        `preview` a Preview strip of the step's predicted clean latents (`generation.live_preview`, no VAE).

        A cancel sets the pipeline's interrupt flag: diffusers skips the remaining steps, and the
        caller sees `pipe.interrupt`. Returns the latents and the steps each expert ran.
        """
        import torch

        steps = plan.steps
        width, height = picture.size
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
            if preview:
                x0 = live_preview.predicted_x0(p.scheduler, kwargs["latents"])
                on_event(Preview(frame=live_preview.strip(x0), step=i + 1, total=steps))
            if cancel.cancelled:
                p._interrupt = True  # the pipeline skips the remaining steps
            return {}

        generator = torch.Generator(device=device).manual_seed(plan.seed)
        with torch.no_grad():
            latents = pipe(
                image=picture, prompt=None, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                height=height, width=width, num_frames=plan.num_frames, num_inference_steps=steps,
                guidance_scale=plan.guidance_scale, guidance_scale_2=plan.guidance_scale_2, generator=generator,
                output_type="latent", callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"] if preview else [],
            ).frames
        return latents, expert_steps


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


def _flow_shift_for(loaded: LoadedPipeline, width: int, height: int) -> float | None:
    """The configured flow shift, else the model's for this resolution tier, else None (the scheduler's own)."""
    if loaded.cfg.flow_shift is not None:
        return loaded.cfg.flow_shift
    return loaded.spec.flow_shift_for(width, height) if loaded.spec else None


def encode_prompt(
    pipe: Any, plan: MotionPlan, max_len: int, device: Any, cache: EmbeddingCache, model_id: str,
) -> tuple[Any, Any]:
    """(prompt embeddings, negative embeddings or None): the negative prompt only when guidance needs it; each
    text encoded as diffusers' `encode_prompt` does, or taken from `cache`."""
    def embed(text: str) -> Any:
        return cache.prompt_embeds(pipe, text, max_len=max_len, device=device, model_id=model_id)

    positive = embed(plan.prompt)
    return positive, (embed(plan.negative_prompt or "") if plan.guidance_scale > 1.0 else None)


def _reproduction_record(
    plan: MotionPlan, loaded: LoadedPipeline, *, flow_shift: float | None, size: tuple[int, int],
    input_size: tuple[int, int], max_len: int, device: Any, expert_steps: dict[str, int], speed: dict[str, Any],
) -> dict[str, Any]:
    """Everything needed to render the same clip again: the call's settings, the load-time facts, versions."""
    pipe = loaded.pipe
    return {
        "backend": BACKEND_NAME,
        "prompt": plan.prompt,
        "negative_prompt": plan.negative_prompt,
        "seed": plan.seed,
        "steps": plan.steps,
        "guidance_scale": plan.guidance_scale,
        "guidance_scale_2": plan.guidance_scale_2,
        "classifier_free_guidance": plan.guidance_scale > 1.0,
        "boundary_ratio": pipe.config.boundary_ratio,
        "flow_shift": flow_shift,
        "scheduler": type(pipe.scheduler).__name__,
        "width": size[0],
        "height": size[1],
        "input_width": input_size[0],
        "input_height": input_size[1],
        "num_frames": plan.num_frames,
        "fps": plan.fps,
        "max_sequence_length": max_len,
        "generator_device": str(device),
        "expert_steps": dict(expert_steps),
        **loaded.describe(),
        "speed": {**loaded.speed, **speed},
        "crf": loaded.cfg.crf,
        "versions": library_versions(),
        "plan": plan.to_dict(),
    }


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
