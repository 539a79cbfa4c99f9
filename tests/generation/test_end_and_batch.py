"""End frame, seamless loop and variations on the preview backend and through the job runner (#12 §1, §3):
measured on scikit-image photos, and reproduced bit for bit by a rerun."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.compiler import compile_plan, default_plan
from agent.end_and_batch import batch_plans
from agent.plan import MotionPlan, PlanError
from generation.end_frame import fit_to, psnr
from generation.events import Progress
from generation.export import probe_video
from generation.image import preprocess
from generation.jobs import JobError, Runner
from generation.preview import PreviewBackend

AREA = 128 * 96  # small clips: the measurements hold at any size


def _plan(template: str = "landscape", **changes) -> MotionPlan:
    return compile_plan(default_plan(template, seed=11).with_changes(**{"duration_s": 1.0, **changes}))


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_a_loop_ends_on_its_first_frame_and_a_plain_clip_does_not(gh, photo):
    backend = PreviewBackend(max_area=AREA)
    picture = gh.photo(photo, 256)
    for template in ("landscape", "animals"):  # a pan and a zoom, with subject motion
        looped = backend.render(_plan(template, loop=True, atmosphere=("snow", "fog")), picture)
        plain = backend.render(_plan(template, atmosphere=("snow", "fog")), picture)
        assert psnr(looped[0], looped[-1]) >= 35.0, (photo, template)
        assert psnr(plain[0], plain[-1]) < 35.0, (photo, template)
        # the loop moves in between: its middle frame is far from its first
        assert psnr(looped[0], looped[len(looped) // 2]) < 30.0


def test_an_end_picture_is_reached_along_the_motion_path_not_by_a_plain_fade(gh):
    backend = PreviewBackend(max_area=AREA)
    first, last = gh.photo("astronaut", 256), gh.photo("chelsea", 256)
    plan = _plan("landscape", end_image="a" * 64, duration_s=3.0)  # a pan, clouds, water and trees moving
    frames = backend.render(plan, first, last)
    start = np.asarray(preprocess(first, max_area=AREA))
    end = np.asarray(fit_to(last, start.shape[1::-1]))
    assert frames.shape[1:3] == end.shape[:2]
    assert psnr(frames[-1], end) >= 35.0  # it ends on the end picture
    assert psnr(frames[-1], start) < 20.0
    # a plain fade of the two still pictures is not what the middle shows: the camera and the motion play
    mid = len(frames) // 2
    w = mid / (len(frames) - 1)
    weight = w * w * (3 - 2 * w)
    fade = ((1 - weight) * start + weight * end).round().astype(np.uint8)
    assert psnr(frames[mid], fade) < 23.0
    # without the picture the renderer refuses with a sentence
    with pytest.raises(ValueError, match="not given to the renderer"):
        backend.render(plan, first)


def test_loop_and_end_picture_are_exclusive_in_a_plan():
    with pytest.raises(PlanError, match="loop ends on the first picture"):
        MotionPlan.create(template="landscape", loop=True, end_image="b" * 64)


@pytest.fixture
def cat(gh, tmp_path):
    p = tmp_path / "cat.jpg"
    gh.photo("chelsea", 160).save(p)
    return p


def test_a_batch_of_three_is_one_job_three_records_and_each_reruns_bit_for_bit(gen_store, cat):
    backend = PreviewBackend(max_area=160 * 96)
    plan = _plan(variations=3, duration_s=0.5)
    with Runner(gen_store, {"preview": backend}, start=False) as runner:
        records = runner.submit_batch(plan, cat, backend="preview")
        progress: list[Progress] = []
        runner.subscribe(lambda e: progress.append(e) if isinstance(e, Progress) and e.job_id == records[0].id else None)
        runner.start()
        done = [runner.wait(r.id, timeout=60) for r in records]
        assert [r.status for r in done] == ["succeeded"] * 3, [r.error for r in done]
        batch = {r.batch_id for r in done}
        assert len(batch) == 1 and None not in batch
        assert [r.seed for r in done] == [p.seed for p in batch_plans(plan)]
        assert len({r.seed for r in done}) == 3 and all(r.plan["variations"] == 1 for r in done)
        assert all(r.params["batch_size"] == 3 for r in done)  # rendered together, in one job
        assert [r.id for r in gen_store.list_batch(batch.pop())] == [r.id for r in records]
        # one progress bar across the three clips
        steps = [e for e in progress if e.stage == "rendering"]
        assert steps[-1].step == steps[-1].total == 3 * plan.num_frames
        # each clip is its own video, and rerunning one (a single job) gives the same bytes
        shas = [r.params["sha256"] for r in done]
        assert len(set(shas)) == 3
        again = runner.submit(MotionPlan.from_dict(done[1].plan), done[1].source_image_id, backend="preview")
        assert runner.wait(again.id, timeout=60).params["sha256"] == shas[1]
        assert gen_store.get_generation(again.id).batch_id is None


def test_submit_of_a_plan_with_variations_records_a_batch(gen_store, cat):
    with Runner(gen_store, {"preview": PreviewBackend(max_area=160 * 96)}, start=False) as runner:
        first = runner.submit(_plan(variations=2, duration_s=0.5), cat, backend="preview")
        assert first.batch_id is not None and len(gen_store.list_batch(first.batch_id)) == 2


def test_an_end_picture_job_stores_its_key_and_reruns_bit_for_bit(gen_store, cat, gh):
    import io

    buf = io.BytesIO()
    gh.photo("coffee", 160).save(buf, "PNG")
    end = gen_store.add_image(buf.getvalue(), filename="end.png")
    with Runner(gen_store, {"preview": PreviewBackend(max_area=160 * 96)}) as runner:
        with pytest.raises(JobError, match="not in the media store"):
            runner.submit(_plan(end_image="c" * 64, duration_s=0.5), cat, backend="preview")
        rec = runner.submit(_plan(end_image=end.sha256, duration_s=0.5), cat, backend="preview")
        first = runner.wait(rec.id, timeout=60)
        assert first.status == "succeeded", first.error
        assert first.plan["end_image"] == end.sha256 and first.params["end_frame"] == "end picture"
        assert probe_video(first.video_path)["metadata"]["plan"]["end_image"] == end.sha256
        again = runner.wait(runner.submit(first.plan, first.source_image_id, backend="preview").id, timeout=60)
        assert again.params["sha256"] == first.params["sha256"]
        loop = runner.wait(runner.submit(_plan(loop=True, duration_s=0.5), cat, backend="preview").id, timeout=60)
        assert loop.params["end_frame"] == "loop" and Path(loop.video_path).is_file()


def test_a_batch_belongs_to_its_person_and_counts_every_clip_against_the_quota(gen_store, cat):
    """A batch of N is N jobs of the person who asked (storage migration 5's user_id on each record): refused
    whole, with nothing written, when it does not fit in their quota; others do not see it unless shared."""
    from storage import QuotaExceededError

    with Runner(gen_store, {"preview": PreviewBackend(max_area=160 * 96)}, start=False) as runner:
        runner.submit(_plan(duration_s=0.5), cat, backend="preview", user="ann", quota=4)
        with pytest.raises(QuotaExceededError, match="a batch of 4 variations would pass the limit per person of 4"):
            runner.submit_batch(_plan(variations=4, duration_s=0.5), cat, backend="preview", user="ann", quota=4)
        with pytest.raises(QuotaExceededError):  # a plan with variations through submit: the same batch rule
            runner.submit(_plan(variations=4, duration_s=0.5), cat, backend="preview", user="ann", quota=4)
        assert gen_store.active_jobs("ann") == 1  # nothing of either batch was written
        records = runner.submit_batch(_plan(variations=3, duration_s=0.5), cat, backend="preview", user="ann",
                                      quota=4)
        assert [r.user_id for r in records] == ["ann"] * 3 and gen_store.active_jobs("ann") == 4
        assert len({r.batch_id for r in records}) == 1
        assert gen_store.list_batch(records[0].batch_id, viewer="bob") == []
        assert [r.id for r in gen_store.list_batch(records[0].batch_id, viewer="ann")] == [r.id for r in records]
