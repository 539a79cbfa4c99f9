"""Where #12's two halves meet: a longer (chained) video that loops or ends on a picture, a batch of variations
of a longer video, and the plan refusing a story that would also loop or end elsewhere (preview backend)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.compiler import compile_plan
from agent.plan import Camera, Motion, MotionPlan, PlanError
from generation import segments
from generation.end_frame import fit_to, psnr
from generation.image import preprocess
from generation.preview import PreviewBackend

AREA = 96 * 64
SHORT = 17  # a segment's most frames here (tests only): a 2 s video is 3 chained segments


def _plan(seconds: float = 2.0, **changes) -> MotionPlan:
    fields = dict(template="landscape", duration_s=seconds, seed=3, camera=Camera(move="pan_right"),
                  motions=(Motion(subject="water", action="ripple", intensity=0.8),))
    return compile_plan(MotionPlan.create(**{**fields, **changes}))


class Recording:
    """Keeps what each segment was asked to end on."""

    def __init__(self, inner):
        self.inner, self.name, self.ends = inner, inner.name, []

    def render_segment(self, plan, image, **kw):
        self.ends.append(kw.get("last_image"))
        assert not plan.loop and plan.end_image is None and plan.variations == 1  # the whole video's, not a segment's
        return self.inner.render_segment(plan, image, **kw)


def test_a_chained_loop_ends_on_its_first_picture_and_an_end_picture_on_that_picture(gh, tmp_path):
    first, last = gh.photo("astronaut", 128), gh.photo("chelsea", 128)
    rec = Recording(PreviewBackend(max_area=AREA, threads=1))
    loop = segments.generate(rec, _plan(loop=True), first, out_dir=tmp_path / "loop", max_segment_frames=SHORT)
    assert len(rec.ends) == 3 and rec.ends[:2] == [None, None]  # the last segment only, on the first picture
    assert psnr(np.asarray(rec.ends[2]), np.asarray(segments.fit_picture(first, rec.ends[2].size))) >= 99.0
    assert loop.params["end_frame"] == "loop" and loop.params["segment_count"] == 3
    rec.ends.clear()
    ended = segments.generate(rec, _plan(end_image="e" * 64), first, out_dir=tmp_path / "end", end_image=last,
                              max_segment_frames=SHORT)
    assert rec.ends[:2] == [None, None] and rec.ends[2] is not None and ended.params["end_frame"] == "end picture"
    with pytest.raises(ValueError, match="not given to the renderer"):
        segments.generate(rec, _plan(end_image="e" * 64), first, out_dir=tmp_path / "x", max_segment_frames=SHORT)
    # measured on the rendered frames: a loop's last frame is its first picture, an end picture's is that picture
    backend = PreviewBackend(max_area=AREA, threads=1)
    start = np.asarray(preprocess(first, max_area=AREA))
    seg = segments.plan_segments(_plan(loop=True), max_frames=SHORT)[-1]
    frames, _ = backend.render_segment(seg.plan, first, last_image=first, rest_start=True)
    assert psnr(frames[-1], start) >= 35.0
    frames, _ = backend.render_segment(seg.plan, first, last_image=last, rest_start=True)
    assert psnr(frames[-1], np.asarray(fit_to(last, start.shape[1::-1]))) >= 35.0


def test_a_story_cannot_also_loop_or_end_on_another_picture():
    keys = ("a" * 64, "b" * 64)
    for extra in ({"loop": True}, {"end_image": "c" * 64}):
        with pytest.raises(PlanError, match="a story ends on its last picture"):
            MotionPlan.create(template="landscape", story_images=keys, **extra)
    assert MotionPlan.create(template="landscape", story_images=keys, variations=3).variations == 3


def test_a_batch_of_longer_videos_renders_each_clip_chained(gen_store, gh, tmp_path):
    from generation.jobs import Runner

    cat = tmp_path / "cat.png"
    gh.photo("chelsea", 96).save(cat)
    plan = _plan(6.0, variations=2, steps=4)
    with Runner(gen_store, {"preview": PreviewBackend(max_area=64 * 48, threads=1)}) as runner:
        records = runner.submit_batch(plan, cat, backend="preview")
        done = [runner.wait(r.id, timeout=120) for r in records]
    assert [r.status for r in done] == ["succeeded"] * 2, [r.error for r in done]
    assert [r.params["segment_count"] for r in done] == [2, 2] and done[0].num_frames == plan.num_frames
    assert len({r.params["sha256"] for r in done}) == 2 and len({r.batch_id for r in done}) == 1
