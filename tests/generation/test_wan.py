"""The Wan backend on a tiny random two-expert Wan2.2 I2V pipeline, through the real diffusers code path.

The tiny pipeline is built once per process (`cached_tiny_pipeline_dir`), saved with `save_pretrained`
and loaded through `load_pipeline` with HF_HUB_OFFLINE=1, exactly as real weights would be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.config import GenerationConfig
from generation.events import CancelToken, GenerationCancelled, Progress

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import TINY_MAX_AREA, cached_tiny_pipeline_dir  # noqa: E402
from generation import export as export_module  # noqa: E402
from generation import wan, wan_load  # noqa: E402
from generation.image import load_image, preprocess  # noqa: E402

MAX_LEN = 16  # tiny text encoder: short prompts keep it fast


def tiny_config(**changes) -> GenerationConfig:
    base = GenerationConfig(
        model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=TINY_MAX_AREA, max_sequence_length=MAX_LEN
    )
    return base.replace(**changes)


def picture(w: int = 64, h: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(h, w, 3) * 255).astype("uint8"))


def make_plan(**changes) -> MotionPlan:
    fields = dict(
        template="portrait_subtle", duration_s=0.5, prompt="the hair in the wind, slowly",
        negative_prompt="blur", guidance_scale=3.5, guidance_scale_2=3.0, seed=7,
    )
    fields.update(changes)
    return MotionPlan.create(**fields)


# offline like production without a cache, one torch thread (tiny ops on 2 shared cores: ~10× faster)
pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")


@pytest.fixture(scope="module")
def backend():
    # VAE tiling on (auto leaves it off on the CPU below 720p); test clips are below the tile size, so only the
    # tiling test below decodes tiled
    return wan.WanBackend(loaded=wan_load.load_pipeline(tiny_config()))


def files_in(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.is_file()] if Path(folder).exists() else []


# --- loading -----------------------------------------------------------------------------------


def test_load_pipeline_offline_from_a_saved_folder(backend):
    loaded = backend.loaded
    assert type(loaded.pipe).__name__ == "WanImageToVideoPipeline"
    assert loaded.pipe.transformer is not None and loaded.pipe.transformer_2 is not None
    assert loaded.device == "cpu" and loaded.dtype == "float32"
    assert loaded.quantization.mode == "none"  # auto on CPU
    assert loaded.boundary_ratio == pytest.approx(0.875)  # the folder's own (not in the registry)
    assert loaded.cfg.vae_tiling == "auto"  # decided per call (test_wan_speed.py)
    assert loaded.speed["attention"] == {"value": "native", "reason": "auto: torch SDPA on cpu"}
    assert set(loaded.parameter_bytes) == {"transformer", "transformer_2", "text_encoder", "vae"}


# --- generating ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "duration_s, size, expected",
    [(0.5, (64, 64), (64, 64, 9)), (1.0, (64, 64), (64, 64, 17)), (0.5, (128, 96), (64, 48, 9))],
    ids=["9f-64x64", "17f-64x64", "9f-non-square"],
)
def test_generate_writes_h264_mp4_with_plan_metadata(backend, tmp_path, duration_s, size, expected):
    plan = make_plan(duration_s=duration_s)
    result = backend.generate(plan, picture(*size), out_dir=tmp_path)
    w, h, n = expected
    assert (result.width, result.height, result.num_frames, result.fps) == (w, h, n, 16)
    assert result.backend == "wan" and result.model_id == str(cached_tiny_pipeline_dir())
    info = export_module.probe_video(result.video_path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"], info["num_frames"]) == (w, h, n)
    assert info["fps"] == pytest.approx(16)
    meta = info["metadata"]["vividflow"]
    assert meta["plan"] == plan.to_dict()
    assert meta["seed"] == plan.seed and meta["model_id"] == result.model_id
    assert meta["quantization"]["mode"] == "none" and meta["loras"] == []
    assert Path(result.thumbnail_path).is_file() and Path(result.preview_path).is_file()  # + the gallery's WebP
    assert sorted(p.name for p in files_in(tmp_path)) == sorted(
        [Path(result.video_path).name, Path(result.thumbnail_path).name, Path(result.preview_path).name]
    )


def test_frames_equal_a_direct_diffusers_call(backend, tmp_path, frames_seen):
    plan = make_plan()
    image = picture(128, 96)
    result = backend.generate(plan, image, out_dir=tmp_path)
    resized = preprocess(load_image(image), max_area=TINY_MAX_AREA)
    direct = backend.pipe(
        image=resized, prompt=plan.prompt, negative_prompt=plan.negative_prompt,
        height=result.height, width=result.width, num_frames=plan.num_frames,
        num_inference_steps=plan.steps, guidance_scale=plan.guidance_scale,
        guidance_scale_2=plan.guidance_scale_2, generator=torch.Generator("cpu").manual_seed(plan.seed),
        max_sequence_length=MAX_LEN, output_type="np",
    ).frames[0]
    assert direct.shape == frames_seen[0].shape == (9, 48, 64, 3)
    np.testing.assert_array_equal(frames_seen[0], direct)  # our wrapper adds no drift


def test_same_seed_same_frames_whatever_the_global_rng_new_seed_different(backend, tmp_path, frames_seen):
    # the seed alone decides the noise: reseeding and draining the global RNGs between two calls
    # changes nothing (across processes: frames equal a direct call with manual_seed(seed), above)
    import random

    image = picture()
    backend.generate(make_plan(seed=11), image, out_dir=tmp_path / "a")
    torch.manual_seed(12345)
    torch.rand(1000)
    np.random.seed(54321)
    random.seed(7)
    backend.generate(make_plan(seed=11), image, out_dir=tmp_path / "b")
    backend.generate(make_plan(seed=12), image, out_dir=tmp_path / "c")
    first, again, other = frames_seen
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_vae_tiling_engages_beyond_the_tile_size_and_matches_untiled(backend, monkeypatch):
    # the test clips (64 px) are below the 256-px tile, so decode 288-px frames here with tiling on: the tiled
    # path must run, and agree with an untiled decode up to the seams' blending
    vae = backend.pipe.vae
    wan.wan_speed.set_vae_tiling(vae, True)
    assert vae.use_tiling and 288 > vae.tile_sample_min_height
    tiled_calls = []
    real_tiled_decode = vae.tiled_decode
    monkeypatch.setattr(vae, "tiled_decode", lambda *a, **k: (tiled_calls.append(1), real_tiled_decode(*a, **k))[1])
    latents = torch.randn(1, 16, 2, 36, 36, generator=torch.Generator("cpu").manual_seed(0))
    tiled = wan.decode_latents(backend.pipe, latents)
    assert tiled.shape == (5, 288, 288, 3) and tiled_calls == [1]
    wan.wan_speed.set_vae_tiling(vae, False)
    untiled = wan.decode_latents(backend.pipe, latents)
    assert tiled_calls == [1]  # the untiled decode did not tile
    diff = np.abs(tiled - untiled)
    assert diff.mean() < 0.05 * np.abs(untiled - untiled.mean()).mean(), diff.mean()


def test_tiny_builder_returns_every_module_in_eval_mode():
    from devtools.tiny_wan import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    for name in ("vae", "text_encoder", "transformer", "transformer_2"):
        assert not any(m.training for m in getattr(pipe, name).modules()), name


def test_progress_once_per_step_with_both_experts(backend, tmp_path):
    events: list[Progress] = []
    plan = make_plan(steps=6)
    result = backend.generate(plan, picture(), lambda e: isinstance(e, Progress) and events.append(e), out_dir=tmp_path)
    sampling = [e for e in events if e.stage == "sampling"]
    assert [e.step for e in sampling] == list(range(1, 7))
    assert all(e.total == 6 for e in sampling)
    # The expert named per step is the one diffusers ran: t ≥ boundary_ratio·1000 → high noise.
    pipe = backend.pipe
    pipe.scheduler.set_timesteps(6)
    boundary = pipe.config.boundary_ratio * pipe.scheduler.config.num_train_timesteps
    expected = ["high_noise" if float(t) >= boundary else "low_noise" for t in pipe.scheduler.timesteps]
    assert [e.expert for e in sampling] == expected
    assert {"high_noise", "low_noise"} == set(expected)
    assert result.params["expert_steps"] == {
        "high_noise": expected.count("high_noise"), "low_noise": expected.count("low_noise")
    }
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in sampling)
    assert sampling[-1].eta_s <= sampling[0].eta_s
    elapsed = [e.elapsed_s for e in events]
    assert elapsed == sorted(elapsed)
    stages = [e.stage for e in events]
    for name in ("preprocessing", "encoding", "sampling", "decoding", "exporting"):
        assert name in stages
    assert stages.index("encoding") < stages.index("sampling") < stages.index("decoding") < stages.index("exporting")


def test_cancel_after_step_one_discards_frames(backend, tmp_path, frames_seen):
    cancel = CancelToken()
    events: list[Progress] = []

    def listener(event):
        if not isinstance(event, Progress):
            return
        events.append(event)
        if event.stage == "sampling" and event.step == 1:
            cancel.cancel()

    with pytest.raises(GenerationCancelled, match="1 of 4 steps"):
        backend.generate(make_plan(), picture(), listener, cancel, out_dir=tmp_path)
    assert [e.step for e in events if e.stage == "sampling"] == [1]  # the pipeline skipped the rest
    assert not any(e.stage in ("decoding", "exporting") for e in events)
    assert frames_seen == [] and files_in(tmp_path) == []
    # the backend is usable again afterwards
    result = backend.generate(make_plan(), picture(), out_dir=tmp_path)
    assert Path(result.video_path).is_file()


def test_cancel_before_start_raises_at_once(backend, tmp_path):
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(GenerationCancelled):
        backend.generate(make_plan(), picture(), cancel=cancel, out_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_params_carry_everything_to_reproduce(backend, tmp_path):
    plan = make_plan(seed=99, steps=5, guidance_scale=4.0, guidance_scale_2=2.0)
    r = backend.generate(plan, picture(128, 96), out_dir=tmp_path)
    p = r.params
    assert (p["prompt"], p["negative_prompt"]) == (plan.prompt, plan.negative_prompt)
    assert (p["seed"], p["steps"], p["guidance_scale"], p["guidance_scale_2"]) == (99, 5, 4.0, 2.0)
    assert p["boundary_ratio"] == pytest.approx(0.875) and p["flow_shift"] == pytest.approx(3.0)
    assert (p["width"], p["height"], p["input_width"], p["input_height"]) == (64, 48, 128, 96)
    assert (p["num_frames"], p["fps"]) == (9, 16)
    assert p["model_id"] == str(cached_tiny_pipeline_dir()) and p["transformer_id"] is None
    assert p["loras"] == [] and p["quantization"]["mode"] == "none" and p["quantization"]["reason"]
    for lib in ("torch", "diffusers", "transformers", "torchao", "peft"):
        assert p["versions"][lib], lib
    for stage in ("preprocess", "encode", "sample", "decode", "export", "total"):
        assert r.timings[stage] >= 0 and p["timings"][stage] == r.timings[stage]
    assert r.timings["total"] >= r.timings["sample"] + r.timings["decode"] + r.timings["export"]
    assert p["plan"] == plan.to_dict() and len(p["sha256"]) == 64


def test_flow_shift_override_reaches_the_scheduler(tmp_path):
    b = wan.WanBackend(loaded=wan_load.load_pipeline(tiny_config(flow_shift=5.0)))
    r = b.generate(make_plan(), picture(), out_dir=tmp_path)
    assert r.params["flow_shift"] == 5.0 and b.pipe.scheduler.config.flow_shift == 5.0


def test_the_record_says_which_recipe_ran_with_what_and_why(tmp_path):
    # the tiny folder as Wan2.2-I2V-A14B with Lightning off: the base recipe's shift and boundary, and its limits
    b = wan.WanBackend(loaded=wan_load.load_pipeline(tiny_config(defaults_from="Wan-AI/Wan2.2-I2V-A14B-Diffusers")))
    r = b.generate(make_plan(steps=5, guidance_scale=12.0, guidance_scale_2=3.0), picture(), out_dir=tmp_path)
    p = r.params
    assert (p["recipe"], p["steps"], p["guidance_scale"], p["guidance_scale_2"]) == ("base", 5, 10.0, 3.0)
    assert p["notes"] == ["guidance 12 is past the base recipe's maximum 10: set to 10"]
    assert (p["flow_shift"], p["boundary_ratio"], p["plan"]["guidance_scale"]) == (5.0, 0.9, 12.0)
    assert b.pipe.scheduler.config.flow_shift == 5.0 and len(p["timesteps"]) == 5


def test_before_load_hooks_run_on_load_and_generate(tmp_path):
    calls: list[str] = []

    def free_llm() -> None:
        calls.append("unload")

    wan_load.register_before_load(free_llm)
    wan_load.register_before_load(free_llm)  # once only
    try:
        b = wan.WanBackend(tiny_config())
        b.generate(make_plan(), picture(), out_dir=tmp_path)  # loads lazily, then generates
        assert calls == ["unload", "unload"]
        b.unload()
        assert b.pipe is None
    finally:
        wan_load.unregister_before_load(free_llm)
    assert free_llm not in wan_load._BEFORE_LOAD


def test_default_out_dir_is_under_vividflow_home(backend, _isolated_home):
    r = backend.generate(make_plan(), picture())
    assert Path(r.video_path).parent == Path(_isolated_home) / "media" / "videos"


def test_real_photo_bytes_with_exif_rotation(backend, tmp_path, gh):
    """A JPEG (bytes) of a landscape photo tagged 'rotate 90° CW' renders as a portrait clip."""
    import io

    photo = gh.photo("chelsea", max_side=160)  # 160×106 landscape cat
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; upright is portrait
    buf = io.BytesIO()
    photo.save(buf, "JPEG", exif=exif.tobytes(), quality=90)
    r = backend.generate(make_plan(), buf.getvalue(), out_dir=tmp_path)
    assert r.height > r.width and r.width % 16 == 0 and r.height % 16 == 0
    assert r.width * r.height <= TINY_MAX_AREA
    assert (r.params["input_width"], r.params["input_height"]) == (photo.height, photo.width)
