"""The runner with the real `wan` backend on the tiny random Wan2.2 pipeline (CPU): plug-in check."""

from __future__ import annotations

import pytest

from agent.plan import MotionPlan
from generation.events import Progress
from generation.export import probe_video
from generation.jobs import Runner

torch = pytest.importorskip("torch")


@pytest.fixture
def tiny_wan_env(monkeypatch):
    from devtools.tiny_wan import TINY_MAX_AREA, cached_tiny_pipeline_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VIVIDFLOW_WAN_MODEL", str(cached_tiny_pipeline_dir()))
    monkeypatch.setenv("VIVIDFLOW_WAN_DEVICE", "cpu")
    monkeypatch.setenv("VIVIDFLOW_WAN_LIGHTNING", "0")
    monkeypatch.setenv("VIVIDFLOW_WAN_MAX_AREA", str(TINY_MAX_AREA))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_runner_renders_and_cancels_with_the_tiny_wan_backend(gen_store, gh, tiny_wan_env):
    plan = MotionPlan.create(template="landscape", duration_s=0.5, steps=4, seed=1)
    image = gh.photo("rocket", 128)
    stages = []
    with Runner(gen_store) as runner:
        runner.subscribe(lambda e: stages.append((e.job_id, e.stage, e.expert)) if isinstance(e, Progress) else None)
        ok = runner.submit(plan, image, backend="wan")
        assert (ok.width, ok.height) == (80, 48) and ok.model_id.endswith("tiny-wan2.2-i2v")
        final = runner.wait(ok.id, timeout=300)
        assert final.status == "succeeded", final.error
        info = probe_video(final.video_path)
        assert (info["codec"], info["num_frames"], info["width"], info["height"]) == ("h264", 9, 80, 48)
        experts = {e for j, s, e in stages if j == ok.id and e}
        assert experts == {"high_noise", "low_noise"}
        # cancel at the first denoising step: cancelled, no video
        victim = runner.submit(plan, image, backend="wan")
        runner.subscribe(lambda e: runner.cancel(victim.id) if isinstance(e, Progress) and e.expert else None,
                         job_id=victim.id)
        cancelled = runner.wait(victim.id, timeout=300)
    assert cancelled.status == "cancelled" and cancelled.video_path is None


def test_runner_renders_a_text_only_plan_with_the_tiny_text_to_video_model(gen_store, monkeypatch, tiny_wan_env):
    from devtools.tiny_wan import cached_tiny_pipeline_dir

    monkeypatch.setenv("VIVIDFLOW_WAN_MODEL", str(cached_tiny_pipeline_dir("t2v")))
    monkeypatch.setenv("VIVIDFLOW_WAN_DEFAULTS_FROM", "t2v-a14b")
    plan = MotionPlan.create(template="landscape", duration_s=0.5, steps=4, seed=1, prompt="water and light")
    with Runner(gen_store) as runner:
        rec = runner.submit(plan, None, backend="wan")
        assert rec.source_image_id is None and (rec.width, rec.height) == (80, 48)  # T2V's 832×480 shape, tiny
        final = runner.wait(rec.id, timeout=300)
    assert final.status == "succeeded", final.error
    info = probe_video(final.video_path)
    assert (info["num_frames"], info["width"], info["height"]) == (9, 80, 48)
    assert final.params["pipeline"] == "WanPipeline" and final.params["input_width"] is None
