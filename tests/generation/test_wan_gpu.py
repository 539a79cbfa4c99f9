"""Wan backend on a CUDA GPU (`-m gpu`; skipped without CUDA).

1. The tiny pipeline on the GPU: bf16, generator on CUDA, the quantization `auto` picks (FP8 on
   compute capability ≥ 8.9), LoRA fused before quantizing, progress and cancel.
2. The real Wan2.2-I2V-A14B weights (from the HF cache or VIVIDFLOW_WAN_MODEL; skipped when absent):
   a 3 s 832×480 clip with Lightning, checked as an H.264 file and by its frames (the first one is the
   input picture, not a black or flat clip); the timings are printed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.config import GenerationConfig, LoraSpec

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

from devtools.tiny_wan import save_tiny_lora, save_tiny_pipeline  # noqa: E402
from generation import wan, wan_load  # noqa: E402
from generation.events import CancelToken, GenerationCancelled  # noqa: E402
from generation.export import probe_video  # noqa: E402
from generation.image import load_image, preprocess  # noqa: E402


def picture(w: int, h: int) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
    return Image.fromarray(rgb.astype("uint8"))


def plan(duration_s: float = 0.5, **kw) -> MotionPlan:
    fields = dict(
        template="portrait_subtle", duration_s=duration_s, prompt="the hair moves gently in the wind",
        negative_prompt="blur", steps=4, guidance_scale=1.0, guidance_scale_2=1.0, seed=5,
    )
    fields.update(kw)
    return MotionPlan.create(**fields)


@pytest.fixture(scope="module")
def tiny_gpu_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny-gpu")
    save_tiny_pipeline(d / "pipe", attention_head_dim=16)  # all linears 16-aligned, as FP8 matmuls need
    save_tiny_lora(d / "high.safetensors", "lightx2v", dim=32)
    return d


def test_tiny_pipeline_on_cuda_with_auto_quantization(tiny_gpu_dir, tmp_path, frames_seen):
    cfg = GenerationConfig(
        model=str(tiny_gpu_dir / "pipe"), lightning=False, max_area=64 * 64, max_sequence_length=16,
        loras=(LoraSpec(str(tiny_gpu_dir / "high.safetensors"), scale=1.0, expert="high_noise"),),
    )
    loaded = wan_load.load_pipeline(cfg)
    cap = torch.cuda.get_device_capability()
    assert loaded.device == "cuda" and loaded.dtype == "bfloat16" and loaded.vae_dtype == "float32"
    assert loaded.quantization.mode == ("fp8" if cap >= (8, 9) else "int8")
    assert loaded.pipe.transformer.device.type == "cuda"
    events = []
    r = wan.WanBackend(loaded=loaded).generate(plan(), picture(64, 64), events.append, out_dir=tmp_path)
    assert r.params["generator_device"].startswith("cuda")
    assert [e.step for e in events if e.stage == "sampling"] == [1, 2, 3, 4]
    info = probe_video(r.video_path)
    assert (info["codec"], info["pix_fmt"], info["num_frames"]) == ("h264", "yuv420p", 9)
    assert frames_seen[0].shape == (9, 64, 64, 3) and np.isfinite(frames_seen[0]).all()  # no NaN from FP8

    cancel = CancelToken()

    def stop_after_first(e):
        if e.stage == "sampling" and e.step == 1:
            cancel.cancel()

    with pytest.raises(GenerationCancelled):
        wan.WanBackend(loaded=loaded).generate(plan(), picture(64, 64), stop_after_first, cancel, out_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


@pytest.fixture(scope="module")
def real_backend():
    cfg = GenerationConfig.from_env()
    try:
        loaded = wan_load.load_pipeline(cfg)
    except (wan_load.ModelNotFound, wan_load.LoraError) as e:
        pytest.skip(f"real weights not available here: {e}")
    yield wan.WanBackend(loaded=loaded)
    del loaded
    wan_load.free_memory(full=True)


def test_real_weights_3s_480p_clip(real_backend, tmp_path, frames_seen):
    p = plan(3.0)
    image = picture(1664, 960)
    r = real_backend.generate(p, image, out_dir=tmp_path)
    assert (r.width, r.height, r.num_frames) == (832, 480, 49)
    info = probe_video(r.video_path)
    assert (info["codec"], info["pix_fmt"], info["num_frames"]) == ("h264", "yuv420p", 49)
    assert info["metadata"]["vividflow"]["plan"] == p.to_dict()
    cfg = real_backend.loaded.cfg
    fp8 = torch.cuda.get_device_capability() >= (8, 9)
    expected = ("fp8" if fp8 else "int8") if cfg.quantization == "auto" else cfg.quantization
    assert r.params["quantization"]["mode"] == expected
    print(f"\n{torch.cuda.get_device_name()}: {r.params['quantization']['mode']}, timings {r.timings}, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    # The frames, not just the file: image-to-video starts from the input picture (a black or flat
    # clip has no correlation with it), and something moves.
    frames = frames_seen[0]
    assert frames.shape == (49, 480, 832, 3) and np.isfinite(frames).all()
    source = np.asarray(preprocess(load_image(image), max_area=cfg.effective_max_area()), np.float32) / 255.0
    assert np.corrcoef(frames[0].ravel(), source.ravel())[0, 1] > 0.5
    assert np.abs(frames[-1] - frames[0]).mean() > 1e-3
