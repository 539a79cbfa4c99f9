"""generation.jobs.Runner: records before queueing, FIFO, progress, events, cancel, failures, recovery."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agent.plan import MotionPlan
from generation.backend import BackendUnavailable
from generation.events import Cancelled, Failed, Finished, Preview, Progress, Queued, Started
from generation.export import probe_video
from generation.jobs import JobError, Runner
from generation.preview import PreviewBackend
from storage import DEFAULT_INTERRUPTED_MESSAGE, SHARED_QUEUE

both_databases = pytest.mark.parametrize("gen_store", ["sqlite", "postgresql"], indirect=True)


def _plan(seed=0, **kw):
    kw.setdefault("template", "landscape")
    kw.setdefault("duration_s", 0.5)
    return MotionPlan.create(seed=seed, **kw)


@pytest.fixture
def cat(gh, tmp_path):
    p = tmp_path / "cat.jpg"
    gh.photo("chelsea", 160).save(p)
    return p


def _media_videos(store):
    root = Path(store.media.root)
    return sorted(p for p in root.rglob("*.mp4"))


@both_databases
def test_preview_job_end_to_end(gen_store, cat):
    events = []
    with Runner(gen_store, {"preview": PreviewBackend(max_area=160 * 96)}) as runner:
        runner.subscribe(events.append)
        rec = runner.submit(_plan(camera={"move": "pan_left"}), cat, backend="preview")
        assert rec.status == "queued" and rec.backend == "preview" and rec.model_id == "preview-warp-1"
        assert (rec.width, rec.height) == (144, 96)
        final = runner.wait(rec.id, timeout=60)
    assert final.status == "succeeded", final.error
    assert Path(final.video_path).is_file() and gen_store.media.contains(final.video_path)
    assert Path(final.video_path).stem == Path(final.video_path).parent.name + Path(final.video_path).stem[2:]
    info = probe_video(final.video_path)
    assert (info["num_frames"], info["width"], info["height"]) == (9, 144, 96)
    assert info["metadata"]["plan"]["camera"]["move"] == "pan_left"
    assert final.progress is not None and final.progress.stage == "exporting"
    assert final.timings["total_s"] > 0 and "render_s" in final.timings
    assert final.params["backend"] == "preview" and final.params["num_frames"] == 9
    kinds = [type(e) for e in events]
    assert kinds[0] is Queued and kinds[1] is Started and kinds[-1] is Finished
    assert all(e.job_id == rec.id for e in events)
    assert [e.step for e in events if isinstance(e, Progress) and e.stage == "rendering"] == list(range(1, 10))
    assert list((Path(gen_store.media.root) / ".tmp").iterdir()) == []  # staging cleaned
    # the source image was stored once, by content
    assert gen_store.get_image(final.source_image_id).path.read_bytes() == cat.read_bytes()


def test_previews_reach_subscribers_and_the_newest_is_kept_while_running(gen_store, cat, gh):
    class PreviewingBackend(gh.FakeBackend):
        def generate(self, plan, image, on_event, cancel, *, out_dir=None):
            def with_preview(event):
                on_event(event)
                if isinstance(event, Progress):
                    on_event(Preview(frame=np.full((4, 8, 3), event.step, np.uint8), step=event.step, total=event.total))

            return super().generate(plan, image, with_preview, cancel, out_dir=out_dir)

    seen = []
    with Runner(gen_store, {"preview": PreviewingBackend(steps=3)}) as runner:
        runner.subscribe(lambda e: seen.append((e, runner.latest_preview(e.job_id))) if isinstance(e, Preview) else None)
        rec = runner.submit(_plan(), cat, backend="preview")
        assert runner.wait(rec.id, 30).status == "succeeded"
        assert runner.latest_preview(rec.id) is None  # kept while the job runs only
    assert [(e.job_id, e.step, int(e.frame[0, 0, 0])) for e, _ in seen] == [(rec.id, s, s) for s in (1, 2, 3)]
    assert all(kept is e for e, kept in seen)


@both_databases
def test_progress_is_written_throttled_and_events_are_all_pushed(gen_store, cat, gh, monkeypatch):
    writes = []
    real = gen_store.update_progress
    monkeypatch.setattr(gen_store, "update_progress", lambda *a, **k: writes.append(a) or real(*a, **k))
    fake = gh.FakeBackend(steps=60, delay=0.01)  # ~0.6 s of steps
    pushed = []
    with Runner(gen_store, {"preview": fake}, progress_interval_s=0.2) as runner:
        runner.subscribe(lambda e: pushed.append(e) if isinstance(e, Progress) else None)
        rec = runner.submit(_plan(), cat, backend="preview")
        final = runner.wait(rec.id, 30)
    assert final.status == "succeeded"
    sampling_writes = [w for w in writes if w[1] == "sampling"]
    assert 2 <= len(sampling_writes) <= 8, len(sampling_writes)  # ~0.6 s / 0.2 s + first + last
    assert sampling_writes[-1][2:4] == (60, 60)  # the final step is always written
    assert len([e for e in pushed if e.stage == "sampling"]) == 60  # listeners get every event


@both_databases
def test_fifo_queue_positions_and_cancel_queued(gen_store, cat, gh):
    fake = gh.FakeBackend()
    runner = Runner(gen_store, {"preview": fake}, start=False)
    queued = []
    runner.subscribe(lambda e: queued.append((e.job_id, e.position)) if isinstance(e, Queued) else None)
    recs = [runner.submit(_plan(seed=i), cat, backend="preview") for i in range(4)]
    assert [runner.position(r.id) for r in recs] == [0, 1, 2, 3]
    assert [gen_store.queue_position(r.id) for r in recs] == [0, 1, 2, 3]
    runner.cancel(recs[1].id)
    assert gen_store.get_generation(recs[1].id).status == "cancelled"
    assert [runner.position(r.id) for r in recs] == [0, None, 1, 2]
    assert queued[-2:] == [(recs[2].id, 1), (recs[3].id, 2)]  # positions re-announced
    runner.start()
    finals = [runner.wait(r.id, 30) for r in recs]
    runner.close()
    assert [f.status for f in finals] == ["succeeded", "cancelled", "succeeded", "succeeded"]
    assert fake.calls == [0, 2, 3]  # FIFO, the cancelled one never started
    assert finals[1].started_at is None


@both_databases
def test_twenty_jobs_from_four_threads_five_cancelled(gen_store, cat, gh):
    fake = gh.FakeBackend(steps=3)
    started = []
    runner = Runner(gen_store, {"preview": fake}, start=False)
    runner.subscribe(lambda e: started.append(e.job_id) if isinstance(e, Started) else None)
    mine: dict[int, list[int]] = {}
    barrier = threading.Barrier(4)

    def submitter(k):
        barrier.wait()
        mine[k] = [runner.submit(_plan(seed=100 * k + i), cat, backend="preview").id for i in range(5)]

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = sorted(i for ids in mine.values() for i in ids)
    assert len(all_ids) == 20 and runner.queued() == all_ids  # queue order = record order
    # cancel 4 queued jobs now and one while it runs
    to_cancel_queued = [mine[0][1], mine[1][3], mine[2][0], mine[3][4]]
    for i in to_cancel_queued:
        runner.cancel(i)
    victim = mine[2][2]
    fake.delay = 0.02

    def cancel_when_started(e):
        if isinstance(e, Progress) and e.job_id == victim and e.step == 1:
            runner.cancel(victim)

    runner.subscribe(cancel_when_started)
    runner.start()
    finals = {i: runner.wait(i, 60) for i in all_ids}
    runner.close()
    statuses = [f.status for f in finals.values()]
    assert statuses.count("cancelled") == 5 and statuses.count("succeeded") == 15, statuses
    assert {i for i, f in finals.items() if f.status == "cancelled"} == set(to_cancel_queued) | {victim}
    assert finals[victim].started_at is not None and finals[victim].video_path is None
    # FIFO per submitter (and globally: started in record order)
    assert started == sorted(started)
    for ids in mine.values():
        order = [i for i in started if i in ids]
        assert order == sorted(order)
    succeeded = [f for f in finals.values() if f.status == "succeeded"]
    assert all(Path(f.video_path).is_file() for f in succeeded)


@both_databases
def test_cancel_running_job_keeps_no_video(gen_store, cat, gh):
    gate = threading.Event()
    fake = gh.FakeBackend(steps=50, delay=0.01, gate=gate)
    with Runner(gen_store, {"preview": fake}) as runner:
        events = []
        rec = runner.submit(_plan(), cat, backend="preview")
        runner.subscribe(events.append, job_id=rec.id)
        while not runner.running():
            time.sleep(0.01)
        runner.cancel(rec.id)
        gate.set()
        final = runner.wait(rec.id, 30)
    assert final.status == "cancelled" and final.video_path is None and final.error is None
    assert isinstance(events[-1], Cancelled)
    assert _media_videos(gen_store) == []


@both_databases
def test_cancel_from_another_process_through_the_record(gen_store, cat, gh):
    fake = gh.FakeBackend(steps=200, delay=0.01)
    with Runner(gen_store, {"preview": fake}, progress_interval_s=0.05) as runner:
        rec = runner.submit(_plan(), cat, backend="preview")
        while gen_store.get_generation(rec.id).status != "running":
            time.sleep(0.01)
        gen_store.request_cancel(rec.id)  # what another process (a page, the CLI) does
        final = runner.wait(rec.id, 30)
    assert final.status == "cancelled"
    assert len(fake.calls) == 1


@pytest.mark.parametrize(
    "exc, message",
    [(ValueError("the plan asks for 9000 frames"), "the plan asks for 9000 frames"),
     (RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory"),
     (KeyError("transformer_2"), "KeyError: 'transformer_2'")],
)
def test_failures_end_failed_with_a_readable_message(gen_store, cat, gh, caplog, exc, message):
    fake = gh.FakeBackend(fail=exc)
    events = []
    with Runner(gen_store, {"preview": fake}) as runner:
        runner.subscribe(events.append)
        rec = runner.submit(_plan(), cat, backend="preview")
        final = runner.wait(rec.id, 30)
        # the worker survives: the next job runs
        fake.fail = None
        assert runner.wait(runner.submit(_plan(), cat, backend="preview").id, 30).status == "succeeded"
    assert final.status == "failed" and final.error == message
    assert any(isinstance(e, Failed) and e.message == message for e in events)
    assert "Traceback" in caplog.text  # the traceback goes to the log
    assert list((Path(gen_store.media.root) / ".tmp").iterdir()) == []


def test_a_broken_listener_does_not_break_the_job(gen_store, cat, gh):
    with Runner(gen_store, {"preview": gh.FakeBackend()}) as runner:
        runner.subscribe(lambda e: 1 / 0)
        got = []
        unsubscribe = runner.subscribe(got.append)
        rec = runner.submit(_plan(), cat, backend="preview")
        assert runner.wait(rec.id, 30).status == "succeeded"
        unsubscribe()
        n = len(got)
        runner.wait(runner.submit(_plan(), cat, backend="preview").id, 30)
        assert len(got) == n  # unsubscribed


def _bad_inputs(tmp_path, cat):
    (tmp_path / "doc.ppm").write_bytes(b"P6\n32 32\n255\n" + b"\0" * 32 * 32 * 3)
    return {
        "missing image": (dict(image=tmp_path / "nope.png"), JobError, "image file not found"),
        "unsupported format": (dict(image=tmp_path / "doc.ppm"), JobError, "unsupported format PPM"),
        "corrupt image": (dict(image=b"\x89PNG\r\n\x1a\nnonsense"), JobError, "corrupt or truncated"),
        "invalid plan": (dict(plan={"template": "landscape", "duration_s": 99}), JobError, r"duration_s.*0.5–30"),
        "plan not JSON": (dict(plan="{nope"), JobError, "not valid JSON"),
        "unknown backend": (dict(backend="sora"), JobError, "unknown backend 'sora': choose one of preview, wan"),
        "no CUDA for wan": (dict(backend="wan"), BackendUnavailable, "no CUDA device: use the preview backend"),
        "unknown image id": (dict(image=999), JobError, "no source image with id 999"),
        "unknown conversation": (dict(conversation_id=42), JobError, "no conversation with id 42"),
        "no picture for the preview": (dict(image=None), JobError,
                                       "^the preview animates a picture: upload one, or use a text-to-video model$"),
    }


def test_bad_inputs_fail_before_anything_is_written(gen_store, cat, gh, tmp_path, monkeypatch):
    monkeypatch.delenv("VIVIDFLOW_WAN_DEVICE", raising=False)
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: 'wan' is available")
    runner = Runner(gen_store, {"preview": gh.FakeBackend()}, start=False)
    before = gh.db_snapshot(gen_store)
    for label, (kw, exc, match) in _bad_inputs(tmp_path, cat).items():
        args = {"plan": _plan(), "image": cat, "backend": "preview", **kw}
        with pytest.raises(exc, match=match):
            runner.submit(args.pop("plan"), args.pop("image"), **args)
        assert gh.db_snapshot(gen_store) == before, label
    runner.close()


@both_databases
def test_recovery_marks_interrupted_and_requeue_runs_them(gen_store, cat, gh):
    # what a dead process leaves: one running (with a half-written staging file) and one queued
    img = gen_store.add_image(cat.read_bytes(), filename="cat.jpg")
    a = gen_store.create_generation(None, _plan(seed=1).to_dict(), img.id, "preview", "fake-1")
    b = gen_store.create_generation(None, _plan(seed=2).to_dict(), img.id, "preview", "fake-1")
    gen_store.claim_generation(a.id)
    stale = Path(gen_store.media.root) / ".tmp" / f"job-{a.id}-deadbeef"
    stale.mkdir(parents=True)
    (stale / ".tmp-export-x.mp4").write_bytes(b"\0" * 100)
    fake = gh.FakeBackend()
    with Runner(gen_store, {"preview": fake}) as runner:
        assert runner.interrupted == [a.id, b.id]
        for g in (a, b):
            rec = gen_store.get_generation(g.id)
            assert rec.status == "failed" and rec.error == DEFAULT_INTERRUPTED_MESSAGE
        assert not stale.exists()
        requeued = runner.requeue_interrupted()
        assert [r.id for r in requeued] == [a.id, b.id]
        finals = [runner.wait(g.id, 30) for g in (a, b)]
    assert [f.status for f in finals] == ["succeeded", "succeeded"]
    assert finals[0].attempts == 2 and fake.calls == [1, 2]


@both_databases
def test_devices_and_lanes(gen_store, cat, gh):
    """A slow job on the GPU lane does not hold up previews on the CPU lane."""
    gate = threading.Event()
    slow = gh.FakeBackend(name="wan", gate=gate)
    quick = gh.FakeBackend(name="preview")
    with Runner(gen_store, {"wan": slow, "preview": quick}, devices=("cpu", "cuda:0"),
                serves={"cpu": ["preview"], "cuda:0": ["wan"]}) as runner:
        w = runner.submit(_plan(seed=1), cat, backend="wan")
        p = runner.submit(_plan(seed=2), cat, backend="preview")
        assert runner.wait(p.id, 30).status == "succeeded"
        assert runner.running() == {w.id: "cuda:0"}
        gate.set()
        assert runner.wait(w.id, 30).status == "succeeded"
        assert gen_store.get_generation(w.id).params["device"] == "cuda:0"


def test_choose_module(monkeypatch):
    from generation import choose

    assert choose.get_backend("preview").name == "preview"
    with pytest.raises(choose.UnknownBackend, match="choose one of preview, wan"):
        choose.get_backend("nope")
    monkeypatch.setenv("VIVIDFLOW_BACKEND", "preview")
    assert choose.default_backend_name() == "preview"
    monkeypatch.delenv("VIVIDFLOW_BACKEND")
    monkeypatch.setenv("VIVIDFLOW_WAN_MODEL", "/nonexistent/wan-folder")
    assert choose.wan_weights_present() is False
    assert choose.default_backend_name() == "preview"  # no weights: no torch import needed
    assert choose.model_id_for("preview") == "preview-warp-1"


@both_databases
def test_worker_survives_a_store_error_and_close_releases_waiters(gen_store, cat, gh, monkeypatch):
    runner = Runner(gen_store, {"preview": gh.FakeBackend()})
    real_claim = gen_store.claim_generation
    calls = []

    def flaky_claim(job_id, owner=None, lease_s=None):
        calls.append(job_id)
        if len(calls) == 1:
            raise OSError("disk I/O error")
        return real_claim(job_id, owner, lease_s)

    monkeypatch.setattr(gen_store, "claim_generation", flaky_claim)
    first = runner.submit(_plan(), cat, backend="preview")
    assert runner.wait(first.id, 30).status == "failed"
    assert runner.wait(runner.submit(_plan(), cat, backend="preview").id, 30).status == "succeeded"
    runner.close()
    # a runner that never started: close() releases anyone waiting on its queued jobs
    idle = Runner(gen_store, {"preview": gh.FakeBackend()}, start=False, recover=False)
    rec = idle.submit(_plan(), cat, backend="preview")
    assert gen_store.get_generation(rec.id).owner == idle.owner
    idle.close()
    left = idle.wait(rec.id, timeout=1)
    assert left.status == "queued" and left.owner is None  # released: the next start marks it interrupted
    with Runner(gen_store, {"preview": gh.FakeBackend()}, start=False) as again:  # same process
        assert again.interrupted == [rec.id]


@both_databases
def test_a_shared_queue_runner_keeps_its_lease_and_hears_a_cancel(gen_store, cat, gh):
    fake = gh.FakeBackend(steps=30, delay=0.03)  # ~1 s, three leases long
    with Runner(gen_store, {"preview": fake}, shared_queue=True, lease_s=0.3, poll_s=0.05) as runner:
        rec = runner.submit(_plan(seed=1), cat, backend="preview")
        assert rec.owner == SHARED_QUEUE  # any worker may take it
        final = runner.wait(rec.id, 30)
        assert (final.status, final.attempts, final.lease_retries, final.owner) == ("succeeded", 1, 0, runner.owner)
        assert final.heartbeat_at > final.started_at and final.lease_expires_at is None  # renewed, then ended
        fake.steps = 1000
        rec = runner.submit(_plan(seed=2), cat, backend="preview")
        while gen_store.get_generation(rec.id).status != "running":
            time.sleep(0.01)
        gen_store.request_cancel(rec.id)  # from another process: reaches the worker with the next renewal
        assert runner.wait(rec.id, 30).status == "cancelled"
    # a runner without devices only queues: the studio under VIVIDFLOW_WORKERS=external
    with Runner(gen_store, devices=(), shared_queue=True) as studio:
        queued = studio.submit(_plan(seed=3), cat, backend="preview")
        with pytest.raises(TimeoutError):
            studio.wait(queued.id, timeout=0.3)
        assert gen_store.get_generation(queued.id).status == "queued"
        assert studio.cancel(queued.id).status == "cancelled"
