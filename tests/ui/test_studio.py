"""The studio page under streamlit.testing.v1.AppTest: chat, plan panel, upload, generate, cancel, history."""

from __future__ import annotations

import pytest


def _chat_texts(at) -> list[tuple[str, str]]:
    return [(m.name, " ".join(x.value for x in m.markdown)) for m in at.chat_message]


def _diffs(at) -> list[str]:
    return [c.value for m in at.chat_message for c in m.caption]


def test_first_page_asks_for_a_picture(app):
    assert any("Upload a picture" in i.value for i in app.info)
    assert app.button(key="res.generate").disabled
    assert app.selectbox(key="pp.template").value == "portrait_subtle"


def test_chat_turn_updates_the_plan_panel(app, kit):
    at = kit.chat(app, "make her hair flow in the wind, slow zoom in")
    (role_u, text_u), (role_a, reply) = _chat_texts(at)
    assert (role_u, text_u) == ("user", "make her hair flow in the wind, slow zoom in")
    assert role_a == "assistant" and reply
    assert at.selectbox(key="pp.camera.move").value == "zoom_in"
    assert at.slider(key="pp.camera.speed").value < 1.0
    hair_speed = at.slider(key="pp.motion.hair.speed").value
    seed = at.number_input(key="pp.seed").value
    assert "wind" in at.text_area(key="pp.prompt").value

    at = kit.chat(at, "slower hair, same seed")
    assert at.slider(key="pp.motion.hair.speed").value < hair_speed
    assert at.number_input(key="pp.seed").value == seed
    assert at.selectbox(key="pp.camera.move").value == "zoom_in"
    assert f"seed kept {seed}" in _diffs(at)[-1] and "hair speed" in _diffs(at)[-1]
    assert at.toggle(key="pp.seed_lock").value is True  # "same seed" locks it


def test_template_selection_is_an_edit_and_locks_the_template(app, kit):
    at = app
    at.selectbox(key="pp.template").set_value("animals").run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "chosen by you" in captions
    # the examples of the chosen template are offered
    from agent.templates import get_template

    examples = [c.value for c in at.caption]
    assert get_template("animals").prompts[0] in examples
    # the edit is recorded (survives a restart) and the chat does not switch the template away
    at = kit.chat(at, "headshot of a model, her hair flows")
    assert at.selectbox(key="pp.template").value == "animals"
    s = kit.store()
    conv = s.list_conversations(limit=1)[0]
    kinds = [(m.meta or {}).get("kind") for m in s.list_messages(conv.id)]
    assert "panel_edit" in kinds


def test_panel_widgets_edit_the_plan(app, kit):
    at = kit.chat(app, "make her hair flow in the wind")
    at.slider(key="pp.duration").set_value(1.0).run()
    at.slider(key="pp.steps").set_value(8).run()
    at.number_input(key="pp.guidance_high").set_value(3.5).run()
    at.number_input(key="pp.seed").set_value(42).run()
    at.selectbox(key="pp.camera.move").set_value("pan_left").run()
    at.slider(key="pp.motion.hair.intensity").set_value(0.9).run()
    assert not at.exception
    plan = at.session_state["studio"].plan
    assert (plan.duration_s, plan.num_frames, plan.steps, plan.guidance_scale, plan.seed) == (1.0, 17, 8, 3.5, 42)
    assert plan.camera.move == "pan_left" and plan.motion("hair").intensity == 0.9
    assert plan.seed_policy == "explicit"
    # a typed prompt is remembered across later plan changes, and can be dropped again
    at.text_area(key="pp.prompt").set_value("my own words about her hair").run()
    at.slider(key="pp.duration").set_value(2.0).run()
    assert at.text_area(key="pp.prompt").value == "my own words about her hair"
    at.button(key="pp.reset_prompt").click().run()
    assert at.text_area(key="pp.prompt").value != "my own words about her hair"
    # remove a motion, add another, avoid a term
    at.button(key="pp.motion.hair.remove").click().run()
    assert at.session_state["studio"].plan.motion("hair") is None
    at.selectbox(key="pp.new_motion.subject").set_value("clouds").run()
    at.text_input(key="pp.new_motion.action").set_value("drift slowly").run()
    at.button(key="pp.new_motion.add").click().run()
    assert at.session_state["studio"].plan.motion("clouds").action == "drift slowly"
    at.text_input(key="pp.avoid").set_value("text, watermark").run()
    assert at.session_state["studio"].plan.negative_terms == ("text", "watermark")
    # removing a term from the box takes it out again (a remove_negative edit), and its words leave the prompt
    at.text_input(key="pp.avoid").set_value("watermark, " + "x" * 41).run()
    assert at.session_state["studio"].plan.negative_terms == ("text", "watermark")  # too long: refused, kept
    at.text_input(key="pp.avoid").set_value("watermark").run()
    plan = at.session_state["studio"].plan
    assert plan.negative_terms == ("watermark",) and not plan.negative_prompt.startswith("text")
    assert not at.exception
    # the panel's edits show in the chat as compact diffs
    assert any("duration 3 s → 1 s" in c.value for c in at.caption)


def test_new_seed_and_lock(app, kit):
    at = app
    seed = at.number_input(key="pp.seed").value
    at.button(key="pp.new_seed").click().run()
    assert at.number_input(key="pp.seed").value != seed
    at.toggle(key="pp.seed_lock").set_value(True).run()
    assert at.session_state["studio"].plan.seed_policy == "same"
    at.toggle(key="pp.seed_lock").set_value(False).run()
    assert at.session_state["studio"].plan.seed_policy == "new"


def test_upload_shows_picture_and_live_resolution_preview(app, kit):
    at = kit.upload(app)
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    assert "input 512×512 → output **624×624**" in text
    assert "**49 frames** · **3.06 s**" in text
    at.slider(key="pp.duration").set_value(1.0).run()
    text = " ".join(m.value for m in at.markdown)
    assert "**17 frames** · **1.06 s**" in text
    assert not at.button(key="res.generate").disabled


@pytest.mark.parametrize(
    "data, name, expected",
    [
        (b"not an image at all", "notes.png", "not a picture we can read"),
        (b"", "empty.png", "is empty"),
        (None, "renamed-gif.png", "please upload a PNG, JPEG or WebP"),  # the browser filters by extension only
        (None, "tiny.png", "each side must be at least"),
        (None, "huge.png", "pixels: more than the"),
        (None, "bomb.png", "far too large in pixels"),
        (None, "cut.png", "corrupt or truncated"),
    ],
)
def test_bad_uploads_get_a_clear_message(app, kit, data, name, expected):
    import io

    from PIL import Image

    if name == "renamed-gif.png":
        buf = io.BytesIO()
        Image.new("RGB", (64, 64)).save(buf, "GIF")
        data = buf.getvalue()
    elif name == "tiny.png":
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "PNG")
        data = buf.getvalue()
    elif name in ("huge.png", "bomb.png"):  # a header claiming 144 MP / 400 MP: refused before decoding
        side = 12000 if name == "huge.png" else 20000
        data = _png_header_only(side, side)
    elif name == "cut.png":
        data = kit.photo_bytes()[:5000]
    at = kit.upload(app, data, name)
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert expected in errors, errors
    assert at.session_state["studio"].image is None
    assert at.button(key="res.generate").disabled


@pytest.mark.slow
def test_generate_plays_video_and_lands_in_gallery_then_chat_continues_as_child(app, kit):
    at = kit.upload(app)
    at = kit.chat(at, "make her hair flow in the wind, 0.5 seconds")
    at.button(key="res.generate").click().run()
    assert not at.exception
    first = at.session_state["studio"].active_job_id
    assert first is not None
    assert at.get("progress") or kit.store().get_generation(first).is_terminal
    g = kit.wait_terminal(first)
    assert g.status == "succeeded", g.error
    at.run()
    assert not at.exception
    videos = at.get("video")
    assert len(videos) == 1
    assert at.get("download_button")
    assert any("Preview" in c.value for c in at.caption)  # the preview backend is labelled as such

    # the chat continues from the result: a refinement renders a child with the same seed
    at = kit.chat(at, "slower hair, same seed")
    second = at.session_state["studio"].active_job_id
    assert second is not None and second != first
    child = kit.wait_terminal(second)
    assert child.parent_id == first and child.seed == g.seed and child.status == "succeeded"
    assert child.plan["motions"][0]["speed"] < g.plan["motions"][0]["speed"]

    # the gallery shows both, newest first
    at.switch_page(kit.GALLERY).run()
    assert not at.exception
    cards = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert cards[0].startswith(f"**#{second}**") and cards[1].startswith(f"**#{first}**")


@pytest.mark.slow
def test_cancel_queued_and_running(app, kit):
    at = kit.upload(app)
    at.slider(key="pp.duration").set_value(5.0).run()
    at.button(key="res.generate").click().run()
    first = at.session_state["studio"].active_job_id
    at.button(key="res.generate").click().run()
    second = at.session_state["studio"].active_job_id
    assert second != first
    s = kit.store()
    # the second one waits in the queue behind the first: cancel it there, then the running one
    assert s.get_generation(second).status == "queued"
    assert any(f"#{second} queued" in p.proto.text for p in at.get("progress")), [p.proto.text for p in at.get("progress")]
    at.button(key="res.cancel").click().run()  # the cancel button follows the active (second) job
    assert s.get_generation(second).status == "cancelled"
    at.session_state["studio"].active_job_id = first
    at.run()
    at.button(key="res.cancel").click().run()
    g = kit.wait_terminal(first)
    assert g.status == "cancelled"
    assert g.video_path is None
    at.run()
    assert not at.exception
    assert any("Cancelled" in i.value for i in at.info)


@pytest.fixture
def on_each_database(db_url, monkeypatch):
    """The studio's store on SQLite, then on PostgreSQL (set before the `app` fixture starts the page)."""
    if db_url is not None:
        monkeypatch.setenv("VIVIDFLOW_DB_URL", db_url)
    return db_url


def test_history_survives_a_restart(on_each_database, app, kit):
    assert kit.store().url.startswith("postgresql" if on_each_database else "sqlite")
    at = kit.upload(app)
    at = kit.chat(at, "make her hair flow in the wind, slow zoom in")
    at = kit.chat(at, "make it 2 seconds")
    plan = at.session_state["studio"].plan
    again = kit.new_session()  # a new browser session: everything comes from the store
    assert not again.exception
    assert _chat_texts(again) == _chat_texts(at)
    assert again.session_state["studio"].plan == plan
    assert again.slider(key="pp.duration").value == 2.0
    assert again.session_state["studio"].image is not None
    again = kit.chat(again, "undo")
    assert again.slider(key="pp.duration").value == 3.0


def test_new_chat_and_reopen_a_conversation(app, kit):
    at = kit.upload(app)
    at = kit.chat(at, "a dog running, tail wagging")
    first_conv = at.session_state["studio"].conversation_id
    at.button(key="sb.new").click().run()
    assert at.session_state["studio"].conversation_id is None
    assert at.session_state["studio"].image is not None  # the picture is kept
    at = kit.chat(at, "slow zoom in on the mountains")
    assert at.session_state["studio"].conversation_id != first_conv
    at.selectbox(key=kit.key(at, "sb.conversation")).set_value(first_conv).run()
    assert not at.exception
    assert at.session_state["studio"].conversation_id == first_conv
    assert any("dog" in t for _, t in _chat_texts(at))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height with almost no pixel data (a decompression-bomb probe)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_enhance_prompt_only_with_the_llm_and_its_result_is_an_edit(app, kit, monkeypatch):
    import agent.llm as planner_llm

    at = kit.chat(app, "make her hair flow in the wind")
    assert not any(b.key == "pp.enhance" for b in at.button)  # the LLM is off by default
    monkeypatch.setenv("VIVIDFLOW_LLM_MODEL", "smollm2")  # the model is configured, never typed in the page
    at = kit.new_session()
    seen = []

    def fake_enhance(plan, *, planner=None):
        seen.append((plan, planner))
        return "Cinematic close-up, her hair streaming in a warm breeze, golden light, slow push-in."

    monkeypatch.setattr(planner_llm, "enhance_prompt", fake_enhance)
    at.button(key="pp.enhance").click().run()
    assert not at.exception
    assert seen and seen[0][1] is not None  # the configured model, not the environment's default
    plan = at.session_state["studio"].plan
    assert plan.prompt_override.startswith("Cinematic close-up")
    assert at.text_area(key="pp.prompt").value == plan.prompt_override


def test_a_job_interrupted_by_a_restart_shows_failed_and_can_be_retried(kit):
    """A generation left `running` by a dead process: the runner marks it failed when the app starts,
    the studio says so, and Retry runs it again (same record)."""
    from agent.compiler import default_plan

    s = kit.store()
    conv = s.create_conversation("before the crash")
    image = s.add_image(kit.photo_bytes(max_side=128), filename="astronaut.png")
    plan = default_plan("portrait_subtle", seed=3).with_changes(duration_s=0.5)
    s.append_message(conv.id, "system", "Picture", plan.to_dict(), {"kind": "image", "image_id": image.id})
    g = s.create_generation(conv.id, plan.to_dict(), image.id, "preview", "preview-warp-1", width=624, height=624)
    s.append_message(conv.id, "system", f"#{g.id} queued (preview)", plan.to_dict(),
                     {"kind": "generation", "generation_id": g.id})
    s.claim_generation(g.id)  # ... and the process died here

    at = kit.new_session()
    assert not at.exception
    assert kit.store().get_generation(g.id).status == "failed"
    assert any("interrupted" in e.value for e in at.error)
    at.button(key=f"res.retry.{g.id}").click().run()
    done = kit.wait_terminal(g.id)
    assert done.status == "succeeded" and done.attempts == 2
    at.run()
    assert at.get("video") and not at.exception
