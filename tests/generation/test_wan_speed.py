"""The Wan backend's speed switches on the tiny random pipeline: each changes nothing it must not (bit for bit or
within a stated tolerance) and skips the work it says it skips (counted with hooks)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.config import ConfigError, GenerationConfig
from generation.embedding_cache import EmbeddingCache
from generation.events import Preview, Progress

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import TINY_MAX_AREA, cached_tiny_pipeline_dir  # noqa: E402
from generation import live_preview, step_cache, wan, wan_load, wan_speed  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")


def tiny_config(**changes) -> GenerationConfig:
    base = GenerationConfig(
        model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=TINY_MAX_AREA, max_sequence_length=16
    )
    return base.replace(**changes)


def picture(w: int = 64, h: int = 64, seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


def make_plan(**changes) -> MotionPlan:
    fields = dict(template="portrait_subtle", duration_s=0.5, prompt="the hair in the wind, slowly",
                  negative_prompt="blur", guidance_scale=3.5, guidance_scale_2=3.0, seed=7)
    return MotionPlan.create(**{**fields, **changes})


@pytest.fixture(scope="module")
def loaded():
    return wan_load.load_pipeline(tiny_config())


def backend_with(loaded, **changes) -> wan.WanBackend:
    """A backend on the same weights with per-call switches changed (no reload)."""
    return wan.WanBackend(loaded=dataclasses.replace(loaded, cfg=loaded.cfg.replace(**changes)))


class Calls:
    """Counts forward calls of modules (hooks removed on close)."""

    def __init__(self, **modules) -> None:
        self.n = dict.fromkeys(modules, 0)
        self._handles = [m.register_forward_pre_hook(lambda *_, k=k: self._hit(k)) for k, m in modules.items()]

    def _hit(self, key: str) -> None:
        self.n[key] += 1

    def take(self) -> dict[str, int]:
        out, self.n = self.n, dict.fromkeys(self.n, 0)
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()


# --- attention backend ----------------------------------------------------------------------------------------


def test_native_attention_is_bit_identical_to_the_default_and_recorded(loaded, tmp_path, frames_seen):
    default = wan.WanBackend(loaded=loaded).generate(make_plan(), picture(), out_dir=tmp_path / "a")
    forced = wan.WanBackend(loaded=wan_load.load_pipeline(tiny_config(attention="native")))
    native = forced.generate(make_plan(), picture(), out_dir=tmp_path / "b")
    np.testing.assert_array_equal(frames_seen[0], frames_seen[1])
    assert default.params["speed"]["attention"] == {"value": "native", "reason": "auto: torch SDPA on cpu"}
    assert native.params["speed"]["attention"] == {"value": "native", "reason": "requested native"}
    # every switch is in the generation record (the MP4's metadata and the stored params)
    assert set(default.params["speed"]) == {
        "attention", "compile", "vae_tiling", "step_cache", "embedding_cache", "live_preview"}
    assert (default.params["vae_dtype"], default.params["vae_tiling"]) == ("float32", "auto")


@pytest.mark.parametrize("name", ["flash", "_flash_3", "sage"])
def test_an_unusable_attention_backend_is_one_clear_sentence_before_loading(name, monkeypatch):
    def never(*args):
        raise AssertionError("the weights started loading")

    monkeypatch.setattr(wan_load, "_check_model_source", never)
    with pytest.raises(ConfigError) as e:
        wan_load.load_pipeline(tiny_config(attention=name))
    message = str(e.value)
    assert message.startswith(f"attention={name!r} is not usable here (") and "\n" not in message
    assert message.endswith("use attention='auto' or 'native'") and "CUDA" in message


def test_auto_attention_prefers_fa3_then_flash_then_sage_then_native(monkeypatch):
    installed: set[str] = set()
    monkeypatch.setattr(wan_speed, "_capability", lambda device: (9, 0))
    from diffusers.models import attention_dispatch

    monkeypatch.setattr(attention_dispatch, "_check_attention_backend_requirements", lambda backend: None)
    monkeypatch.setattr(wan_speed.importlib.util, "find_spec", lambda m: object() if m in installed else None)
    picks = []
    for module in ("", "sageattention", "flash_attn", "flash_attn_interface"):
        installed.add(module)
        picks.append(wan_speed.select_attention("auto", "cuda").value)
    assert picks == ["native", "sage", "flash", "_flash_3"]
    monkeypatch.setattr(wan_speed, "_capability", lambda device: (8, 6))  # Ampere: no FA3
    assert wan_speed.select_attention("auto", "cuda").value == "flash"
    with pytest.raises(ConfigError, match=r"needs CUDA compute capability ≥ 9.0, this GPU has 8.6"):
        wan_speed.select_attention("_flash_3", "cuda")
    monkeypatch.setattr(wan_speed, "_capability", lambda device: None)
    assert wan_speed.select_attention("auto", "cpu").value == "native"


# --- regional compilation --------------------------------------------------------------------------------------


def test_compile_switch_compiles_both_experts_at_load(loaded, monkeypatch):
    from diffusers import WanTransformer3DModel

    calls = []
    monkeypatch.setattr(WanTransformer3DModel, "compile_repeated_blocks", lambda self, **kw: calls.append(kw))
    compiled = wan_load.load_pipeline(tiny_config(compile=True))
    assert calls == [{"fullgraph": True, "dynamic": False, "backend": "inductor"}] * 2
    assert compiled.speed["compile"]["value"] is True and loaded.speed["compile"]["value"] is False
    calls.clear()
    wan_speed.apply_at_load(loaded.pipe, tiny_config(compile=True, step_cache="first_block"), wan_speed.Choice("native", ""))
    assert [c["fullgraph"] for c in calls] == [False, False]  # the step cache's hooks break the graph


def test_compiled_experts_match_eager_and_compile_once_per_resolution(loaded, tmp_path, frames_seen):
    # inductor needs ~40 s of C++ compilation on this CPU: aot_eager traces the same graphs (AOTAutograd) without it
    from torch._dynamo.utils import counters

    eager = wan.WanBackend(loaded=loaded)
    eager.generate(make_plan(), picture(), out_dir=tmp_path / "eager")
    eager.generate(make_plan(), picture(64, 48), out_dir=tmp_path / "eager")
    fresh = wan_load.load_pipeline(tiny_config())
    torch._dynamo.reset()
    counters.clear()
    wan_speed.compile_experts(fresh.pipe, backend="aot_eager")
    compiled = wan.WanBackend(loaded=fresh)
    graphs = []
    for size in ((64, 64), (64, 64), (64, 48)):
        compiled.generate(make_plan(), picture(*size), out_dir=tmp_path / "compiled")
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs == [1, 1, 2]  # both experts' blocks share one graph per frame size; nothing recompiles
    np.testing.assert_allclose(frames_seen[2], frames_seen[0], atol=1e-5)
    np.testing.assert_allclose(frames_seen[4], frames_seen[1], atol=1e-5)
    torch._dynamo.reset()


# --- embedding cache ---------------------------------------------------------------------------------------------


def test_same_picture_and_prompt_again_skips_both_encoders_and_is_bit_identical(loaded, tmp_path, frames_seen):
    backend = wan.WanBackend(loaded=dataclasses.replace(loaded, embedding_cache=EmbeddingCache()))  # empty
    pipe = backend.pipe
    calls = Calls(text=pipe.text_encoder, vae=pipe.vae.quant_conv)  # quant_conv: once per VAE encode
    try:
        first = backend.generate(make_plan(), picture(), out_dir=tmp_path)
        assert calls.take() == {"text": 2, "vae": 1}  # prompt + negative (guidance 3.5), the picture
        again = backend.generate(make_plan(), picture(), out_dir=tmp_path)
        assert calls.take() == {"text": 0, "vae": 0}
        np.testing.assert_array_equal(frames_seen[0], frames_seen[1])
        backend.generate(make_plan(prompt="the hair in the wind, gently"), picture(), out_dir=tmp_path)
        assert calls.take() == {"text": 1, "vae": 0}  # only the new prompt; the negative and picture are reused
        backend.generate(make_plan(), picture(seed=1), out_dir=tmp_path)
        assert calls.take() == {"text": 0, "vae": 1}
        off = backend_with(backend.loaded, embedding_cache=False)
        off.generate(make_plan(), picture(), out_dir=tmp_path)
        assert calls.take() == {"text": 2, "vae": 1}
        np.testing.assert_array_equal(frames_seen[4], frames_seen[0])
    finally:
        calls.close()
    assert first.params["speed"]["embedding_cache"] == {
        "size": 8, "text_hits": 0, "text_misses": 2, "image_hits": 0, "image_misses": 1}
    assert again.params["speed"]["embedding_cache"] == {
        "size": 8, "text_hits": 2, "text_misses": 0, "image_hits": 1, "image_misses": 0}


# --- VAE dtype and tiling ----------------------------------------------------------------------------------------


def test_bf16_vae_decodes_close_to_fp32(loaded):
    half = wan_load.load_pipeline(tiny_config(vae_dtype="bfloat16"))
    assert half.pipe.vae.dtype == torch.bfloat16 and half.describe()["vae_dtype"] == "bfloat16"
    assert loaded.pipe.vae.dtype == torch.float32 and loaded.describe()["vae_dtype"] == "float32"
    latents = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator("cpu").manual_seed(0))
    full = wan.decode_latents(loaded.pipe, latents)
    bf16 = wan.decode_latents(half.pipe, latents)
    diff = np.abs(full - bf16)  # measured: mean 0.0013 (a third of a level of 255), 99th percentile 0.013
    assert diff.mean() < 0.005 and np.quantile(diff, 0.99) < 0.03, (diff.mean(), np.quantile(diff, 0.99))


@pytest.mark.parametrize(
    "mode, offload, size, tiled",
    [("auto", False, (832, 480), "off"), ("auto", False, (1280, 704), "on"), ("auto", False, (1280, 720), "on"),
     ("auto", True, (64, 64), "on"), ("on", False, (64, 64), "on"), ("off", True, (1280, 720), "off")],
)
def test_vae_tiling_auto_tiles_only_under_offload_or_at_720p(mode, offload, size, tiled):
    choice = wan_speed.vae_tiling_for(mode, offload=offload, width=size[0], height=size[1])
    assert choice.value == tiled and choice.reason


def test_vae_tiling_is_applied_per_call(loaded, tmp_path, monkeypatch):
    vae = loaded.pipe.vae
    for name, value in (("tile_sample_min_height", 32), ("tile_sample_min_width", 32),
                        ("tile_sample_stride_height", 24), ("tile_sample_stride_width", 24)):
        monkeypatch.setattr(vae, name, value)  # 32-px tiles: the 64-px test clip spans several
    tiled = []
    real = vae.tiled_decode
    monkeypatch.setattr(vae, "tiled_decode", lambda *a, **k: (tiled.append(1), real(*a, **k))[1])
    for mode, expected in (("on", [1]), ("auto", []), ("off", [])):
        tiled.clear()
        r = backend_with(loaded, vae_tiling=mode).generate(make_plan(), picture(), out_dir=tmp_path)
        assert tiled == expected, mode
        assert r.params["speed"]["vae_tiling"]["value"] == ("on" if expected else "off")
    wan_speed.set_vae_tiling(vae, False)


# --- live preview ------------------------------------------------------------------------------------------------


def test_one_preview_strip_per_step_and_no_vae_decode_for_it(loaded, tmp_path):
    events = []
    decodes = Calls(vae=loaded.pipe.vae.post_quant_conv)  # once per VAE decode
    try:
        r = backend_with(loaded).generate(make_plan(steps=4), picture(), events.append, out_dir=tmp_path)
    finally:
        counts = decodes.take()
        decodes.close()
    previews = [e for e in events if isinstance(e, Preview)]
    assert [(p.step, p.total) for p in previews] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for p in previews:  # 9 frames = 3 latent frames side by side, each 160 px wide (64×64 → 160×160)
        assert p.frame.shape == (160, 3 * live_preview.PREVIEW_WIDTH, 3) and p.frame.dtype == np.uint8
    assert previews[-1].frame.std() > 0
    # every preview comes right after its step's Progress event
    kinds = [(type(e).__name__, e.step) for e in events if isinstance(e, (Preview, Progress)) and e.step]
    assert kinds[:4] == [("Progress", 1), ("Preview", 1), ("Progress", 2), ("Preview", 2)]
    assert counts["vae"] == 1 and r.params["speed"]["live_preview"] is True  # the final decode only
    quiet = []
    backend_with(loaded, live_preview=False).generate(make_plan(steps=4), picture(), quiet.append, out_dir=tmp_path)
    assert not any(isinstance(e, Preview) for e in quiet)


def test_the_preview_projects_the_steps_predicted_clean_latents():
    x0 = torch.zeros(1, 16, 2, 4, 6)
    x0[:, 2] = 1.0  # channel 2 of the Wan2.1 factors is warm: (0.3568, 0.2548, 0.1747)
    strip = live_preview.strip(x0, width=12)
    assert strip.shape == (8, 24, 3)
    expected = np.round((np.clip(np.add(live_preview.WAN21_RGB[2], live_preview.WAN21_BIAS), -1, 1) + 1) * 127.5)
    np.testing.assert_array_equal(strip[0, 0], expected.astype(np.uint8))

    class UniPC:
        config = type("C", (), {"predict_x0": True})()
        model_outputs = [None, x0]

    assert live_preview.predicted_x0(UniPC(), torch.ones(1)) is x0


# --- step caching ------------------------------------------------------------------------------------------------


def block_calls(pipe) -> Calls:
    return Calls(**{f"{name}.{i}": block.ffn for name in ("transformer", "transformer_2")
                    for i, block in enumerate(getattr(pipe, name).blocks)})


def test_first_block_cache_runs_later_blocks_fewer_times_and_stays_close(loaded, tmp_path, frames_seen):
    plan = make_plan(steps=12)
    calls = block_calls(loaded.pipe)
    try:
        plain = backend_with(loaded, step_cache="off").generate(plan, picture(), out_dir=tmp_path)
        full = calls.take()
        cached = backend_with(loaded, step_cache="first_block").generate(plan, picture(), out_dir=tmp_path)
        fewer = calls.take()
    finally:
        calls.close()
    assert fewer["transformer.0"] == full["transformer.0"] and fewer["transformer_2.0"] == full["transformer_2.0"]
    assert fewer["transformer.1"] + fewer["transformer_2.1"] < full["transformer.1"] + full["transformer_2.1"]
    diff = np.abs(frames_seen[1] - frames_seen[0])
    assert diff.mean() < 0.01, diff.mean()
    assert plain.params["speed"]["step_cache"]["mode"] == "off"
    assert cached.params["speed"]["step_cache"]["mode"] == "first_block"
    assert not loaded.pipe.transformer.is_cache_enabled  # on for the call only


def test_mag_cache_uses_the_published_curve_on_the_low_noise_expert(loaded, tmp_path):
    plan = make_plan(steps=12)
    calls = block_calls(loaded.pipe)
    try:
        backend_with(loaded, step_cache="off", defaults_from="wan", lightning=False).generate(plan, picture(), out_dir=tmp_path)
        full = calls.take()
        r = backend_with(loaded, step_cache="mag", defaults_from="wan", lightning=False).generate(  # base: 12 steps
            plan, picture(), out_dir=tmp_path)
        fewer = calls.take()
    finally:
        calls.close()
    assert r.params["speed"]["step_cache"]["mode"] == "mag"
    assert fewer["transformer.0"] == full["transformer.0"]  # the authors' I2V mode leaves the high-noise expert
    assert fewer["transformer_2.0"] < full["transformer_2.0"]  # MagCache skips whole steps of the low-noise one


def test_step_cache_stays_off_for_few_steps_and_without_a_calibration():
    lightning = step_cache.choose("first_block", None, 4, model_id=None, with_image=True)
    assert lightning.mode == "off" and "4 steps" in lightning.reason
    assert step_cache.choose("auto", "first_block", 40, model_id=None, with_image=True).mode == "first_block"
    assert step_cache.choose("auto", "none", 40, model_id=None, with_image=True).mode == "off"
    unknown = step_cache.choose("mag", None, 40, model_id="some/folder", with_image=True)
    assert unknown.mode == "off" and "no MagCache calibration" in unknown.reason
