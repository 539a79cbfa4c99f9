"""The model registry and its recipes drive the config: specs, Lightning LoRAs, the recipe a switch selects.

No torch here: the registry, the config and `python -m generation recipe` load no weights.
"""

from __future__ import annotations

import pytest

from generation.config import GenerationConfig
from generation.specs import (
    DEFAULT_MODEL_ID,
    I2V_A14B,
    LIGHTX2V_FILE,
    LIGHTX2V_REPO,
    MODELS,
    T2V_A14B,
    TI2V_5B,
    model_spec,
)


def test_registry_defaults():
    spec = model_spec(DEFAULT_MODEL_ID)
    assert spec is model_spec("wan2.2-i2v-a14b") and spec is model_spec("wan")
    assert spec.boundary_ratio == 0.9 and spec.fps == 16 and spec.max_area == 832 * 480 and spec.size_multiple == 16
    assert (spec.base.steps, spec.base.guidance, spec.base.flow_shift) == (40, (3.5, 3.5), 5.0)
    assert (spec.lightning.steps, spec.lightning.guidance, spec.lightning.flow_shift) == (4, (1.0, 1.0), 5.0)
    cfg = GenerationConfig()
    high, low = cfg.effective_loras()  # the lightx2v file into both experts, 3.0 high / 1.0 low
    assert (high.source, high.weight_name, high.scale, high.expert) == (LIGHTX2V_REPO, LIGHTX2V_FILE, 3.0, "high_noise")
    assert (low.source, low.weight_name, low.scale, low.expert) == (LIGHTX2V_REPO, LIGHTX2V_FILE, 1.0, "low_noise")
    assert cfg.recipe is spec.lightning and cfg.effective_max_area() == 832 * 480
    assert GenerationConfig(lightning=False).effective_loras() == ()


def test_lightning_off_gives_the_base_recipe():
    cfg = GenerationConfig.from_env({"VIVIDFLOW_WAN_LIGHTNING": "0"})
    assert cfg.recipe is MODELS[I2V_A14B].base
    assert (cfg.recipe.steps, cfg.recipe.guidance, cfg.effective_flow_shift()) == (40, (3.5, 3.5), 5.0)
    assert cfg.effective_loras() == ()


@pytest.mark.parametrize("model, lightning, shift", [
    (I2V_A14B, True, 5.0), (I2V_A14B, False, 5.0), (TI2V_5B, True, 5.0), (T2V_A14B, True, 5.0), (T2V_A14B, False, 12.0),
])
def test_flow_shift_comes_from_the_recipe_unless_overridden(model, lightning, shift):
    cfg = GenerationConfig(model=model, lightning=lightning)
    assert cfg.effective_flow_shift() == shift
    assert cfg.replace(flow_shift=3.0).effective_flow_shift() == 3.0


def test_a_model_without_lightning_runs_its_base_recipe_and_no_lora():
    cfg = GenerationConfig(model=TI2V_5B, lightning=True)
    assert cfg.recipe is MODELS[TI2V_5B].base and cfg.effective_loras() == ()
    assert cfg.effective_boundary_ratio() is None and cfg.effective_max_area() == 1280 * 704


def test_a_folder_outside_the_registry_has_no_recipe(tmp_path):
    cfg = GenerationConfig(model=str(tmp_path))
    assert cfg.spec is None and cfg.recipe is None
    assert cfg.effective_flow_shift() is None and cfg.effective_boundary_ratio() is None
    assert cfg.replace(defaults_from="ti2v-5b").recipe is MODELS[TI2V_5B].base


# --- the recipe applied to a plan (generation.sampling) ----------------------------------------------------


def plan_of(**changes):
    from agent.compiler import default_plan

    return default_plan("portrait_subtle", seed=1).with_changes(**changes)


def sampling(plan, **cfg):
    from generation.sampling import resolve_sampling

    return resolve_sampling(plan, GenerationConfig(**cfg))


def test_template_defaults_become_the_base_recipe_defaults():
    plan = plan_of()  # the template's Lightning values: 4 steps, guidance 1/1
    base = sampling(plan, lightning=False)
    assert (base.recipe, base.steps, base.guidance, base.flow_shift, base.notes) == ("base", 40, (3.5, 3.5), 5.0, ())
    t2v = sampling(plan, model=T2V_A14B, lightning=False)
    assert (t2v.steps, t2v.guidance, t2v.flow_shift) == (40, (3.0, 4.0), 12.0)
    fast = sampling(plan)
    assert (fast.recipe, fast.steps, fast.guidance, fast.flow_shift, fast.notes) == ("lightning", 4, (1.0, 1.0), 5.0, ())


def test_what_the_person_asked_is_kept_within_the_recipe():
    s = sampling(plan_of(steps=30, guidance_scale=6.0, guidance_scale_2=5.0), lightning=False)
    assert (s.steps, s.guidance, s.notes) == (30, (6.0, 5.0), ())
    s = sampling(plan_of(steps=50, guidance_scale=15.0, guidance_scale_2=4.0), lightning=False)
    assert (s.steps, s.guidance) == (50, (10.0, 4.0))
    assert s.notes == ("guidance 15 is past the base recipe's maximum 10: set to 10",)


def test_lightning_clamps_steps_and_guidance_with_a_note():
    s = sampling(plan_of(steps=12, guidance_scale=3.5, guidance_scale_2=3.0))
    assert (s.recipe, s.steps, s.guidance) == ("lightning", 8, (1.0, 1.0))
    assert s.notes[0] == "12 steps is more than the lightning recipe runs: set to 8 (the Lightning LoRA was distilled for 4)"
    assert "guidance 3.5 is clamped to 1" in s.notes[1] and "the Lightning LoRA is CFG-distilled" in s.notes[1]


@pytest.mark.parametrize("model, duration, fps, frames", [
    (I2V_A14B, 5.0, 16, 81), (I2V_A14B, 3.0, 16, 49), (TI2V_5B, 5.0, 24, 121), (TI2V_5B, 0.5, 24, 13),
])
def test_frames_are_4k_plus_1_at_the_models_fps(model, duration, fps, frames):
    s = sampling(plan_of(duration_s=duration), model=model)
    assert (s.fps, s.num_frames) == (fps, frames)


def test_a_folder_outside_the_registry_runs_the_plan_as_written(tmp_path):
    plan = plan_of(steps=12, guidance_scale=3.5)
    s = sampling(plan, model=str(tmp_path))
    assert (s.recipe, s.steps, s.guidance, s.flow_shift, s.fps, s.num_frames) == (None, 12, (3.5, 1.0), None, 16, 49)


# --- python -m generation recipe -------------------------------------------------------------------------


@pytest.fixture
def clean_wan_env(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("VIVIDFLOW_WAN_")]:
        monkeypatch.delenv(name)


def recipe_json(capsys, *argv):
    import json

    from generation.__main__ import main

    assert main(["recipe", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_recipe_a14b_lightning_is_shift_5_on_lightnings_timesteps(clean_wan_env, capsys):
    r = recipe_json(capsys)
    assert (r["model"], r["recipe"], r["experts"], r["boundary_ratio"]) == (I2V_A14B, "lightning", 2, 0.9)
    assert (r["flow_shift"], r["steps"], r["guidance"], r["scheduler"]) == (5.0, 4, [1.0, 1.0], "UniPCMultistepScheduler")
    assert r["timesteps"] == [999, 937, 833, 625]  # Lightning's 1000 / 937.5 / 833.3 / 625
    assert r["expert_per_step"] == ["high_noise", "high_noise", "low_noise", "low_noise"]
    assert (r["fps"], r["size_multiple"], r["max_area"]) == (16, 16, 832 * 480)
    assert [lo["scale"] for lo in r["loras"]] == [3.0, 1.0]
    assert {"attention", "quantization", "compile", "cache"} <= set(r)


@pytest.mark.parametrize("model, experts, boundary, shift, steps, guidance, fps, multiple, high_steps", [
    (I2V_A14B, 2, 0.9, 5.0, 40, [3.5, 3.5], 16, 16, 15),
    (TI2V_5B, 1, None, 5.0, 50, [5.0, 5.0], 24, 32, None),
    (T2V_A14B, 2, 0.875, 12.0, 40, [3.0, 4.0], 16, 16, 26),
])
def test_recipe_base_of_every_model(clean_wan_env, capsys, model, experts, boundary, shift, steps, guidance, fps,
                                    multiple, high_steps):
    from generation.specs import flow_timesteps

    r = recipe_json(capsys, "--model", model, "--no-lightning")
    assert (r["model"], r["recipe"], r["experts"], r["boundary_ratio"], r["flow_shift"]) == (
        model, "base", experts, boundary, shift)
    assert (r["steps"], r["guidance"], r["fps"], r["size_multiple"], r["loras"]) == (steps, guidance, fps, multiple, [])
    assert r["timesteps"] == flow_timesteps(steps, shift) and len(r["timesteps"]) == steps
    if high_steps is None:
        assert r["expert_per_step"] == ["transformer"] * steps
    else:
        assert r["expert_per_step"] == ["high_noise"] * high_steps + ["low_noise"] * (steps - high_steps)


def test_recipe_from_the_environment_and_through_vividflow(clean_wan_env, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "VIVIDFLOW_WAN_MODEL": str(tmp_path),
           "VIVIDFLOW_WAN_DEFAULTS_FROM": "t2v-a14b", "VIVIDFLOW_WAN_FLOW_SHIFT": "8"}
    proc = subprocess.run([sys.executable, "-m", "vividflow", "recipe"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert (r["model"], r["recipe"], r["flow_shift"], r["timesteps"][:2]) == (T2V_A14B, "lightning", 8.0, [999, 960])
    env.pop("VIVIDFLOW_WAN_DEFAULTS_FROM")
    proc = subprocess.run([sys.executable, "-m", "generation", "recipe"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "not in the registry" in proc.stderr and "VIVIDFLOW_WAN_DEFAULTS_FROM" in proc.stderr
