"""The studio (AppTest): a 12 s video from the chat, and story mode from the multi-picture uploader (#12 §2 §4)."""

from __future__ import annotations

import io

import pytest
from PIL import Image


def _png(name: str, side: int = 64) -> bytes:
    import skimage.data

    buf = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((side, side)).save(buf, "PNG")
    return buf.getvalue()


def _replies(at) -> list[str]:
    return [" ".join(x.value for x in m.markdown) for m in at.chat_message if m.name == "assistant"]


def test_a_12_second_video_from_the_chat_renders_as_one_job_and_cancels_cleanly(app, kit):
    # a whole 12 s render at the studio's 480p takes long on a shared CPU: the MP4 itself is checked in
    # tests/generation/test_segments.py; here the chat, the one job with its one progress bar, and a cancel inside
    import time

    at = kit.upload(app, _png("astronaut"))
    at = kit.chat(at, "her hair flows, make it 12 seconds")
    assert "3 segments" in _replies(at)[-1]
    assert at.slider(key="pp.duration").value == 12.0
    at.button(key="res.generate").click().run()
    assert not at.exception
    s = kit.store()
    job = at.session_state["studio"].active_job_id
    assert s.get_generation(job).plan["duration_s"] == 12.0 and s.get_generation(job).num_frames == 193
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the bar counts frames across all segments
        g = s.get_generation(job)
        if g.is_terminal or (g.progress and g.progress.stage == "rendering 3 segments" and g.progress.step > 5):
            break
        time.sleep(0.05)
    assert g.progress.stage == "rendering 3 segments" and g.progress.total == 203, g.progress
    at.button(key="res.cancel").click().run()
    g = kit.wait_terminal(job)
    assert g.status == "cancelled" and g.video_path is None
    assert not list((s.media.root / "videos").glob("*.mp4")) if (s.media.root / "videos").exists() else True


def test_story_uploader_then_the_chat_paces_a_transition(app, kit):
    files = [(f"{n}.png", _png(n), "image/png") for n in ("astronaut", "coffee", "chelsea")]
    at = app
    at.file_uploader(key="story_upload").set_value(files).run()
    assert not at.exception, at.exception
    studio = at.session_state["studio"]
    assert len(studio.plan.story_images) == 3 and studio.image is not None
    assert any("3 pictures" in c.value for c in at.caption)
    assert len(at.image) == 2  # the picture, and the strip of story pictures in order
    at = kit.chat(at, "go from the third picture to the first, then the second")
    at = kit.chat(at, "slower between 2 and 3")
    plan = at.session_state["studio"].plan
    keys = [kit.store().find_image(k) for k in plan.story_images]
    assert [k.filename for k in keys] == ["chelsea.png", "astronaut.png", "coffee.png"]
    assert [t.pace for t in plan.transitions] == [1.0, 0.6] and "transition 2" in _replies(at)[-1].lower()
