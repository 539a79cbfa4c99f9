"""Chained segments and story transitions on a tiny random Wan2.2 I2V pipeline (#12 §2 §4), through diffusers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation import segments

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from devtools.tiny_wan import cached_tiny_pipeline_dir  # noqa: E402
from generation import wan, wan_load  # noqa: E402
from generation.config import GenerationConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")
SIDE = 32


@pytest.fixture(scope="module")
def backend():
    cfg = GenerationConfig(model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=SIDE * SIDE,
                           max_sequence_length=16)
    return wan.WanBackend(loaded=wan_load.load_pipeline(cfg))


def picture(seed: int) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(SIDE, SIDE, 3) * 255).astype("uint8"))


def plan(**changes) -> MotionPlan:
    fields = dict(template="portrait_subtle", duration_s=1.0, prompt="the hair in the wind", steps=4, seed=7,
                  guidance_scale=1.0, guidance_scale_2=1.0)
    fields.update(changes)
    return MotionPlan.create(**fields)


class Spy:
    """Records what the chain hands the pipeline: each call's conditioning picture and last_image."""

    def __init__(self, inner):
        self.inner, self.name, self.model_id, self.calls = inner, inner.name, "tiny", []

    def render_segment(self, p, image, **kw):
        frames, record = self.inner.render_segment(p, image, **kw)
        self.calls.append({"image": np.asarray(image.convert("RGB")).copy(), "frames": frames, "kw": kw})
        return frames, record


def test_three_segments_chain_each_from_the_last_frame_of_the_one_before(backend, tmp_path):
    spy = Spy(backend)
    p = plan(duration_s=1.75)  # 29 frames as three 13-frame segments (the test's segment length; real ones are 81)
    result = segments.generate(spy, p, picture(0), out_dir=tmp_path, max_segment_frames=13)
    assert [len(c["frames"]) for c in spy.calls] == [13, 13, 13] and result.num_frames == p.num_frames == 29
    # segment 2's conditioning image is segment 1's last frame (segment 1 is the colour reference, so as rendered)
    assert np.array_equal(spy.calls[1]["image"], spy.calls[0]["frames"][-1])
    records = result.params["segments"]
    assert records[2]["start_sha256"] == records[1]["last_sha256"]
    assert [r["seed"] for r in records] == [7, 8, 9] and all(r["steps"] == 4 for r in records)
    # the MP4 carries the backend's full reproduction record, as a single Wan clip does
    from generation.export import probe_video

    meta = probe_video(result.video_path, count_frames=False)["metadata"]
    assert meta["vividflow"]["pipeline"] == "WanImageToVideoPipeline" and meta["segments"] == 3
    assert result.params["render"]["versions"] == meta["vividflow"]["versions"]


def test_story_transitions_pass_the_next_picture_as_last_image(backend, tmp_path):
    pictures = [picture(i) for i in range(3)]
    p = plan(duration_s=1.0, story_images=tuple(c * 64 for c in "abc"))
    spy = Spy(backend)
    result = segments.generate(spy, p, pictures[0], out_dir=tmp_path, pictures=pictures)
    assert len(spy.calls) == 2 and all(c["kw"]["last_image"] is not None for c in spy.calls)
    assert [r["last_image"] for r in result.params["segments"]] == [True, True]
    # the end picture changes what the pipeline renders (first-last-frame conditioning)
    alone, _ = backend.render_segment(plan(duration_s=0.5), pictures[0])
    ending, _ = backend.render_segment(plan(duration_s=0.5), pictures[0], last_image=pictures[1])
    assert alone.shape == ending.shape and not np.array_equal(alone, ending)


def test_a_chained_loop_ends_its_last_segment_on_the_first_picture_through_last_image(backend, tmp_path):
    spy = Spy(backend)
    first = picture(0)
    result = segments.generate(spy, plan(duration_s=1.0, loop=True), first, out_dir=tmp_path, max_segment_frames=13)
    assert len(spy.calls) == 2 and spy.calls[0]["kw"]["last_image"] is None
    assert np.array_equal(np.asarray(spy.calls[1]["kw"]["last_image"]), np.asarray(first))  # same size: as given
    assert [r.get("last_image") for r in result.params["segments"]] == [None, True]
    assert result.params["end_frame"] == "loop"
