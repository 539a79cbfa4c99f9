"""What one render samples with: the active recipe applied to a plan, and the recipe as one JSON object.

The rule, in one place (`resolve_sampling`):
- a plan keeps what the person asked; the templates' own steps and guidance are Lightning values
  (4–6 steps, guidance 1/1), so a plan that still has its template's steps (or its template's guidance
  pair) gets the base recipe's default when the base recipe runs (40 steps, guidance 3.5/3.5 for I2V-A14B);
  with the Lightning recipe the template's values are used as they are;
- anything else the person asked for is kept, clamped into the recipe's limits with a note: steps up to
  `max_steps` (8 with Lightning, 50 base), guidance up to `max_guidance` (10 base; 1 with Lightning fused,
  because the Lightning LoRA is CFG-distilled: classifier-free guidance would double the cost and burn the clip);
- frames are 4k+1 at the model's fps (a plan keeps `duration_s`: 5 s is 81 frames at 16 fps, 121 at 24 fps);
- the flow shift is VIVIDFLOW_WAN_FLOW_SHIFT, else the recipe's.
A model outside the registry (a local folder without VIVIDFLOW_WAN_DEFAULTS_FROM) has no recipe: the plan's
steps and guidance as written, the folder's own scheduler shift, the default model's fps.

Light: no torch import (`python -m generation recipe` prints `describe_recipe` without loading weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generation.specs import SCHEDULER, default_spec, expert_per_step, flow_timesteps

if TYPE_CHECKING:
    from agent.plan import MotionPlan
    from generation.config import GenerationConfig
    from generation.specs import Recipe


@dataclass(frozen=True)
class Sampling:
    """The values a render runs with, and why they differ from the plan's (`notes`)."""

    recipe: str | None  # "lightning" | "base" | None (a model outside the registry)
    steps: int
    guidance: tuple[float, float]  # (high-noise expert, low-noise expert); one-expert models use the first
    flow_shift: float | None  # None: the scheduler's own
    fps: int
    num_frames: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "steps": self.steps, "guidance_scale": self.guidance[0],
                "guidance_scale_2": self.guidance[1], "flow_shift": self.flow_shift, "fps": self.fps,
                "num_frames": self.num_frames, "notes": list(self.notes)}


def resolve_sampling(plan: MotionPlan, cfg: GenerationConfig) -> Sampling:
    """The steps, guidance, shift, fps and frames a render of `plan` runs with under `cfg` (rule: module docstring)."""
    from agent.plan import frames_for
    from agent.templates import get_template

    spec, recipe = cfg.spec, cfg.recipe
    notes: list[str] = []
    steps, guidance = plan.steps, (plan.guidance_scale, plan.guidance_scale_2)
    if recipe is not None and recipe.name == "base":
        template = get_template(plan.template)
        if steps == template.steps:
            steps = recipe.steps
        if guidance == tuple(template.guidance):
            guidance = recipe.guidance
    if recipe is not None:
        steps, guidance = _clamp_to_recipe(steps, guidance, recipe, notes)
    fps = (spec or default_spec()).fps
    num_frames = frames_for(plan.duration_s, fps)
    if spec is not None and num_frames > spec.max_frames:
        fitted = (spec.max_frames - 1) // 4 * 4 + 1
        notes.append(f"{num_frames} frames is more than {spec.model_id} renders: {fitted} frames")
        num_frames = fitted
    return Sampling(
        recipe=recipe.name if recipe is not None else None, steps=int(steps), guidance=(float(guidance[0]),
        float(guidance[1])), flow_shift=cfg.effective_flow_shift(), fps=fps, num_frames=num_frames, notes=tuple(notes),
    )


def _clamp_to_recipe(
    steps: int, guidance: tuple[float, float], recipe: Recipe, notes: list[str]
) -> tuple[int, tuple[float, float]]:
    if steps > recipe.max_steps:
        why = " (the Lightning LoRA was distilled for 4)" if recipe.name == "lightning" else ""
        notes.append(f"{steps} steps is more than the {recipe.name} recipe runs: set to {recipe.max_steps}{why}")
        steps = recipe.max_steps
    top = max(guidance)
    if top > recipe.max_guidance:
        if recipe.cfg_distilled:
            notes.append(
                f"guidance {top:g} is clamped to {recipe.max_guidance:g}: the Lightning LoRA is CFG-distilled "
                "(trained to run without classifier-free guidance); turn Lightning off for real guidance"
            )
        else:
            notes.append(f"guidance {top:g} is past the {recipe.name} recipe's maximum {recipe.max_guidance:g}: "
                         f"set to {recipe.max_guidance:g}")
        guidance = (min(guidance[0], recipe.max_guidance), min(guidance[1], recipe.max_guidance))
    return steps, guidance


def describe_recipe(cfg: GenerationConfig) -> dict[str, Any]:
    """The resolved recipe of `cfg` as one JSON-able object, without loading any weights."""
    from generation.config import ConfigError

    spec, recipe = cfg.spec, cfg.recipe
    if spec is None or recipe is None:
        raise ConfigError(
            f"model {cfg.model!r} is not in the registry: name one (VIVIDFLOW_WAN_MODEL or --model) or say which "
            "registry model a local folder is (VIVIDFLOW_WAN_DEFAULTS_FROM)"
        )
    shift = cfg.effective_flow_shift()
    boundary = cfg.effective_boundary_ratio() if spec.experts == 2 else None
    timesteps = flow_timesteps(recipe.steps, shift)
    return {
        "model": spec.model_id,
        "recipe": recipe.name,
        "experts": spec.experts,
        "boundary_ratio": boundary,
        "flow_shift": shift,
        "steps": recipe.steps,
        "max_steps": recipe.max_steps,
        "guidance": list(recipe.guidance),
        "max_guidance": recipe.max_guidance,
        "scheduler": SCHEDULER,
        "timesteps": timesteps,
        "expert_per_step": expert_per_step(timesteps, boundary),
        "fps": spec.fps,
        "max_frames": spec.max_frames,
        "size_multiple": spec.size_multiple,
        "max_area": cfg.effective_max_area(),
        "loras": [lora.to_dict() for lora in cfg.effective_loras()],
        # the speed switches (WanSettings fields when present; these defaults otherwise)
        "attention": getattr(cfg, "attention", "auto"),
        "quantization": cfg.quantization,
        "compile": getattr(cfg, "compile", False),
        "cache": getattr(cfg, "step_cache", getattr(cfg, "cache", "none")),
    }
