"""Every recipe, run on a tiny pipeline of its model's shape: the scheduler's timesteps and the expert that runs
each step (forward calls counted per transformer per step) are what `generation.specs` says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.templates import get_template
from generation.config import GenerationConfig
from agent.plan import frames_for
from generation.specs import EXPERT_COMPONENT, I2V_A14B, MODELS, TI2V_5B, expert_per_step, flow_timesteps

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import cached_tiny_pipeline_dir  # noqa: E402
from generation import wan, wan_load  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")

RECIPES = [(I2V_A14B, True), (I2V_A14B, False), (TI2V_5B, False)]
KIND = {I2V_A14B: "i2v", TI2V_5B: "ti2v"}  # the tiny pipeline of each model's shape


def picture() -> Image.Image:
    return Image.fromarray((np.random.RandomState(0).rand(32, 32, 3) * 255).astype("uint8"))


@pytest.mark.parametrize("model, lightning", RECIPES, ids=lambda v: str(v).split("/")[-1])
def test_each_recipe_runs_its_timesteps_on_its_experts(model, lightning, monkeypatch, tmp_path):
    spec = MODELS[model]
    recipe = spec.recipe(lightning)
    # The Lightning LoRA files are not here (no network): the schedule is what is under test, not the LoRA.
    monkeypatch.setattr(GenerationConfig, "effective_loras", lambda self: self.loras)
    cfg = GenerationConfig(model=str(cached_tiny_pipeline_dir(KIND[model])), defaults_from=model, lightning=lightning,
                           device="cpu", max_area=spec.size_multiple ** 2, max_sequence_length=16)
    backend = wan.WanBackend(loaded=wan_load.load_pipeline(cfg))
    pipe = backend.pipe
    calls: list[tuple[str, int]] = []  # (component, timestep) per forward call
    for component in ("transformer", "transformer_2"):
        model_ = getattr(pipe, component)
        if model_ is not None:
            model_.register_forward_pre_hook(
                lambda m, args, kwargs, name=component: calls.append((name, int(kwargs["timestep"].max()))),
                with_kwargs=True,
            )

    plan = get_template("portrait_subtle").default_plan(seed=1).with_changes(duration_s=0.5)
    result = backend.generate(plan, picture(), out_dir=tmp_path)

    expected = flow_timesteps(recipe.steps, recipe.flow_shift)
    experts = expert_per_step(expected, spec.boundary_ratio)
    assert pipe.scheduler.timesteps.tolist() == expected  # the scheduler computed what the spec says
    assert result.params["timesteps"] == expected and result.params["expert_per_step"] == experts
    assert (result.params["recipe"], result.params["steps"]) == (recipe.name, recipe.steps)
    per_call = 2 if recipe.guidance[0] > 1 else 1  # classifier-free guidance: a second (negative) pass
    steps = [t for i, (_, t) in enumerate(calls) if i % per_call == 0]
    assert steps == expected and len(calls) == per_call * recipe.steps
    ran = [calls[i * per_call][0] for i in range(recipe.steps)]
    assert ran == [EXPERT_COMPONENT.get(e, e) for e in experts]
    assert all(calls[i][0] == calls[i - i % per_call][0] for i in range(len(calls)))  # both passes: same expert
    # the model's size rule, frames at its fps, the MP4 at its fps
    assert result.width % spec.size_multiple == 0 and result.height % spec.size_multiple == 0
    assert (result.fps, result.num_frames) == (spec.fps, frames_for(0.5, spec.fps))
