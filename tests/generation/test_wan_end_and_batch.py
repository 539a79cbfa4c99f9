"""End frame, loop and variations on the Wan backend (#12 §1, §3), on the tiny random Wan2.2 I2V pipeline through
the real diffusers code path: `last_image` reaches the pipeline's conditioning, a loop conditions on the first
picture, and a batch of three seeds in one call equals three single renders."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from agent.plan import MotionPlan  # noqa: E402
from devtools.tiny_wan import TINY_MAX_AREA, cached_tiny_pipeline_dir  # noqa: E402
from generation import wan, wan_load  # noqa: E402
from generation.config import GenerationConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline_single_torch_thread")


@pytest.fixture(scope="module")
def backend():
    cfg = GenerationConfig(model=str(cached_tiny_pipeline_dir()), lightning=False, max_area=TINY_MAX_AREA,
                           max_sequence_length=16)
    return wan.WanBackend(loaded=wan_load.load_pipeline(cfg))


def _plan(**changes) -> MotionPlan:
    fields = dict(template="portrait_subtle", duration_s=0.5, prompt="the hair in the wind, slowly",
                  negative_prompt="blur", guidance_scale=1.0, guidance_scale_2=1.0, seed=7)
    return MotionPlan.create(**{**fields, **changes})


def _picture(seed: int):
    from PIL import Image

    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(48, 64, 3) * 255).astype("uint8"))


@pytest.fixture
def conditioning(backend, monkeypatch):
    """What each call's `prepare_latents` got as `last_image` and returned as its conditioning latents."""
    pipe = backend.loaded.pipe
    real = pipe.prepare_latents
    seen: list[dict] = []

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append({"image": args[0].clone(), "last_image": None if args[-1] is None else args[-1].clone(),
                     "condition": out[1].clone()})
        return out

    monkeypatch.setattr(pipe, "prepare_latents", spy)
    return seen


def test_the_end_picture_reaches_the_conditioning_and_a_loop_conditions_on_the_first(backend, conditioning,
                                                                                     tmp_path):
    first, last = _picture(0), _picture(1)
    plain = backend.generate(_plan(), first, out_dir=tmp_path)
    ended = backend.generate(_plan(end_image="d" * 64), first, out_dir=tmp_path, end_image=last)
    looped = backend.generate(_plan(loop=True), first, out_dir=tmp_path)
    none, end, loop = conditioning
    assert none["last_image"] is None
    assert end["last_image"] is not None and loop["last_image"] is not None
    assert not torch.allclose(end["condition"], none["condition"])  # the end picture changed the conditioning
    assert not torch.allclose(end["last_image"], end["image"])
    torch.testing.assert_close(loop["last_image"], loop["image"])  # a loop ends on its first picture
    assert (plain.params["end_frame"], ended.params["end_frame"], looped.params["end_frame"]) == (
        None, "end picture", "loop")
    assert ended.params["plan"]["end_image"] == "d" * 64


def test_a_batch_of_three_seeds_in_one_call_equals_three_single_renders(backend, conditioning, tmp_path,
                                                                        frames_seen):
    plans = [_plan(seed=s) for s in (3, 4, 5)]
    singles = [backend.generate(p, _picture(0), out_dir=tmp_path) for p in plans]
    batch = backend.generate_batch(plans, _picture(0), out_dir=tmp_path)
    assert len(conditioning) == 4  # three single calls, then one call for the whole batch
    assert conditioning[-1]["condition"].shape[0] == 3
    single_frames, batch_frames = frames_seen[:3], frames_seen[3:]
    for one, many in zip(single_frames, batch_frames):
        np.testing.assert_allclose(many, one, atol=2e-3)
    assert not np.allclose(single_frames[0], single_frames[1], atol=2e-3)  # different seeds, different clips
    assert [r.params["seed"] for r in batch] == [3, 4, 5] == [r.params["seed"] for r in singles]
    assert all(r.params["batch_size"] == 3 for r in batch)
    with pytest.raises(ValueError, match="differs from clip 1 in more than its seed"):
        backend.generate_batch([plans[0], _plan(seed=9, duration_s=1.0)], _picture(0), out_dir=tmp_path)


def test_a_model_that_conditions_the_first_frame_only_leaves_the_end_picture_out_with_a_note():
    from types import SimpleNamespace

    from generation.sampling import Sampling
    from generation.wan_batch import last_image_for

    class FirstFrameOnly:  # TI2V-5B's shape: `expand_timesteps`, and no `last_image` in its call
        config = SimpleNamespace(expand_timesteps=True)

        def __call__(self, image=None, prompt=None):
            raise AssertionError("not called")

    sampling = Sampling(steps=4, guidance=(1.0, 1.0), flow_shift=None, num_frames=9, fps=16, recipe=None, notes=())
    last, out = last_image_for(_plan(loop=True), FirstFrameOnly(), _picture(0), None, sampling)
    assert last is None and "this model cannot end on a picture" in out.notes[-1] and "seamless loop" in out.notes[-1]
    last, out = last_image_for(_plan(end_image="e" * 64), FirstFrameOnly(), None, _picture(1), sampling)
    assert last is None and "renders from words alone" in out.notes[-1]
    assert last_image_for(_plan(), FirstFrameOnly(), _picture(0), None, sampling) == (None, sampling)
