"""The Store API: conversations, messages, images, the generation lifecycle, gallery, lineage."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from storage import (
    DEFAULT_INTERRUPTED_MESSAGE,
    GenerationRecord,
    InvalidFieldError,
    InvalidTransitionError,
    MIGRATIONS,
    NotFoundError,
    open_store,
)
from storage.models import Generation

# --- conversations and messages -------------------------------------------------------------------


def test_conversation_crud(store):
    a = store.create_conversation("first")
    b = store.create_conversation()
    assert (a.id, a.title, b.title) == (1, "first", "")
    assert store.get_conversation(a.id) == a
    assert a.created_at.tzinfo is not None and a.created_at.utcoffset() == timedelta(0)
    renamed = store.rename_conversation(b.id, "second")
    assert renamed.title == "second" and store.get_conversation(b.id).title == "second"
    with pytest.raises(NotFoundError, match="no conversation with id 99"):
        store.get_conversation(99)


def test_list_conversations_most_recent_activity_first(store):
    a, b, c = (store.create_conversation(t) for t in "abc")
    store.append_message(a.id, "user", "hello again")
    assert [x.title for x in store.list_conversations()] == ["a", "c", "b"]
    assert [x.title for x in store.list_conversations(limit=1, offset=1)] == ["c"]


def test_messages_keep_order_role_text_and_plan(store, conv, make_plan):
    plan = make_plan()
    m1 = store.append_message(conv.id, "user", "make the waves move")
    m2 = store.append_message(conv.id, "assistant", "Here is a plan", plan=plan, meta={"diff": ["seed"]})
    plan["seed"] = 7  # the caller's later mutation must not reach the store
    msgs = store.list_messages(conv.id)
    assert [m.id for m in msgs] == [m1.id, m2.id]
    assert [(m.role, m.text) for m in msgs] == [("user", "make the waves move"), ("assistant", "Here is a plan")]
    assert msgs[0].plan is None and msgs[1].plan["seed"] == 42 and msgs[1].meta == {"diff": ["seed"]}


def test_append_message_validates(store, conv):
    with pytest.raises(InvalidFieldError, match="role must be one of user, assistant, system; got 'bot'"):
        store.append_message(conv.id, "bot", "hi")
    with pytest.raises(InvalidFieldError, match="plan must be JSON-serializable"):
        store.append_message(conv.id, "assistant", "hi", plan={"x": object()})
    with pytest.raises(NotFoundError):
        store.append_message(12345, "user", "hi")
    assert store.list_messages(conv.id) == []


def test_delete_conversation_keeps_generations_detached(store, conv, new_gen):
    store.append_message(conv.id, "user", "hi")
    g = new_gen()
    store.delete_conversation(conv.id)
    assert store.counts()["messages"] == 0 and store.counts()["conversations"] == 0
    assert store.get_generation(g.id).conversation_id is None


def test_records_are_frozen(store, conv):
    with pytest.raises(dataclasses.FrozenInstanceError):
        conv.title = "x"  # type: ignore[misc]


# --- images ---------------------------------------------------------------------------------------


def test_add_image_reads_size_and_stores_file_once(store, png_bytes):
    data = png_bytes(8, 6)
    img = store.add_image(data, filename="beach.png")
    assert (img.width, img.height, img.format, img.size_bytes) == (8, 6, "png", len(data))
    assert img.path.read_bytes() == data and img.path.suffix == ".png"
    assert img.path.is_relative_to(store.media.root) and img.sha256 in img.path.name
    again = store.add_image(data, filename="copy.png")
    assert again == img  # same record, first filename kept
    assert store.counts()["source_images"] == 1
    assert len(list(store.media.root.glob("*/*.png"))) == 1
    other = store.add_image(png_bytes(8, 6, (0, 0, 255)))
    assert other.id != img.id and store.get_image(other.id) == other
    assert store.find_image(img.sha256) == img and store.find_image("0" * 64) is None


def test_add_image_restores_a_lost_file(store, png_bytes):
    img = store.add_image(png_bytes())
    img.path.unlink()
    assert store.add_image(png_bytes()).path.is_file()


def test_add_image_explicit_size_skips_pillow_and_rejects_garbage(store):
    img = store.add_image(b"\x89not really", width=640, height=480, format="JPEG")
    assert (img.width, img.height, img.format, img.path.suffix) == (640, 480, "jpeg", ".jpg")
    with pytest.raises(InvalidFieldError, match="not an image"):
        store.add_image(b"garbage bytes")
    with pytest.raises(InvalidFieldError, match="non-empty bytes"):
        store.add_image(b"")
    with pytest.raises(InvalidFieldError, match=r"width must be in \[1, "):
        store.add_image(b"x", width=0, height=4, format="png")


# --- generation create and columns ------------------------------------------------------------------


def test_create_generation_copies_plan_columns(store, conv, make_plan, png_bytes):
    img = store.add_image(png_bytes())
    plan = make_plan(extra_future_field={"kept": True})
    params = {"lora": [{"id": "lightx2v", "scale": 1.0}], "quantization": "int8wo", "flow_shift": 5.0}
    g = store.create_generation(conv.id, plan, img.id, "wan", "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
                                params=params, width=832, height=480)
    assert g.status == "queued" and g.attempts == 0 and g.progress is None
    assert g.plan == plan and g.params == params
    assert (g.template, g.seed, g.steps, g.duration_s, g.num_frames, g.fps) == ("landscape", 42, 4, 3.0, 49, 16)
    assert (g.guidance_scale, g.guidance_scale_2, g.width, g.height) == (1.0, 1.0, 832, 480)
    assert g.prompt == plan["prompt"] and g.negative_prompt == "blurry, static"
    assert (g.backend, g.model_id, g.source_image_id, g.conversation_id) == (
        "wan", "Wan-AI/Wan2.2-I2V-A14B-Diffusers", img.id, conv.id)
    assert store.get_generation(g.id) == g


def test_create_generation_minimal_plan_and_plan_size(store):
    g = store.create_generation(None, {"template": "abstract", "width": 320, "height": 192}, None, "preview", "")
    assert g.conversation_id is None and g.seed is None and (g.width, g.height) == (320, 192)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": "42"}, r"plan\['seed'\] must be an integer, got '42' \(str\)"),
        ({"steps": True}, r"plan\['steps'\] must be an integer"),
        ({"duration_s": float("nan")}, r"plan\['duration_s'\] must be a finite number"),
        ({"prompt": 3}, r"plan\['prompt'\] must be a string"),
        ({"seed": 2**70}, r"plan\['seed'\] must be in"),
    ],
)
def test_create_generation_rejects_bad_plan_fields(store, conv, make_plan, changes, message):
    with pytest.raises(InvalidFieldError, match=message):
        store.create_generation(conv.id, make_plan(**changes), None, "preview", "m")
    assert store.counts()["generations"] == 0


def test_create_generation_checks_references(store, conv, make_plan):
    with pytest.raises(NotFoundError, match="no source image with id 5"):
        store.create_generation(conv.id, make_plan(), 5, "preview", "m")
    with pytest.raises(NotFoundError, match="no parent generation with id 9"):
        store.create_generation(conv.id, make_plan(), None, "preview", "m", parent_id=9)
    with pytest.raises(NotFoundError, match="no conversation with id 77"):
        store.create_generation(77, make_plan(), None, "preview", "m")
    with pytest.raises(InvalidFieldError, match="backend must not be empty"):
        store.create_generation(conv.id, make_plan(), None, " ", "m")
    with pytest.raises(InvalidFieldError, match="plan must be a dict"):
        store.create_generation(conv.id, [1, 2], None, "preview", "m")  # type: ignore[arg-type]
    assert store.counts()["generations"] == 0


# --- lifecycle --------------------------------------------------------------------------------------


def test_full_lifecycle(store, new_gen):
    g = new_gen()
    running = store.claim_generation(g.id)
    assert running.status == "running" and running.attempts == 1 and running.started_at is not None
    assert store.claim_generation(g.id) is None  # already taken
    p = store.update_progress(g.id, "denoising", step=2, total=4, eta_s=3.5)
    assert (p.progress.stage, p.progress.step, p.progress.total, p.progress.eta_s) == ("denoising", 2, 4, 3.5)
    video = store.media.put_bytes(b"mp4", ".mp4")
    thumb = store.media.put_bytes(b"jpg", ".jpg")
    done = store.finish_generation(
        g.id, "succeeded", video_path=video.path, thumbnail_path=thumb.path,
        timings={"total_s": 12.5}, params={"diffusers": "0.42.1"},
    )
    assert done.status == "succeeded" and done.error is None and done.is_terminal and not done.is_active
    assert done.video_path == video.path and done.thumbnail_path == thumb.path
    assert done.timings == {"total_s": 12.5} and done.params == {"diffusers": "0.42.1"}
    assert done.finished_at >= done.started_at >= done.created_at


def test_paths_are_stored_relative_to_media_root(store, new_gen, tmp_path):
    g = new_gen()
    store.claim_generation(g.id)
    video = store.media.put_bytes(b"v", ".mp4")
    store.finish_generation(g.id, "succeeded", video_path=str(video.path))
    with store._read() as s:
        assert s.get(Generation, g.id).video_path == video.key
    outside = tmp_path / "elsewhere.mp4"
    h = new_gen()
    store.claim_generation(h.id)
    assert store.finish_generation(h.id, "succeeded", video_path=outside).video_path == outside


def test_params_and_timings_merge_on_finish(store, conv, make_plan):
    g = store.create_generation(conv.id, make_plan(), None, "wan", "m", params={"quantization": "int8wo"})
    store.claim_generation(g.id)
    done = store.finish_generation(g.id, "failed", error="CUDA out of memory",
                                   params={"torch": "2.13.0"}, timings={"load_s": 3})
    assert done.params == {"quantization": "int8wo", "torch": "2.13.0"}
    assert done.error == "CUDA out of memory" and done.timings == {"load_s": 3}


@pytest.mark.parametrize(
    ("setup", "status", "message"),
    [
        ("queued", "succeeded", "generation 1 is queued; it cannot become succeeded .only from running."),
        ("succeeded", "failed", "generation 1 is succeeded; it cannot become failed"),
        ("cancelled", "cancelled", "generation 1 is cancelled; it cannot become cancelled"),
    ],
)
def test_invalid_transitions_are_refused(store, new_gen, finish_ok, setup, status, message):
    g = new_gen()
    if setup == "succeeded":
        finish_ok(g.id)
    elif setup == "cancelled":
        store.cancel_queued(g.id)
    before = store.get_generation(g.id)
    with pytest.raises(InvalidTransitionError, match=message):
        store.finish_generation(g.id, status, error="boom", video_path="x.mp4")
    assert store.get_generation(g.id) == before


def test_finish_validates_arguments(store, new_gen):
    g = new_gen()
    store.claim_generation(g.id)
    with pytest.raises(InvalidFieldError, match="status must be one of succeeded, failed, cancelled; got 'done'"):
        store.finish_generation(g.id, "done")
    with pytest.raises(InvalidFieldError, match="error must be a non-empty message"):
        store.finish_generation(g.id, "failed")
    with pytest.raises(InvalidFieldError, match="video_path is required"):
        store.finish_generation(g.id, "succeeded")
    with pytest.raises(NotFoundError, match="no generation with id 404"):
        store.finish_generation(404, "cancelled")
    assert store.get_generation(g.id).status == "running"


def test_update_progress_only_while_running_and_validated(store, new_gen):
    g = new_gen()
    with pytest.raises(InvalidTransitionError, match="is queued; progress is recorded only while running"):
        store.update_progress(g.id, "denoising", 1, 4)
    store.claim_generation(g.id)
    with pytest.raises(InvalidFieldError, match=r"step must be in \[0, 4\], got 5"):
        store.update_progress(g.id, "denoising", 5, 4)
    with pytest.raises(InvalidFieldError, match="eta_s must be >= 0.0"):
        store.update_progress(g.id, "denoising", 1, 4, eta_s=-1)


def test_cancel_queued_and_request_cancel(store, new_gen):
    a, b, c = new_gen(), new_gen(), new_gen()
    assert store.cancel_queued(a.id) is True
    assert store.get_generation(a.id).status == "cancelled" and store.get_generation(a.id).finished_at
    assert store.cancel_queued(a.id) is False
    store.claim_generation(b.id)
    assert store.cancel_queued(b.id) is False and store.get_generation(b.id).status == "running"
    # cancel from another process: the running job sees the flag in its next progress update
    assert store.request_cancel(b.id).cancel_requested is True
    assert store.update_progress(b.id, "denoising", 2, 4).cancel_requested is True
    assert store.finish_generation(b.id, "cancelled").status == "cancelled"
    assert store.request_cancel(c.id).status == "cancelled"


def test_claim_next_takes_oldest_queued_per_backend(store, new_gen):
    a = new_gen(backend="wan")
    b = new_gen(backend="preview")
    c = new_gen(backend="wan")
    assert store.queue_position(a.id) == 0 and store.queue_position(c.id) == 2
    assert store.claim_next(backend="preview").id == b.id
    assert store.claim_next().id == a.id
    assert store.queue_position(a.id) is None and store.queue_position(c.id) == 0
    assert store.claim_next(backend="preview") is None
    assert store.claim_next().id == c.id and store.claim_next() is None


def test_mark_interrupted_fails_queued_and_running_only(store, new_gen, finish_ok):
    queued, running, done = new_gen(), new_gen(), new_gen()
    store.claim_generation(running.id)
    finish_ok(done.id)
    assert store.mark_interrupted() == [queued.id, running.id]
    for gid in (queued.id, running.id):
        g = store.get_generation(gid)
        assert g.status == "failed" and g.error == DEFAULT_INTERRUPTED_MESSAGE and g.finished_at
    assert store.get_generation(done.id).status == "succeeded"
    assert store.mark_interrupted("again") == []


def test_requeue_in_place(store, new_gen):
    g = new_gen()
    store.claim_generation(g.id)
    store.update_progress(g.id, "denoising", 3, 4)
    store.finish_generation(g.id, "failed", error="boom", timings={"total_s": 1})
    again = store.requeue(g.id)
    assert again.id == g.id and again.status == "queued" and again.attempts == 1
    assert again.error is None and again.progress is None and again.timings is None
    assert again.started_at is None and again.finished_at is None and again.plan == g.plan
    assert store.claim_generation(g.id).attempts == 2
    with pytest.raises(InvalidTransitionError, match="is running; it cannot become queued"):
        store.requeue(g.id)


# --- delete ------------------------------------------------------------------------------------------


def test_delete_generation_removes_unshared_files_and_detaches_children(store, new_gen, finish_ok):
    parent = new_gen()
    done = finish_ok(parent.id)
    child = new_gen(parent_id=parent.id)
    store.delete_generation(parent.id)
    assert not done.video_path.exists()
    assert store.get_generation(child.id).parent_id is None
    with pytest.raises(NotFoundError):
        store.get_generation(parent.id)


def test_delete_keeps_shared_or_outside_files(store, new_gen, tmp_path):
    video = store.media.put_bytes(b"same content", ".mp4")
    outside = tmp_path / "mine.mp4"
    outside.write_bytes(b"user file")
    a, b, c = new_gen(), new_gen(), new_gen()
    for g, path in ((a, video.path), (b, video.path), (c, outside)):
        store.claim_generation(g.id)
        store.finish_generation(g.id, "succeeded", video_path=path)
    store.delete_generation(a.id)
    assert video.path.exists()  # b still uses it
    store.delete_generation(c.id)
    assert outside.exists()  # never delete files outside the media folder
    store.delete_generation(b.id, remove_files=True)
    assert not video.path.exists()


def test_delete_running_is_refused(store, new_gen):
    g = new_gen()
    store.claim_generation(g.id)
    with pytest.raises(InvalidTransitionError, match="is running; cancel it before deleting it"):
        store.delete_generation(g.id)


# --- lists, gallery and lineage ----------------------------------------------------------------------


def test_list_generations_in_creation_order(store, conv, new_gen, make_plan):
    other = store.create_conversation("other")
    ids = [new_gen(seed=s).id for s in (5, 6, 7)]
    store.create_generation(other.id, make_plan(), None, "preview", "m")
    listed = store.list_generations(conv.id)
    assert [g.id for g in listed] == ids and [g.seed for g in listed] == [5, 6, 7]
    assert all(isinstance(g, GenerationRecord) for g in listed)


@pytest.fixture
def gallery(store, conv, make_plan):
    """12 generations with known templates, statuses, backends, seeds, prompts and creation days."""
    other = store.create_conversation("other")
    base = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    specs = []
    for i in range(12):
        template = ["landscape", "portrait_subtle", "animals"][i % 3]
        backend = "wan" if i % 2 else "preview"
        prompt = f"Clip {i}: " + ("golden hour waves" if i % 4 == 0 else "a dog wags its tail")
        g = store.create_generation(other.id if i >= 10 else conv.id,
                                    make_plan(template=template, seed=100 + i % 5, prompt=prompt),
                                    None, backend, "m")
        specs.append(g)
    # spread creation over 12 days; statuses: 0-5 succeeded, 6-7 failed, 8 cancelled, 9 running, 10-11 queued
    with store._write() as s:
        for i, g in enumerate(specs):
            s.execute(update(Generation).where(Generation.id == g.id)
                      .values(created_at=base + timedelta(days=i)))
    for i, g in enumerate(specs):
        if i <= 5:
            store.claim_generation(g.id)
            store.finish_generation(g.id, "succeeded", video_path=store.media.put_bytes(bytes([i]), ".mp4").path)
        elif i <= 7:
            store.claim_generation(g.id)
            store.finish_generation(g.id, "failed", error="boom")
        elif i == 8:
            store.cancel_queued(g.id)
        elif i == 9:
            store.claim_generation(g.id)
    return {"ids": [g.id for g in specs], "base": base, "other": other}


def _ids(page):
    return [g.id for g in page.items]


def test_gallery_unfiltered_newest_first(store, gallery):
    page = store.list_gallery()
    assert page.total == 12 and _ids(page) == gallery["ids"][::-1]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"template": "animals"}, [2, 5, 8, 11]),
        ({"template": ["animals", "landscape"]}, [0, 2, 3, 5, 6, 8, 9, 11]),
        ({"status": "succeeded"}, [0, 1, 2, 3, 4, 5]),
        ({"status": ["failed", "cancelled"]}, [6, 7, 8]),
        ({"status": "running"}, [9]),
        ({"backend": "wan"}, [1, 3, 5, 7, 9, 11]),
        ({"seed": 101}, [1, 6, 11]),
        ({"text": "GOLDEN hour"}, [0, 4, 8]),
        ({"text": "100%"}, []),  # LIKE wildcards are escaped
        ({"text": "clip 1_"}, []),
        ({"created_from": datetime(2026, 1, 5, 14, tzinfo=timezone(timedelta(hours=2))),
          "created_to": datetime(2026, 1, 7, 12, tzinfo=UTC)}, [4, 5]),  # aware times in any zone
        ({"created_from": datetime(2026, 1, 5, tzinfo=UTC), "created_to": datetime(2026, 1, 8, tzinfo=UTC)},
         [4, 5, 6]),
        ({"created_from": date(2026, 1, 11)}, [10, 11]),
        ({"created_to": date(2026, 1, 2)}, [0, 1]),  # a date includes its whole day
        ({"template": "landscape", "status": "succeeded", "backend": "preview"}, [0]),
        ({"text": "dog", "seed": 103}, [3]),
    ],
)
def test_gallery_filters(store, gallery, filters, expected):
    page = store.list_gallery(**filters)
    want = [gallery["ids"][i] for i in expected][::-1]
    assert _ids(page) == want and page.total == len(want)


def test_times_come_back_aware_utc_and_exact(store, new_gen):
    g = new_gen()
    store.claim_generation(g.id)
    back = store.get_generation(g.id)
    assert back.created_at == g.created_at and back.created_at.utcoffset() == timedelta(0)
    assert back.started_at is not None and back.started_at.tzinfo == UTC and back.started_at >= back.created_at


def test_gallery_conversation_filter(store, conv, gallery):
    assert _ids(store.list_gallery(conversation_id=gallery["other"].id)) == gallery["ids"][11:9:-1]
    assert store.list_gallery(conversation_id=conv.id).total == 10


def test_gallery_paging(store, gallery):
    ids = gallery["ids"][::-1]
    pages = [store.list_gallery(page=n, page_size=5) for n in (1, 2, 3, 4)]
    assert [_ids(p) for p in pages] == [ids[0:5], ids[5:10], ids[10:12], []]
    assert all(p.total == 12 and p.pages == 3 for p in pages)
    assert pages[0].has_next and pages[1].has_next and not pages[2].has_next
    filtered = store.list_gallery(status="succeeded", page=2, page_size=4)
    assert filtered.total == 6 and _ids(filtered) == [gallery["ids"][i] for i in (1, 0)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page": 0}, r"page must be in \[1, "),
        ({"page_size": 501}, r"page_size must be in \[1, 500\]"),
        ({"status": "done"}, "status must be one of queued, running, succeeded, failed, cancelled; got 'done'"),
        ({"seed": "1"}, "seed must be an integer"),
        ({"created_from": "yesterday"}, "created_from must be a datetime or a date"),
    ],
)
def test_gallery_rejects_bad_filters(store, kwargs, message):
    with pytest.raises(InvalidFieldError, match=message):
        store.list_gallery(**kwargs)


def test_lineage(store, new_gen):
    root = new_gen()
    mid = new_gen(parent_id=root.id)
    leaf_a = new_gen(parent_id=mid.id)
    leaf_b = new_gen(parent_id=mid.id)
    lin = store.lineage(mid.id)
    assert lin.generation.id == mid.id
    assert [g.id for g in lin.ancestors] == [root.id]
    assert [g.id for g in lin.children] == [leaf_a.id, leaf_b.id]
    deep = store.lineage(leaf_b.id)
    assert [g.id for g in deep.ancestors] == [root.id, mid.id] and deep.children == ()
    top = store.lineage(root.id)
    assert top.ancestors == () and [g.id for g in top.children] == [mid.id]


def test_counts_and_info(store, conv, new_gen, png_bytes, db_url):
    store.append_message(conv.id, "user", "hi")
    store.add_image(png_bytes())
    g = new_gen()
    new_gen()
    store.claim_generation(g.id)
    assert store.counts() == {"conversations": 1, "messages": 1, "source_images": 1, "generations": 2}
    info = store.info()
    assert info.schema_version == info.latest_version == len(MIGRATIONS)
    assert info.generations_by_status == {"queued": 1, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert info.database_path == (store.home / "vividflow.db" if db_url is None else None)
    assert info.media_root == store.home / "media"


def test_open_store_env_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("VIVIDFLOW_HOME", str(tmp_path / "envhome"))
    with open_store() as s:
        assert s.database_path == (tmp_path / "envhome" / "vividflow.db").resolve()
        s.create_conversation("x")
    monkeypatch.setenv("VIVIDFLOW_DB_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with open_store() as s:
        assert s.database_path == (tmp_path / "other.db").resolve() and s.counts()["conversations"] == 0
        assert s.media.root == (tmp_path / "envhome" / "media").resolve()
    with open_store(url="sqlite://", home=tmp_path / "mem") as s:  # in-memory works too
        s.create_conversation("m")
        assert s.database_path is None and s.counts()["conversations"] == 1
    monkeypatch.setenv("VIVIDFLOW_MEDIA_ROOT", str(tmp_path / "shared-media"))  # a folder all hosts mount
    with open_store() as s:
        assert s.media.root == (tmp_path / "shared-media").resolve() and s.home == (tmp_path / "envhome").resolve()
