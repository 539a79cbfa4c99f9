"""The Wan2.2 backend: render a clip from a loaded pipeline (`generation.wan_load` loads it).

    loaded = wan_load.load_pipeline(GenerationConfig.from_env())   # minutes on a GPU, once per process
    backend = WanBackend(loaded=loaded)                             # or WanBackend(); backend.load(cfg)
    result = backend.generate(plan, image, on_event, cancel, out_dir=...)

Loading (`load_pipeline`) and calling (`WanBackend.generate`) are separate, as in diffusers: LoRA and
quantization are decided once at load time, never inside a call. `generate` reads top to bottom like
a diffusers `__call__`; the work lives in the helpers below it. What the call samples with (steps, guidance,
flow shift, frames at the model's fps) is the active recipe applied to the plan (`generation.sampling`).
torch and diffusers are imported inside functions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from generation.backend import PictureRequired, model_needs_picture
from generation.config import EXPERTS, GenerationConfig
from generation.embedding_cache import EmbeddingCache, picture_key
from generation.eta import StepTimer
from generation.events import (
    CancelToken, EventListener, GenerationCancelled, GenerationResult, Preview, Progress, ignore,
)
from generation import export, live_preview, step_cache, wan_speed
from generation.nag import NegativeGuidance, choose_negative_guidance, nag_guidance
from generation.sampling import Sampling, resolve_sampling
from generation.specs import default_spec, expert_per_step
from generation.wan_load import LoadedPipeline, free_memory, library_versions, load_pipeline, run_before_load_hooks

if TYPE_CHECKING:
    from PIL import Image

    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

BACKEND_NAME = "wan"


class WanBackend:
    """The `wan` backend: Wan2.2 through diffusers (see `load_pipeline` for what loading does)."""

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
        image: Image.Image | str | os.PathLike[str] | bytes | None,
        on_event: EventListener = ignore,
        cancel: CancelToken | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        end_image: Image.Image | None = None,
    ) -> GenerationResult:
        """Render `plan` from `image` (None: from the words alone, on a model that can) into `out_dir`; raises
        GenerationCancelled (no file) when cancelled, PictureRequired without a picture on an image-to-video model.
        `end_image`: the picture `plan.end_image` names (diffusers' `last_image`; a loop uses `image`, #12 §1)."""
        return self._generate([plan], image, on_event, cancel, out_dir=out_dir, end_image=end_image)[0]

    def generate_batch(
        self,
        plans: list[MotionPlan],
        image: Image.Image | str | os.PathLike[str] | bytes | None,
        on_event: EventListener = ignore,
        cancel: CancelToken | None = None,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        end_image: Image.Image | None = None,
    ) -> list[GenerationResult]:
        """Render the clips of a batch of variations (plans equal but for the seed, #12 §3) in one pipeline
        call with a generator per seed (diffusers' `num_videos_per_prompt` and a generator list); when that does
        not fit in memory, in halves. One result per plan, in order."""
        from generation.wan_batch import is_out_of_memory

        try:
            return self._generate(plans, image, on_event, cancel, out_dir=out_dir, end_image=end_image)
        except Exception as e:
            if len(plans) < 2 or not is_out_of_memory(e):
                raise
            half = len(plans) // 2
            log.warning("wan: %d clips in one call ran out of memory; rendering %d and %d", len(plans), half,
                        len(plans) - half)
            free_memory(full=True)
            kw = {"out_dir": out_dir, "end_image": end_image}
            return (self.generate_batch(plans[:half], image, on_event, cancel, **kw)
                    + self.generate_batch(plans[half:], image, on_event, cancel, **kw))

    def render_segment(
        self, plan: MotionPlan, image: Image.Image | None, *, last_image: Image.Image | None = None,
        on_event: EventListener = ignore, cancel: CancelToken | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """One segment of a longer video (`generation.segments`): (T, H, W, 3) uint8 frames and the reproduction
        record, nothing exported; `last_image` (a story transition's next picture, or a long video's end picture
        or first picture for a loop) is the frame to end on, through the same `last_image` path as `generate`."""
        import numpy as np

        r = self._render([plan], image, on_event, cancel or CancelToken(), end_image=None, last_image=last_image)
        frames = (np.clip(np.asarray(r.clips[0]), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return frames, r.records[0]

    def _generate(
        self,
        plans: list[MotionPlan],
        image: Image.Image | str | os.PathLike[str] | bytes | None,
        on_event: EventListener,
        cancel: CancelToken | None,
        *,
        out_dir: str | os.PathLike[str] | None,
        end_image: Image.Image | None,
    ) -> list[GenerationResult]:
        cancel = cancel or CancelToken()
        r = self._render(plans, image, on_event, cancel, end_image=end_image)
        timings, (width, height), sampling, loaded = r.timings, r.size, r.sampling, r.loaded

        # 6. Export: H.264 MP4 + thumbnail per clip, atomically, with the reproduction record in its metadata
        _check_cancel(cancel, "exporting")
        on_event(Progress(stage="exporting", step=0, total=1, elapsed_s=time.perf_counter() - r.t_start))
        t = time.perf_counter()
        out = out_dir if out_dir is not None else export.default_out_dir()
        exported = [export.export_video(frames, out, fps=sampling.fps, metadata={"vividflow": params},
                                        crf=loaded.cfg.crf) for frames, params in zip(r.clips, r.records)]
        timings["export"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - r.t_start
        timings["per_step"] = timings["sample"] / max(sampling.steps, 1)
        tail = timings["decode"] + timings["export"]
        self._tail_s_per_unit = tail / max(width * height * sampling.num_frames * len(plans), 1)
        on_event(Progress(stage="exporting", step=1, total=1, elapsed_s=timings["total"]))
        log.info(
            "wan: %d clip(s) %dx%d, %d frames at %d fps, %d steps (%s recipe) in %.2f s (sample %.2f, decode %.2f, "
            "export %.2f) → %s", len(plans), width, height, sampling.num_frames, sampling.fps, sampling.steps,
            sampling.recipe or "no", timings["total"], timings["sample"], timings["decode"], timings["export"],
            [e.video_path for e in exported],
        )

        # 7. Return everything needed to reproduce each clip
        return [GenerationResult(
            video_path=e.video_path, thumbnail_path=e.thumbnail_path, width=e.width,
            preview_path=e.preview_path,
            height=e.height, num_frames=e.num_frames, fps=e.fps, backend=BACKEND_NAME,
            model_id=loaded.model_id, timings=dict(timings),
            params={**params, "sha256": e.sha256, "timings": dict(timings), "load_timings": dict(loaded.timings)},
            negative_guidance=r.negative_guidance,
        ) for e, params in zip(exported, r.records)]

    def _render(
        self,
        plans: list[MotionPlan],
        image: Image.Image | str | os.PathLike[str] | bytes | None,
        on_event: EventListener,
        cancel: CancelToken,
        *,
        end_image: Image.Image | None,
        last_image: Image.Image | None = None,
    ) -> _Rendered:
        """Steps 1–5 of a call: checks, preprocessing, prompt encoding, sampling, decoding (each clip's frames in
        [0, 1]) and each clip's reproduction record. The clip ends on `last_image` when given (a segment),
        else on what the plan asks (`end_image`, or the first picture for a loop)."""
        from agent.plan import MotionPlan
        from generation.image import load_image, output_size, preprocess
        from generation.wan_batch import check_batch, last_image_for

        if not plans or not all(isinstance(p, MotionPlan) for p in plans):
            raise TypeError(f"plans must be MotionPlans, got {[type(p).__name__ for p in plans]}")
        check_batch(plans)
        plan = plans[0]

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
            cfg = loaded.cfg
            image, sampling = _choose_input(loaded, image, resolve_sampling(plan, cfg))
            pipe = loaded.pipeline_for(image is not None)  # image-to-video, or text-to-video (T2V, TI2V-5B)
            _check_plan(plan, loaded, sampling)

            # 2. Preprocess the image: EXIF, RGB, the model's size rule (multiples of its size multiple, max area);
            #    from words alone, the model's own landscape size within the same rule
            stage("preprocessing")
            t = time.perf_counter()
            rule = {"max_area": cfg.effective_max_area(), "multiple": loaded.size_multiple}
            source = load_image(image) if image is not None else None
            picture = preprocess(source, **rule) if source is not None else None
            text_size = (loaded.spec or default_spec()).text_size
            width, height = picture.size if picture is not None else output_size(*text_size, **rule)
            # the picture to end on: a segment's `last_image`, or the plan's end picture or loop (#12 §1, §2, §4)
            last, sampling = last_image_for(plan, pipe, picture, end_image, sampling, last_image=last_image)
            flow_shift = _set_flow_shift(pipe, sampling.flow_shift)
            speed = wan_speed.for_call(  # VAE tiling and step cache, logged
                cfg, sampling.steps, width, height, with_image=picture is not None, offload=loaded.offload != "none")
            wan_speed.set_vae_tiling(pipe.vae, speed.vae_tiling.value == "on")
            timings["preprocess"] = time.perf_counter() - t

            # 3. Encode the prompt (and the negative one when CFG or NAG uses it); a text seen before is reused
            stage("encoding")
            t = time.perf_counter()
            device = pipe._execution_device
            max_len = cfg.max_sequence_length or (loaded.spec.max_sequence_length if loaded.spec else 512)
            cfg_on = sampling.guidance[0] > 1.0
            negative_guidance = choose_negative_guidance(cfg.nag, sampling.guidance[0], plan.negative_prompt)
            nag = _nag_settings(cfg) if "nag" in negative_guidance else None
            cache = loaded.embedding_cache if cfg.embedding_cache else EmbeddingCache(size=0)
            cache.stats()  # hits and misses from here on are this call's
            prompt_embeds, negative_embeds = encode_prompt(
                pipe, plan, max_len, device, cache, loaded.model_id, negative=negative_guidance != "none")
            timings["encode"] = time.perf_counter() - t
            free_memory()

            # 4. Sample: the denoising loop (one expert or two; NAG inside the text cross-attentions); progress,
            #    live preview and cancel at every step (the picture's VAE encoding reused when seen, the step
            #    cache on for this call when it applies)
            _check_cancel(cancel, "sampling")
            t = time.perf_counter()
            if nag is not None:
                log.info("wan: negative prompt through NAG %s (%s)", nag, negative_guidance)
            preview = (cfg.live_preview and on_event is not ignore and live_preview.supported(pipe.vae.config.z_dim)
                       and len(plans) == 1)
            key = picture_key(picture) + (":" + picture_key(last) if last is not None else "") if picture else ""
            reuse = cache.vae_encodes(pipe.vae, key) if picture is not None else nullcontext()
            with (nag_guidance(pipe, negative_embeds, **nag) if nag is not None else nullcontext(),
                  step_cache.applied(pipe, speed.step_cache, sampling.steps), reuse):
                latents, timesteps = self._sample(
                    pipe, plans, sampling, picture, (width, height), prompt_embeds,
                    negative_embeds if cfg_on else None, device, on_event, cancel, t_start, preview, last,
                )
            experts = expert_per_step(timesteps, pipe.config.boundary_ratio)
            timings["sample"] = time.perf_counter() - t
            reused = cache.stats()
            del prompt_embeds, negative_embeds
            if cancel.cancelled or pipe.interrupt:
                del latents  # half-denoised: never decoded, never exported
                free_memory()
                raise GenerationCancelled(f"cancelled during sampling after {len(timesteps)} of {sampling.steps} steps")
            free_memory()

            # 5. Decode the latents to frames (the VAE; tiled when step 2 chose so), one clip at a time
            stage("decoding")
            t = time.perf_counter()
            clips = [decode_latents(pipe, latents[k:k + 1]) for k in range(len(plans))]
            del latents
            timings["decode"] = time.perf_counter() - t
            free_memory()

            # the reproduction record of each clip (written into the MP4's metadata by `_generate`)
            records = []
            for clip_plan in plans:
                params = _reproduction_record(
                    pipe, clip_plan, loaded, sampling, flow_shift=flow_shift, size=(width, height),
                    input_size=source.size if source is not None else (None, None),
                    max_len=max_len, device=device, timesteps=timesteps, experts=experts,
                    negative_guidance=negative_guidance, nag=nag,
                    speed={**speed.to_dict(), "embedding_cache": reused, "live_preview": preview},
                )
                if last_image is None:
                    params["end_frame"] = "loop" if clip_plan.loop else ("end picture" if last is not None else None)
                else:  # a segment asked to end on a picture: did the pipeline take it (I2V: yes; TI2V-5B: no)
                    params["last_image"] = last is not None
                if len(plans) > 1:
                    params["batch_size"] = len(plans)
                records.append(params)
            return _Rendered(clips=clips, records=records, timings=timings, size=(width, height), sampling=sampling,
                             loaded=loaded, negative_guidance=negative_guidance, t_start=t_start)

    def _sample(
        self, pipe: Any, plans: list[MotionPlan], sampling: Sampling, picture: Image.Image | None,
        size: tuple[int, int], prompt_embeds: Any, negative_embeds: Any, device: Any, on_event: EventListener,
        cancel: CancelToken, t_start: float, preview: bool, last: Image.Image | None = None,
    ) -> tuple[Any, list[int]]:
        """The denoising loop to latents, a Progress event per step (naming the expert that ran it), and with
        `preview` a Preview strip of the step's predicted clean latents (`generation.live_preview`, no VAE).

        A cancel sets the pipeline's interrupt flag: diffusers skips the remaining steps, and the
        caller sees `pipe.interrupt`. Returns the latents and the timesteps that ran.
        """
        import torch

        steps = sampling.steps
        width, height = size
        boundary = pipe.config.boundary_ratio
        tail_units = width * height * sampling.num_frames * len(plans)
        timesteps: list[int] = []
        tail_s = self._tail_s_per_unit * tail_units if self._tail_s_per_unit is not None else 0.0
        timer = StepTimer(steps, tail_s=tail_s)  # smoothed seconds per step of this run (generation.eta)

        def on_step_end(p: Any, i: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            timesteps.append(int(timestep))
            expert = expert_per_step([int(timestep)], boundary)[0]
            now = time.perf_counter()
            eta = timer.step(i + 1)
            on_event(Progress(
                stage="sampling", step=i + 1, total=steps, eta_s=eta, elapsed_s=now - t_start, expert=expert,
            ))
            if preview:
                x0 = live_preview.predicted_x0(p.scheduler, kwargs["latents"])
                on_event(Preview(frame=live_preview.strip(x0), step=i + 1, total=steps))
            if cancel.cancelled:
                p._interrupt = True  # the pipeline skips the remaining steps
            return {}

        # one generator per clip: clip k's noise is what a single render with its seed draws (#12 §3)
        generators = [torch.Generator(device=device).manual_seed(p.seed) for p in plans]
        generator = generators if len(generators) > 1 else generators[0]
        extra: dict[str, Any] = {"guidance_scale": sampling.guidance[0]}
        if len(plans) > 1:
            extra["num_videos_per_prompt"] = len(plans)
        if last is not None:
            extra["last_image"] = last
        if boundary is not None:  # diffusers takes a second guidance only with two experts
            extra["guidance_scale_2"] = sampling.guidance[1]
        if picture is not None:
            extra["image"] = picture
        with torch.no_grad():
            latents = pipe(
                prompt=None, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                height=height, width=width, num_frames=sampling.num_frames, num_inference_steps=steps,
                generator=generator, output_type="latent", callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"] if preview else [], **extra,
            ).frames
        return latents, timesteps


@dataclass(frozen=True)
class _Rendered:
    """What steps 1–5 of a call produced: each clip's decoded frames in [0, 1] and reproduction record."""

    clips: list[Any]
    records: list[dict[str, Any]]
    timings: dict[str, float]
    size: tuple[int, int]
    sampling: Sampling
    loaded: LoadedPipeline
    negative_guidance: NegativeGuidance
    t_start: float


def _check_cancel(cancel: CancelToken, stage: str) -> None:
    if cancel.cancelled:
        raise GenerationCancelled(f"cancelled before {stage}")


def _choose_input(loaded: LoadedPipeline, image: Any, sampling: Sampling) -> tuple[Any, Sampling]:
    """The picture the call uses (None: words alone), and a note when the model cannot use the one given."""
    name = (loaded.spec.model_id if loaded.spec else loaded.model_id).rstrip("/").split("/")[-1]
    if image is None and not loaded.takes_text_only:
        raise PictureRequired(model_needs_picture(name))
    if image is not None and not loaded.takes_image:
        note = f"{name} renders from words alone: the picture was not used"
        log.warning("wan: %s", note)
        return None, replace(sampling, notes=sampling.notes + (note,))
    return image, sampling


def _check_plan(plan: MotionPlan, loaded: LoadedPipeline, sampling: Sampling) -> None:
    """Warn about settings the model runs but that are likely not meant (never changes them)."""
    if not plan.prompt.strip():
        log.warning("wan: plan.prompt is empty (compile the plan first): rendering with an empty prompt")
    if not loaded.loras and sampling.steps < 20:
        log.warning("wan: %d steps without a LoRA (Lightning is off): expect a blurry clip; the base model wants ~40",
                    sampling.steps)
    high, low = sampling.guidance
    if loaded.pipe.config.boundary_ratio is not None and high <= 1.0 < low:
        log.warning(
            "wan: guidance_scale=%g ≤ 1 turns classifier-free guidance off for both experts in diffusers; "
            "guidance_scale_2=%g has no effect", high, low,
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


def encode_prompt(
    pipe: Any, plan: MotionPlan, max_len: int, device: Any, cache: EmbeddingCache, model_id: str, *, negative: bool,
) -> tuple[Any, Any]:
    """(prompt embeddings, negative embeddings or None): the negative prompt only when CFG or NAG uses it; each
    text encoded as diffusers' `encode_prompt` does, or taken from `cache`."""
    def embed(text: str) -> Any:
        return cache.prompt_embeds(pipe, text, max_len=max_len, device=device, model_id=model_id)

    return embed(plan.prompt), (embed(plan.negative_prompt or "") if negative else None)


def _nag_settings(cfg: GenerationConfig) -> dict[str, float]:
    """NAG's scale, tau and alpha from the active recipe (a folder outside the registry: the default model's)."""
    recipe = cfg.recipe or default_spec().recipe(cfg.lightning)
    return {"scale": recipe.nag_scale, "tau": recipe.nag_tau, "alpha": recipe.nag_alpha}


def _reproduction_record(
    pipe: Any, plan: MotionPlan, loaded: LoadedPipeline, sampling: Sampling, *, flow_shift: float | None, size: tuple[int, int],
    input_size: tuple[int | None, int | None], max_len: int, device: Any, timesteps: list[int], experts: list[str],
    negative_guidance: NegativeGuidance, nag: dict[str, float] | None, speed: dict[str, Any],
) -> dict[str, Any]:
    """Everything needed to render the same clip again: the call's settings, the load-time facts, versions."""
    two_experts = pipe.config.boundary_ratio is not None
    names = EXPERTS if two_experts else tuple(dict.fromkeys(experts)) or ("transformer",)
    return {
        "backend": BACKEND_NAME,
        "prompt": plan.prompt,
        "negative_prompt": plan.negative_prompt,
        "seed": plan.seed,
        "recipe": sampling.recipe,
        "steps": sampling.steps,
        "guidance_scale": sampling.guidance[0],
        "guidance_scale_2": sampling.guidance[1] if two_experts else None,
        "classifier_free_guidance": sampling.guidance[0] > 1.0,
        "negative_guidance": negative_guidance,  # how the negative prompt acted: nag | cfg | cfg+nag | none
        "nag": nag,  # scale, tau, alpha when NAG applied
        "notes": list(sampling.notes),
        "pipeline": type(pipe).__name__,
        "boundary_ratio": pipe.config.boundary_ratio,
        "flow_shift": flow_shift,
        "scheduler": type(pipe.scheduler).__name__,
        "timesteps": list(timesteps),
        "expert_per_step": list(experts),
        "width": size[0],
        "height": size[1],
        "input_width": input_size[0],
        "input_height": input_size[1],
        "num_frames": sampling.num_frames,
        "fps": sampling.fps,
        "max_sequence_length": max_len,
        "generator_device": str(device),
        "expert_steps": {name: experts.count(name) for name in names},
        **loaded.describe(),
        "speed": {**loaded.speed, **speed},
        "crf": loaded.cfg.crf,
        "versions": library_versions(),
        "plan": plan.to_dict(),
    }


def decode_latents(pipe: Any, latents: Any) -> Any:
    """Latents → (T, H, W, 3) float frames in [0, 1]: exactly the end of diffusers' Wan `__call__`."""
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
