"""Memory-aware choices: the pure plan over a table of cards, the FLOP estimate, and the wiring (a monkeypatched
`torch.cuda.mem_get_info`, group offload and VAE tiling on the tiny CPU pipeline, the plan in the record)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.backend import BackendUnavailable
from generation.config import GenerationConfig
from generation.specs import I2V_A14B, MODELS, T2V_A14B, TI2V_5B
from generation.wan_memory import (
    GiB,
    SHAPES,
    MemoryPlan,
    choose_offload,
    choose_vae_tiling,
    forward_flops,
    plan_memory,
    tokens,
    workloads_for,
)

A14B, TI2V = "Wan2.2-I2V-A14B-Diffusers", "Wan2.2-TI2V-5B-Diffusers"


def card(total_gib: float, capability: tuple[int, int], **kw) -> MemoryPlan:
    """The plan for the default model on a card with `total_gib`, 0.5 GiB of it taken by the CUDA context."""
    return plan_memory(int((total_gib - 0.5) * GiB), int(total_gib * GiB), capability, workloads_for(I2V_A14B), **kw)


@pytest.mark.parametrize("total, cc, tier, precision, offload, tiling", [
    (24, (8, 9), TI2V, "fp8", "none", True),     # RTX 4090: the 24 GB tier, resident, 720p → tiled
    (24, (8, 6), TI2V, "bf16", "group", True),   # RTX 3090: no FP8; bf16 fits its experts, not everything
    (32, (8, 9), TI2V, "fp8", "none", True),     # A14B's experts + activations (31.5 GiB) do not fit
    (40, (8, 0), A14B, "int8", "group", True),   # A100 40 GB: bf16 experts too big, int8 streamed
    (48, (8, 9), A14B, "fp8", "none", False),    # L40S: everything resident at 480p, untiled
    (48, (8, 6), A14B, "int8", "none", False),   # A6000
    (80, (8, 0), A14B, "bf16", "none", False),   # A100 80 GB: bf16 fits whole
    (80, (9, 0), A14B, "fp8", "none", False),    # H100
    (141, (9, 0), A14B, "fp8", "none", False),   # H200
])
def test_plan_over_a_table_of_cards(total, cc, tier, precision, offload, tiling):
    plan = card(total, cc)
    assert (plan.tier.split("/")[-1], plan.precision, plan.offload, plan.vae_tiling) == (
        tier, precision, offload, tiling)
    assert plan.fits and plan.need_bytes <= plan.free_bytes
    assert plan.message == f"plan: {tier}, {precision}, offload {offload}, VAE tiling {'on' if tiling else 'off'}"
    assert plan.to_dict()["reasons"] == list(plan.reasons) and len(plan.reasons) >= 5


def test_a_card_too_small_for_any_tier_names_the_tier_and_the_memory_it_needs():
    plan = card(8, (8, 6))
    assert not plan.fits and plan.tier is None and plan.precision is None
    assert "too small" in plan.message and TI2V_5B in plan.message and "9.5 GiB free (int8)" in plan.message
    assert round(plan.need_bytes / GiB, 1) == 9.5
    assert f"{A14B} does not fit" in plan.reasons[1] and f"{TI2V} does not fit" in plan.reasons[2]


def test_set_precision_and_offload_are_kept_and_sized():
    plan = card(80, (9, 0), precision="bf16")
    assert (plan.tier, plan.precision, plan.offload) == (I2V_A14B, "bf16", "none")
    assert "precision bf16 as set" in plan.reasons
    plan = card(24, (8, 9), offload="group")  # streaming the experts lets A14B run on a 24 GB card
    assert (plan.tier, plan.precision, plan.offload, plan.vae_tiling) == (I2V_A14B, "fp8", "group", True)
    assert card(24, (8, 9), offload="model").tier == I2V_A14B  # one 14 GB expert at a time + activations
    assert card(16, (8, 9), offload="model").tier == TI2V_5B  # … does not fit 16 GB


def test_workloads_follow_the_task():
    assert [w.spec.model_id for w in workloads_for(I2V_A14B)] == [I2V_A14B, TI2V_5B]
    assert [w.spec.model_id for w in workloads_for("wan-t2v")] == [T2V_A14B, TI2V_5B]
    assert [w.spec.model_id for w in workloads_for(TI2V_5B)] == [TI2V_5B]
    assert workloads_for("/some/local/folder") == []
    first = workloads_for(I2V_A14B, max_area=1280 * 720)[0]
    assert (first.frames, first.area) == (81, 1280 * 720)


def test_flop_estimate_from_the_transformer_config():
    a14b = SHAPES[I2V_A14B]
    assert tokens(49, 480, 832, MODELS[I2V_A14B].size_multiple) == 13 * 30 * 52
    assert forward_flops(a14b, tokens(49, 480, 832, 16)) / 1e12 == pytest.approx(832, rel=0.005)
    assert forward_flops(a14b, tokens(81, 480, 832, 16)) / 1e12 == pytest.approx(1678, rel=0.005)
    config = {"num_layers": 40, "num_attention_heads": 40, "attention_head_dim": 128, "ffn_dim": 13824}
    from generation.wan_memory import TransformerShape

    assert TransformerShape.from_config(config) == a14b


def test_offload_and_tiling_choices():
    plan = card(24, (8, 6))
    assert choose_offload("auto", "cuda", plan) == "group" and choose_offload("model", "cuda", plan) == "model"
    assert choose_offload("group", "cpu", plan) == "none" and choose_offload("auto", "cuda", None) == "none"
    assert choose_vae_tiling("auto", "group", 64 * 64, plan) is True
    assert choose_vae_tiling("auto", "none", 64 * 64, None) is False
    assert choose_vae_tiling("auto", "none", 1280 * 720, None) is True
    assert choose_vae_tiling("off", "group", 1280 * 720, plan) is False and choose_vae_tiling("on", "none", 16, None)


# --- the wiring ------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def fake_cuda(monkeypatch, total_gib: float, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "mem_get_info",
                        lambda device=None: (int((total_gib - 0.5) * GiB), int(total_gib * GiB)))


def test_the_card_decides_through_mem_get_info(monkeypatch, caplog):
    from generation import choose, wan_load
    from generation.wan_memory import plan_for_config

    fake_cuda(monkeypatch, 80, (9, 0))
    with caplog.at_level("INFO", logger="generation.wan_memory"):
        plan = plan_for_config(GenerationConfig(model="wan"), "cuda")
    assert (plan.tier, plan.precision, plan.offload) == (I2V_A14B, "fp8", "none")
    assert "wan: memory: plan: Wan2.2-I2V-A14B-Diffusers, fp8, offload none" in caplog.text
    assert plan_for_config(GenerationConfig(model="wan"), "cpu") is None

    fake_cuda(monkeypatch, 24, (8, 9))  # the default A14B does not fit: the message names the tier that does
    with pytest.raises(BackendUnavailable, match=f"{I2V_A14B} does not fit.*{TI2V_5B} fits: set "
                                                 "VIVIDFLOW_WAN_MODEL=wan-5b"):
        choose.check_available("wan", GenerationConfig(model="wan"))
    choose.check_available("wan", GenerationConfig(model="wan-5b"))  # fits
    choose.check_available("wan", GenerationConfig(model="wan", cpu_offload="group"))  # streamed: fits

    # an LLM of this process holding 20 GiB: the availability check counts it as free (it is freed before a load)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(3.5 * GiB), 24 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 20 * GiB)
    choose.check_available("wan", GenerationConfig(model="wan-5b"))
    with pytest.raises(BackendUnavailable, match="too small"):
        plan_for_config(GenerationConfig(model="wan-5b"), "cuda")  # at load time, after the LLM is freed

    fake_cuda(monkeypatch, 8, (8, 6))
    with pytest.raises(BackendUnavailable, match=f"too small.*{TI2V_5B}, needs about 9.5 GiB"):
        wan_load.load_pipeline(GenerationConfig(model="wan"))  # refused before any weight is read
    monkeypatch.setattr(choose, "wan_weights_present", lambda cfg=None: True)
    assert choose.default_backend_name(GenerationConfig(model="wan"), "auto") == "preview"  # the preview still works


@pytest.fixture(scope="module")
def tiny_dir():
    from devtools.tiny_wan import cached_tiny_pipeline_dir

    return cached_tiny_pipeline_dir()


def tiny_config(tiny_dir, **changes) -> GenerationConfig:
    from devtools.tiny_wan import TINY_MAX_AREA

    return GenerationConfig(model=str(tiny_dir), lightning=False, max_area=TINY_MAX_AREA,
                            max_sequence_length=16).replace(**changes)


PLAN = MotionPlan.create(template="portrait_subtle", duration_s=0.5, prompt="the hair in the wind", seed=3,
                         steps=4, guidance_scale=1.0, guidance_scale_2=1.0)


def render(loaded, out_dir, frames_seen) -> np.ndarray:
    from generation import wan

    picture = Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8"))
    result = wan.WanBackend(loaded=loaded).generate(PLAN, picture, out_dir=out_dir)
    return frames_seen[-1], result


@pytest.mark.usefixtures("offline_single_torch_thread")
def test_plan_reaches_the_load_and_the_record_group_offload_renders_the_same(
        tiny_dir, monkeypatch, tmp_path, frames_seen):
    from diffusers.hooks.group_offloading import _get_group_onload_device

    from generation import wan_load
    from generation.wan_memory import place_pipeline

    plain = wan_load.load_pipeline(tiny_config(tiny_dir))
    assert (plain.offload, plain.memory_plan) == ("none", None)  # CPU: no plan, resident
    a, _ = render(plain, tmp_path / "a", frames_seen)

    plan = card(24, (8, 9))  # as if on a 4090 (TI2V-5B resident, tiled at 720p), with int8 as the precision
    plan = MemoryPlan(plan.tier, "int8", plan.offload, plan.vae_tiling, plan.need_bytes, plan.free_bytes,
                      plan.total_bytes, plan.capability, plan.reasons)
    monkeypatch.setattr(wan_load, "plan_for_config", lambda cfg, device: plan)
    planned = wan_load.load_pipeline(tiny_config(tiny_dir))
    assert planned.quantization.mode == "int8" and "memory plan chose int8" in planned.quantization.reason
    assert planned.memory_plan.vae_tiling is True  # the plan expects 720p clips; each call decides for its size
    _, result = render(planned, tmp_path / "b", frames_seen)
    assert result.params["memory_plan"] == plan.to_dict()
    assert result.params["speed"]["vae_tiling"]["value"] == "off"  # this 64-px clip decodes whole

    place_pipeline(plain.pipe, "group", "cpu")  # block-level hooks (streams need CUDA)
    assert _get_group_onload_device(plain.pipe.transformer) == torch.device("cpu")
    b, _ = render(plain, tmp_path / "c", frames_seen)
    assert np.array_equal(a, b)
