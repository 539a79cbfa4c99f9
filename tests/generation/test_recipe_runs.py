"""Every recipe, run on a tiny pipeline of its model's shape: the scheduler's timesteps and the expert that runs
each step (forward calls counted per transformer per step) are what `generation.specs` says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.compiler import default_plan
from generation.config import GenerationConfig
from agent.plan import frames_for
from generation.specs import EXPERT_COMPONENT, I2V_A14B, MODELS, T2V_A14B, TI2V_5B, expert_per_step, flow_timesteps

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import cached_tiny_pipeline_dir  # noqa: E402
from generation import wan, wan_load  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")

RECIPES = [(I2V_A14B, True), (I2V_A14B, False), (TI2V_5B, False), (T2V_A14B, True), (T2V_A14B, False)]
MODEL = {"i2v": I2V_A14B, "ti2v": TI2V_5B, "t2v": T2V_A14B}  # the model of each tiny pipeline's shape
_BACKENDS: dict[tuple[str, bool], wan.WanBackend] = {}


def backend_for(kind: str, lightning: bool = False) -> wan.WanBackend:
    """The tiny `kind` pipeline loaded as its registry model (once per module)."""
    from unittest import mock

    if (kind, lightning) not in _BACKENDS:
        cfg = GenerationConfig(model=str(cached_tiny_pipeline_dir(kind)), defaults_from=MODEL[kind],
                               lightning=lightning, device="cpu", max_area=64 * 64, max_sequence_length=16)
        # The Lightning LoRA files are not here (no network): the schedule is what is under test, not the LoRA.
        with mock.patch.object(GenerationConfig, "effective_loras", lambda self: self.loras):
            _BACKENDS[kind, lightning] = wan.WanBackend(loaded=wan_load.load_pipeline(cfg))
    return _BACKENDS[kind, lightning]


def picture() -> Image.Image:
    return Image.fromarray((np.random.RandomState(0).rand(32, 32, 3) * 255).astype("uint8"))


@pytest.mark.parametrize("model, lightning", RECIPES, ids=lambda v: str(v).split("/")[-1])
def test_each_recipe_runs_its_timesteps_on_its_experts(model, lightning, tmp_path):
    spec = MODELS[model]
    recipe = spec.recipe(lightning)
    backend = backend_for(next(k for k, m in MODEL.items() if m == model), lightning)
    pipe = backend.pipe
    calls: list[tuple[str, int]] = []  # (component, timestep) per forward call
    hooks = [
        getattr(pipe, component).register_forward_pre_hook(
            lambda m, args, kwargs, name=component: calls.append((name, int(kwargs["timestep"].max()))),
            with_kwargs=True,
        )
        for component in ("transformer", "transformer_2") if getattr(pipe, component) is not None
    ]
    plan = default_plan("portrait_subtle", seed=1).with_changes(duration_s=0.5)
    try:
        result = backend.generate(plan, picture() if spec.takes_image else None, out_dir=tmp_path)
    finally:
        for hook in hooks:
            hook.remove()

    expected = flow_timesteps(recipe.steps, recipe.flow_shift)
    experts = expert_per_step(expected, spec.boundary_ratio)
    used = backend.loaded.pipeline_for(spec.takes_image)
    assert used.scheduler.timesteps.tolist() == expected  # the scheduler computed what the spec says
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


# --- text → video ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, pipeline, size", [("ti2v", "WanPipeline", (64, 32)), ("t2v", "WanPipeline", (80, 48))])
def test_a_text_only_plan_renders_with_no_image(kind, pipeline, size, tmp_path, frames_seen):
    from generation.export import probe_video

    backend = backend_for(kind)
    plan = default_plan("landscape", seed=5).with_changes(duration_s=0.5, steps=5, prompt="water, light")
    result = backend.generate(plan, None, out_dir=tmp_path)
    spec = backend.loaded.spec
    assert (result.width, result.height) == size  # the model's landscape size (text_size) within the max area
    assert (result.fps, result.num_frames) == (spec.fps, frames_for(0.5, spec.fps))
    p = result.params
    assert (p["pipeline"], p["input_width"], p["input_height"], p["steps"]) == (pipeline, None, None, 5)
    info = probe_video(result.video_path)
    assert (info["width"], info["height"], info["num_frames"]) == (*size, result.num_frames)
    assert frames_seen[0].shape == (result.num_frames, size[1], size[0], 3) and frames_seen[0].std() > 0


def test_ti2v_takes_a_picture_and_words_alone_through_one_load(tmp_path):
    backend = backend_for("ti2v")
    plan = default_plan("landscape", seed=5).with_changes(duration_s=0.5, steps=4)
    with_picture = backend.generate(plan, picture(), out_dir=tmp_path)
    words = backend.generate(plan, None, out_dir=tmp_path)
    assert (with_picture.params["pipeline"], words.params["pipeline"]) == ("WanImageToVideoPipeline", "WanPipeline")
    assert backend.loaded.pipeline_for(False).transformer is backend.pipe.transformer  # shared, not copied


def test_words_alone_on_an_image_to_video_model_says_what_to_do(tmp_path):
    from generation.backend import PictureRequired

    backend = backend_for("i2v")
    plan = default_plan("landscape", seed=5).with_changes(duration_s=0.5)
    with pytest.raises(PictureRequired, match="Wan2.2-I2V-A14B-Diffusers animates a picture: upload one, or use a "
                                              "text-to-video model"):
        backend.generate(plan, None, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_picture_given_to_text_to_video_is_left_out_with_a_note(tmp_path):
    backend = backend_for("t2v")
    plan = default_plan("landscape", seed=5).with_changes(duration_s=0.5, steps=4)
    result = backend.generate(plan, picture(), out_dir=tmp_path)
    assert result.params["notes"] == ["Wan2.2-T2V-A14B-Diffusers renders from words alone: the picture was not used"]
    assert result.params["input_width"] is None and result.params["pipeline"] == "WanPipeline"
