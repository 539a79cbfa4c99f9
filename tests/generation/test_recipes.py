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
