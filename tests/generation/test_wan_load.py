"""Loading the Wan backend: LoRA (both key formats, both experts), quantization, config, clear errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.config import ConfigError, GenerationConfig, LoraSpec, parse_loras
from generation.specs import BF16_TRANSFORMER_ID, DEFAULT_MODEL_ID

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import TINY_MAX_AREA, cached_tiny_pipeline_dir, save_tiny_lora  # noqa: E402
from generation import wan, wan_load  # noqa: E402
from generation.image import ImageError  # noqa: E402

MAX_LEN = 16


def tiny_config(**changes) -> GenerationConfig:
    base = GenerationConfig(
        model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=TINY_MAX_AREA, max_sequence_length=MAX_LEN
    )
    return base.replace(**changes)


def picture(w: int = 64, h: int = 64) -> Image.Image:
    return Image.fromarray((np.random.RandomState(0).rand(h, w, 3) * 255).astype("uint8"))


PLAN = MotionPlan.create(
    template="portrait_subtle", duration_s=0.5, prompt="the hair in the wind", negative_prompt="blur",
    guidance_scale=3.5, guidance_scale_2=3.0, seed=3,
)


# offline like production without a cache, one torch thread (tiny ops on 2 shared cores: ~10× faster)
pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("loras")
    save_tiny_lora(d / "high_diffusers.safetensors", "diffusers", seed=1)
    save_tiny_lora(d / "low_diffusers.safetensors", "diffusers", seed=2)
    save_tiny_lora(d / "high_lightx2v.safetensors", "lightx2v", seed=3)
    save_tiny_lora(d / "low_lightx2v.safetensors", "lightx2v", seed=4)
    save_tiny_lora(d / "wrong_width.safetensors", "diffusers", dim=40)  # a LoRA for another model size
    return d


def render(loaded, out_dir: Path, frames_seen) -> np.ndarray:
    """The float frames of PLAN rendered by `loaded` (seen by the `frames_seen` spy)."""
    wan.WanBackend(loaded=loaded).generate(PLAN, picture(), out_dir=out_dir)
    return frames_seen[-1]


def peft_layers(module) -> int:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sum(isinstance(m, BaseTunerLayer) for m in module.modules())


def state(module) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy().copy() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def base_weights():
    loaded = wan_load.load_pipeline(tiny_config())
    return state(loaded.pipe.transformer), state(loaded.pipe.transformer_2)


def changed(before: dict, after: dict) -> int:
    assert before.keys() == after.keys()
    return sum(not np.array_equal(before[k], after[k]) for k in before)


# --- LoRA ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["diffusers", "lightx2v"])
@pytest.mark.parametrize("expert", ["high_noise", "low_noise"])
def test_lora_fuses_into_its_expert_only(lora_dir, base_weights, fmt, expert):
    lora = LoraSpec(str(lora_dir / f"{expert.split('_')[0]}_{fmt}.safetensors"), scale=0.7, expert=expert)
    loaded = wan_load.load_pipeline(tiny_config(loras=(lora,)))
    high, low = state(loaded.pipe.transformer), state(loaded.pipe.transformer_2)
    target, other = (high, low) if expert == "high_noise" else (low, high)
    base_target, base_other = base_weights if expert == "high_noise" else base_weights[::-1]
    assert changed(base_target, target) == 16  # q, k, v, out of self- and cross-attention × 2 blocks
    assert changed(base_other, other) == 0
    assert peft_layers(loaded.pipe.transformer) == peft_layers(loaded.pipe.transformer_2) == 0
    assert loaded.describe()["loras"] == [{**lora.to_dict(), "fused": True}]


def test_lora_changes_output_and_fused_equals_unfused(lora_dir, tmp_path, frames_seen):
    loras = (
        LoraSpec(str(lora_dir / "high_lightx2v.safetensors"), scale=3.0, expert="high_noise"),
        LoraSpec(str(lora_dir), weight_name="low_diffusers.safetensors", scale=1.0, expert="low_noise"),
    )
    base = render(wan_load.load_pipeline(tiny_config()), tmp_path / "base", frames_seen)
    fused_loaded = wan_load.load_pipeline(tiny_config(loras=loras))
    fused = render(fused_loaded, tmp_path / "fused", frames_seen)
    assert peft_layers(fused_loaded.pipe.transformer) == peft_layers(fused_loaded.pipe.transformer_2) == 0

    unfused_loaded = wan_load.load_pipeline(tiny_config())
    wan_load.apply_loras(unfused_loaded.pipe, loras, fuse=False)  # the same function, adapters left active
    assert peft_layers(unfused_loaded.pipe.transformer) > 0 and peft_layers(unfused_loaded.pipe.transformer_2) > 0
    unfused = render(unfused_loaded, tmp_path / "unfused", frames_seen)

    assert np.abs(fused - base).max() > 1e-2  # the LoRA does something
    np.testing.assert_allclose(fused, unfused, atol=1e-5, rtol=0)


def test_lora_that_does_not_fit_is_a_clear_error(lora_dir, _isolated_home):
    import gc

    from diffusers import WanImageToVideoPipeline

    def pipelines_alive() -> int:
        gc.collect()
        return sum(type(o) is WanImageToVideoPipeline for o in gc.get_objects())

    before = pipelines_alive()
    bad = LoraSpec(str(lora_dir / "wrong_width.safetensors"), expert="low_noise")
    with pytest.raises(wan_load.LoraError) as e:
        wan_load.load_pipeline(tiny_config(loras=(bad,)))
    msg = str(e.value)
    assert "wrong_width.safetensors" in msg and "low_noise" in msg and "size mismatch" in msg
    assert not (Path(_isolated_home) / "media").exists()
    # the half-built pipeline is freed even while the caller still holds the exception
    assert pipelines_alive() == before


def test_lora_matching_no_layer_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other_model.safetensors"
    save_file(
        {"transformer.nowhere.proj.lora_A.weight": torch.zeros(4, 24),
         "transformer.nowhere.proj.lora_B.weight": torch.zeros(24, 4)},
        str(path),
    )
    with pytest.raises(wan_load.LoraError, match="other_model.safetensors.*high_noise"):
        wan_load.load_pipeline(tiny_config(loras=(LoraSpec(str(path)),)))


def test_missing_lora_file_and_uncached_hub_lora(tmp_path):
    with pytest.raises(wan_load.LoraError, match="not found"):
        wan_load.load_pipeline(tiny_config(loras=(LoraSpec(str(tmp_path / "nope.safetensors")),)))
    hub = LoraSpec("nobody/no-such-lora", weight_name="x.safetensors")
    with pytest.raises(wan_load.LoraError, match="HF_HUB_OFFLINE.*hf download nobody/no-such-lora"):
        wan_load.load_pipeline(tiny_config(loras=(hub,)))


# --- quantization ----------------------------------------------------------------------------------


def block_linears(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith("blocks.")]


def test_int8_weight_only_on_cpu_quantizes_the_blocks_linears_only_and_renders(tmp_path, frames_seen):
    from generation.wan_quant import tensor_bytes

    plain = wan_load.load_pipeline(tiny_config())
    q = wan_load.load_pipeline(tiny_config(quantization="int8"))
    assert q.quantization.mode == "int8" and q.quantization.experts == "Int8WeightOnlyConfig"
    for name in ("transformer", "transformer_2"):
        model, base = getattr(q.pipe, name), getattr(plain.pipe, name)
        blocks = block_linears(model)
        assert len(blocks) == 20  # q, k, v, out of self- and cross-attention + 2 FFN layers × 2 blocks
        quantized = sorted(n for n, p in model.named_parameters() if type(p).__name__ != "Parameter"
                           or type(p.data).__name__ != "Tensor")
        assert quantized == sorted(f"{n}.weight" for n in blocks)  # not the embedders, not proj_out
        assert all(type(model.get_submodule(n).weight).__name__ == "Int8Tensor" for n in blocks)
        before = sum(tensor_bytes(base.get_submodule(n).weight) for n in blocks)
        after = sum(tensor_bytes(model.get_submodule(n).weight) for n in blocks)
        assert after < 0.35 * before  # fp32 → int8 + per-row scales (rows are only 24 wide here)
        assert q.parameter_bytes[name] == plain.parameter_bytes[name] - before + after
        assert wan_load.parameter_bytes(model) == q.parameter_bytes[name]
    assert q.parameter_bytes["text_encoder"] < plain.parameter_bytes["text_encoder"]
    frames = render(q, tmp_path, frames_seen)
    assert frames.shape == (9, 64, 64, 3) and np.isfinite(frames).all()


def test_fp8_is_per_row_on_the_blocks_linears_only():
    from generation.wan_quant import FP8, is_block_linear, torchao_config
    from torchao.quantization import PerRow

    config = torchao_config(FP8)
    assert type(config).__name__ == "Float8DynamicActivationFloat8WeightConfig"
    assert config.granularity == [PerRow(), PerRow()]  # activations and weights, one scale per row
    model = wan_load.load_pipeline(tiny_config()).pipe.transformer
    chosen = [n for n, m in model.named_modules() if is_block_linear(m, n)]
    assert chosen == block_linears(model) and len(chosen) == 20
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert sorted(set(linears) - set(chosen)) == [
        "condition_embedder.text_embedder.linear_1", "condition_embedder.text_embedder.linear_2",
        "condition_embedder.time_embedder.linear_1", "condition_embedder.time_embedder.linear_2",
        "condition_embedder.time_proj", "proj_out",
    ]


def test_int8_with_lora_fuses_first_then_quantizes(lora_dir, tmp_path, frames_seen):
    lora = LoraSpec(str(lora_dir / "high_diffusers.safetensors"), scale=1.0, expert="high_noise")
    q = wan_load.load_pipeline(tiny_config(quantization="int8", loras=(lora,)))
    assert peft_layers(q.pipe.transformer) == 0
    assert type(q.pipe.transformer.blocks[0].attn1.to_q.weight).__name__ == "Int8Tensor"
    assert np.isfinite(render(q, tmp_path, frames_seen)).all()


def _mock_cuda(monkeypatch, capability):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


def test_fp8_is_selected_on_capability_8_9_and_up(monkeypatch):
    for cap in ((8, 9), (9, 0), (10, 0)):
        _mock_cuda(monkeypatch, cap)
        choice = wan_load.select_quantization("auto", "cuda")
        assert choice.mode == "fp8", cap
        assert choice.experts == "Float8DynamicActivationFloat8WeightConfig"
        assert choice.text_encoder == "Int8WeightOnlyConfig"
        assert "8.9" in choice.reason


def test_int8_on_older_gpus_and_none_on_cpu(monkeypatch):
    assert wan_load.select_quantization("auto", "cpu").mode == "none"
    assert wan_load.select_quantization("int8", "cpu").mode == "int8"
    with pytest.raises(ConfigError, match="fp8.*8.9"):
        wan_load.select_quantization("fp8", "cpu")
    _mock_cuda(monkeypatch, (8, 0))
    assert wan_load.select_quantization("auto", "cuda").mode == "int8"
    with pytest.raises(ConfigError, match="compute capability 8.0"):
        wan_load.select_quantization("fp8", "cuda")
    assert wan_load.select_quantization("none", "cuda").mode == "none"


# --- clear errors, nothing left behind -------------------------------------------------------------


@pytest.fixture(scope="module")
def backend():
    return wan.WanBackend(loaded=wan_load.load_pipeline(tiny_config()))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda tmp, gh: b"\x89PNG\r\n\x1a\n this is not an image", "not a readable image"),
        (lambda tmp, gh: picture(1, 1), "at least"),
        (lambda tmp, gh: gh.png_header_only(20000, 20000), "20000×20000|decompression bomb"),
        (lambda tmp, gh: str(tmp / "missing.png"), "not found"),
    ],
    ids=["corrupt-bytes", "1x1", "20000x20000", "missing-file"],
)
def test_bad_images_are_refused_and_leave_no_file(backend, tmp_path, gh, make, match):
    out = tmp_path / "out"
    started = time.perf_counter()
    with pytest.raises(ImageError, match=match):
        backend.generate(PLAN, make(tmp_path, gh), out_dir=out)
    assert time.perf_counter() - started < 5  # refused from the header, not after a 400 MP decode
    assert not out.exists() or not any(out.iterdir())


def test_unknown_model_id_offline_says_which_and_how_to_fix(_isolated_home):
    with pytest.raises(wan_load.ModelNotFound) as e:
        wan_load.load_pipeline(GenerationConfig(model="nobody/not-a-wan-model", lightning=False))
    msg = str(e.value)
    assert "nobody/not-a-wan-model" in msg and "HF_HUB_OFFLINE" in msg and "hf download" in msg
    assert not (Path(_isolated_home) / "media").exists()


def test_missing_or_wrong_local_folder(tmp_path):
    with pytest.raises(wan_load.ModelNotFound, match="no such folder"):
        wan_load.load_pipeline(GenerationConfig(model=str(tmp_path / "absent"), lightning=False))
    with pytest.raises(wan_load.ModelNotFound, match="model_index.json"):
        wan_load.load_pipeline(GenerationConfig(model=str(tmp_path), lightning=False))
    with pytest.raises(wan_load.ModelNotFound, match="transformer override.*nobody/no-transformer"):
        wan_load.load_pipeline(tiny_config(transformer="nobody/no-transformer"))


def test_default_lightning_lora_offline_is_a_clear_error():
    cfg = tiny_config(lightning=True, defaults_from=DEFAULT_MODEL_ID)
    assert [lo.scale for lo in cfg.effective_loras()] == [3.0, 1.0]
    with pytest.raises(wan_load.LoraError, match="Kijai/WanVideo_comfy.*VIVIDFLOW_WAN_LIGHTNING=0"):
        wan_load.load_pipeline(cfg)


# --- the config -------------------------------------------------------------------------------------


def test_config_from_env_reads_every_variable():
    env = {
        "VIVIDFLOW_WAN_MODEL": "wan",
        "VIVIDFLOW_WAN_TRANSFORMER": BF16_TRANSFORMER_ID,
        "VIVIDFLOW_WAN_LIGHTNING": "0",
        "VIVIDFLOW_WAN_LORAS": "low_noise:0.5:/loras/style.safetensors; high_noise:2:me/repo::a/b.safetensors",
        "VIVIDFLOW_WAN_QUANT": "INT8",
        "VIVIDFLOW_WAN_CPU_OFFLOAD": "yes",
        "VIVIDFLOW_WAN_DEVICE": "cuda:1",
        "VIVIDFLOW_WAN_DTYPE": "bfloat16",
        "VIVIDFLOW_CRF": "23",
        "VIVIDFLOW_WAN_MAX_AREA": "921600",
        "VIVIDFLOW_WAN_FLOW_SHIFT": "5",
        "VIVIDFLOW_WAN_BOUNDARY": "0.9",
        "VIVIDFLOW_WAN_VAE_TILING": "off",
        "VIVIDFLOW_WAN_WEIGHT_CACHE": "0",
    }
    cfg = GenerationConfig.from_env(env)
    assert cfg.model_id == DEFAULT_MODEL_ID and cfg.transformer_id == BF16_TRANSFORMER_ID
    assert cfg.loras == (
        LoraSpec("/loras/style.safetensors", None, 0.5, "low_noise"),
        LoraSpec("me/repo", "a/b.safetensors", 2.0, "high_noise"),
    )
    assert cfg.effective_loras() == cfg.loras  # Lightning off
    assert (cfg.quantization, cfg.cpu_offload, cfg.device, cfg.dtype, cfg.crf) == ("int8", "model", "cuda:1", "bfloat16", 23)
    assert (cfg.max_area, cfg.flow_shift, cfg.boundary_ratio, cfg.vae_tiling) == (921600, 5.0, 0.9, "off")
    assert cfg.weight_cache is False
    assert GenerationConfig.from_env({"VIVIDFLOW_WAN_CPU_OFFLOAD": "group"}).cpu_offload == "group"
    assert GenerationConfig.from_env({}) == GenerationConfig()
    assert GenerationConfig.from_env(env, crf=30).crf == 30  # overrides (CLI flags) win


@pytest.mark.parametrize(
    "env, match",
    [
        ({"VIVIDFLOW_WAN_QUANT": "fp4"}, "VIVIDFLOW_WAN_QUANT: quantization must be one of auto, none, int8, fp8"),
        ({"VIVIDFLOW_CRF": "99"}, "VIVIDFLOW_CRF: crf must be an integer in 0–51, got 99"),
        ({"VIVIDFLOW_CRF": "high"}, "VIVIDFLOW_CRF: crf must be an integer in 0–51, got 'high'"),
        ({"VIVIDFLOW_WAN_LIGHTNING": "maybe"}, "VIVIDFLOW_WAN_LIGHTNING: expected 1/0"),
        ({"VIVIDFLOW_WAN_LORAS": "middle:1:/x.safetensors"}, "expert must be one of high_noise, low_noise"),
        ({"VIVIDFLOW_WAN_LORAS": "/x.safetensors"}, "expert:scale:source"),
        ({"VIVIDFLOW_WAN_DEVICE": "tpu"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"VIVIDFLOW_WAN_MAX_AREA": "100"}, "max_area must be an integer ≥ 256"),
        ({"VIVIDFLOW_WAN_DEFAULTS_FROM": "other/model"}, "defaults_from must name a registry model"),
    ],
)
def test_config_errors_name_the_variable_and_range(env, match):
    with pytest.raises(ConfigError, match=match):
        GenerationConfig.from_env(env)


def test_parse_loras_round_trips_labels():
    specs = parse_loras("high_noise:3:Kijai/WanVideo_comfy::Lightx2v/x.safetensors")
    assert specs[0].label == "Kijai/WanVideo_comfy::Lightx2v/x.safetensors"
    assert parse_loras(f"high_noise:3:{specs[0].label}") == specs
