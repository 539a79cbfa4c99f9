"""The one table of supported video models and their recipes (Wan2.2's `wan/configs/`, as frozen values).

A `ModelSpec` says what a model is (experts and boundary, pipeline class, VAE scale and patch size, hence the
size multiple, native fps, max frames and area, whether it needs, takes or ignores a picture); a `Recipe` says
how to sample it (steps, guidance pair, flow shift, and the limits a plan may ask for). `resolve_recipe` picks
the recipe for a model and the Lightning switch and computes the timesteps and which expert runs each step,
without torch: `python -m generation recipe` prints it.

Lightning's 4 steps were trained on timesteps 1000 / 937.5 / 833.3 / 625: flow shift 5 with 4 steps, so its
step 2 stays on the high-noise side of the 0.9 boundary (shift 3 gives 999/900/750/500, step 2 on the boundary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Task = Literal["i2v", "ti2v", "t2v"]
NUM_TRAIN_TIMESTEPS = 1000
SCHEDULER = "UniPCMultistepScheduler"  # what every Wan2.2 Diffusers repo ships; `flow_timesteps` reproduces it
# The pipeline component that holds each expert (Wan2.2 A14B: `transformer` runs t ≥ boundary).
EXPERT_COMPONENT: dict[str, str] = {"high_noise": "transformer", "low_noise": "transformer_2"}


@dataclass(frozen=True)
class Recipe:
    """How to sample: the defaults a plan starts from and the limits it may ask for."""

    name: Literal["lightning", "base"]
    steps: int
    guidance: tuple[float, float]  # (high-noise expert, low-noise expert); one-expert models use the first
    flow_shift: float
    max_steps: int  # a plan may ask for up to this many steps
    max_guidance: float  # above this the guidance is clamped (1.0: CFG-distilled, the negative goes through NAG)
    step_cache: Literal["none", "first_block", "mag"] = "none"  # worth it only with many steps
    # NAG (`generation.nag`, the negative prompt at guidance ≤ 1): the reference's values for few-step Wan
    # (its 4-step Wan2.1 demo: scale 11, tau 2.5, alpha 0.25)
    nag_scale: float = 11.0  # extrapolation away from the negative text
    nag_tau: float = 2.5  # cap on the L1-norm ratio of guided to positive attention output
    nag_alpha: float = 0.25  # blend of the guided output into the positive one

    @property
    def cfg_distilled(self) -> bool:
        return self.max_guidance <= 1.0


@dataclass(frozen=True)
class LoraRef:
    """A LoRA file of a recipe: hub repo (or folder) + file name, scale, and the expert it goes into."""

    repo: str
    file: str
    scale: float
    expert: Literal["high_noise", "low_noise"]


@dataclass(frozen=True)
class ModelSpec:
    """A supported model: its shape, its limits, its recipes."""

    model_id: str
    description: str
    task: Task
    pipeline: str  # diffusers class name
    experts: int  # 2: high-noise `transformer` + low-noise `transformer_2`
    boundary_ratio: float | None  # t ≥ ratio·1000 runs on the high-noise expert
    vae_scale: int  # spatial downsampling of the VAE
    patch_size: int  # spatial patch of the transformer
    fps: int
    max_frames: int
    max_area: int  # default output area (480p for A14B)
    max_area_hd: int  # the largest area the model was trained for
    text_size: tuple[int, int]  # (width, height) from words alone: no picture to take the aspect from
    base: Recipe
    lightning: Recipe | None = None
    lightning_loras: tuple[LoraRef, ...] = ()
    expand_timesteps: bool = False  # TI2V-5B: per-token timesteps, the image latents at t=0
    transformer_override: str | None = None  # a repo with bf16 `transformer/` (+ `transformer_2/`)
    max_sequence_length: int = 512
    vae_dtype: str = "float32"  # the Wan VAE decodes visibly better in fp32 (diffusers' Wan docs)
    params_b: float = 14.0  # parameters per expert, billions (memory estimates)
    aliases: tuple[str, ...] = field(default=())

    @property
    def size_multiple(self) -> int:
        """Output sides are multiples of this: VAE scale × patch size (16 for A14B, 32 for TI2V-5B)."""
        return self.vae_scale * self.patch_size

    @property
    def needs_image(self) -> bool:
        return self.task == "i2v"

    @property
    def takes_image(self) -> bool:
        return self.task in ("i2v", "ti2v")

    def recipe(self, lightning: bool) -> Recipe:
        """Lightning when asked and the model has one, else the official base recipe."""
        return self.lightning if (lightning and self.lightning is not None) else self.base


# --- the models -----------------------------------------------------------------------------------------------

I2V_A14B = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
TI2V_5B = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
T2V_A14B = "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
BF16_TRANSFORMER_ID = "cbensimon/Wan2.2-I2V-A14B-bf16-Diffusers"  # the I2V experts stored in bf16

# The Wan2.1 lightx2v I2V step/CFG-distill LoRA: 4 steps at guidance 1.0. On Wan2.2 A14B the popular recipe
# loads the same file into both experts, 3.0 on high-noise and 1.0 on low-noise.
LIGHTX2V_REPO = "Kijai/WanVideo_comfy"
LIGHTX2V_FILE = "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank128_bf16.safetensors"
# Wan2.2-Lightning (lightx2v) for text-to-video: one LoRA per expert.
LIGHTNING_T2V_REPO = "lightx2v/Wan2.2-Lightning"
LIGHTNING_T2V_DIR = "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1"

LIGHTNING_4_STEPS = Recipe("lightning", steps=4, guidance=(1.0, 1.0), flow_shift=5.0, max_steps=8, max_guidance=1.0)
AREA_480P = 832 * 480
AREA_720P = 1280 * 720

MODELS: dict[str, ModelSpec] = {
    I2V_A14B: ModelSpec(
        model_id=I2V_A14B,
        description="Wan2.2 image-to-video, 2×14B experts (MoE), 480p/720p, 16 fps",
        task="i2v", pipeline="WanImageToVideoPipeline", experts=2, boundary_ratio=0.9,
        vae_scale=8, patch_size=2, fps=16, max_frames=81, max_area=AREA_480P, max_area_hd=AREA_720P,
        text_size=(832, 480),
        base=Recipe("base", steps=40, guidance=(3.5, 3.5), flow_shift=5.0, max_steps=50, max_guidance=10.0,
                    step_cache="first_block"),
        lightning=LIGHTNING_4_STEPS,
        lightning_loras=(LoraRef(LIGHTX2V_REPO, LIGHTX2V_FILE, 3.0, "high_noise"),
                         LoraRef(LIGHTX2V_REPO, LIGHTX2V_FILE, 1.0, "low_noise")),
        aliases=("wan", "wan2.2-i2v-a14b", "i2v-a14b"),
    ),
    TI2V_5B: ModelSpec(
        model_id=TI2V_5B,
        description="Wan2.2 text/image-to-video, 5B dense, 720p (1280×704), 24 fps — fits 24 GB cards",
        task="ti2v", pipeline="WanImageToVideoPipeline", experts=1, boundary_ratio=None,
        vae_scale=16, patch_size=2, fps=24, max_frames=121, max_area=1280 * 704, max_area_hd=1280 * 704,
        text_size=(1280, 704),
        base=Recipe("base", steps=50, guidance=(5.0, 5.0), flow_shift=5.0, max_steps=50, max_guidance=10.0,
                    step_cache="first_block"),
        expand_timesteps=True, params_b=5.0,
        aliases=("wan-5b", "wan2.2-ti2v-5b", "ti2v-5b"),
    ),
    T2V_A14B: ModelSpec(
        model_id=T2V_A14B,
        description="Wan2.2 text-to-video, 2×14B experts (MoE), 480p/720p, 16 fps",
        task="t2v", pipeline="WanPipeline", experts=2, boundary_ratio=0.875,
        vae_scale=8, patch_size=2, fps=16, max_frames=81, max_area=AREA_480P, max_area_hd=AREA_720P,
        text_size=(832, 480),
        base=Recipe("base", steps=40, guidance=(3.0, 4.0), flow_shift=12.0, max_steps=50, max_guidance=10.0,
                    step_cache="first_block"),
        lightning=LIGHTNING_4_STEPS,
        lightning_loras=(LoraRef(LIGHTNING_T2V_REPO, f"{LIGHTNING_T2V_DIR}/high_noise_model.safetensors", 1.0,
                                 "high_noise"),
                         LoraRef(LIGHTNING_T2V_REPO, f"{LIGHTNING_T2V_DIR}/low_noise_model.safetensors", 1.0,
                                 "low_noise")),
        aliases=("wan-t2v", "wan2.2-t2v-a14b", "t2v-a14b"),
    ),
}
DEFAULT_MODEL_ID = I2V_A14B


def default_spec() -> ModelSpec:
    """The default model's entry (the size rule and fps of a model outside the registry fall back to it)."""
    return MODELS[DEFAULT_MODEL_ID]


def model_spec(model: str) -> ModelSpec | None:
    """The registry entry for a hub id or alias; None for anything else (e.g. a local folder)."""
    if model in MODELS:
        return MODELS[model]
    low = model.lower()
    return next((s for s in MODELS.values() if low in s.aliases or low == s.model_id.lower()), None)


# --- the schedule ---------------------------------------------------------------------------------------------


def flow_timesteps(steps: int, shift: float) -> list[int]:
    """The timesteps of diffusers' flow-matching UniPC (`use_flow_sigmas=True`) for `steps` steps and `shift`,
    computed as the scheduler does (a test pins them against it): σ evenly spaced from 1 towards 1/1000,
    shifted by s·σ / (1 + (s − 1)·σ), the first nudged just below 1, times 1000, truncated."""
    import numpy as np

    n = NUM_TRAIN_TIMESTEPS
    sigmas = np.linspace(1, 1 / n, steps + 1)[:-1]
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    if abs(sigmas[0] - 1) < 1e-6:
        sigmas[0] -= 1e-6
    return [int(t) for t in (sigmas * n)]


def expert_per_step(timesteps: list[int], boundary_ratio: float | None) -> list[str]:
    """Which expert denoises each step: t ≥ boundary·1000 is high-noise (diffusers' WanPipeline rule)."""
    if boundary_ratio is None:
        return ["transformer"] * len(timesteps)
    return ["high_noise" if t >= boundary_ratio * NUM_TRAIN_TIMESTEPS else "low_noise" for t in timesteps]
