"""Issue 17 item 7 and "Compare": gallery cards show a frame of their own video, an animated preview on
hover and the motion summary; two ticked cards open a side-by-side compare with the plan differences."""

from __future__ import annotations

import io
import random

from PIL import Image


def _webp(color: tuple[int, int, int]) -> bytes:
    frames = [Image.new("RGB", (32, 24), tuple((c + 40 * i) % 256 for c in color)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _rendered(kit, template: str, seed: int, *, hair_speed: float | None = None, camera: str | None = None,
              preview: bool = True):
    """A finished generation with its own plan, thumbnail and (with `preview`) an animated preview key."""
    from agent.compiler import default_plan
    from agent.edits import AddMotion, SetCamera, apply

    s = kit.store()
    plan = default_plan(template, seed=seed)
    edits = []
    if hair_speed is not None:
        edits.append(AddMotion(subject="hair", action="flow in the wind", speed=hair_speed))
    if camera is not None:
        edits.append(SetCamera(move=camera, speed=1.0))
    if edits:
        plan, _ = apply(plan, edits, rng=random.Random(seed))
    image = s.add_image(kit.photo_bytes(max_side=64), filename="astronaut.png")
    g = s.create_generation(None, plan.to_dict(), image.id, "preview", "preview-warp-1", width=64, height=64)
    s.claim_generation(g.id)
    video = s.media.put_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes([g.id]) * 64, ".mp4")
    thumb_buf = io.BytesIO()
    Image.new("RGB", (64, 64), (g.id * 60 % 255, 80, 200)).save(thumb_buf, "JPEG")
    thumb = s.media.put_bytes(thumb_buf.getvalue(), ".jpg")
    params = {"animated_preview": s.media.put_bytes(_webp((g.id * 50 % 255, 10, 10)), ".webp").key} if preview else {}
    return s.finish_generation(g.id, "succeeded", video_path=video.path, thumbnail_path=thumb.path, params=params)


def _open_gallery(kit):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "streamlit_app.py"), default_timeout=30)
    at.run()
    at.switch_page(kit.GALLERY).run()
    assert not at.exception, at.exception
    return at


def _image_urls(at) -> list[str]:
    return [img.url for el in at.image for img in el.proto.imgs]


def test_cards_show_their_own_frame_an_animated_preview_and_the_motion(kit):
    a = _rendered(kit, "portrait_subtle", 1, hair_speed=0.48, camera="orbit_right")
    b = _rendered(kit, "portrait_subtle", 2, hair_speed=1.5, camera="zoom_in")
    _rendered(kit, "landscape", 3, preview=False)  # rendered before previews existed: the still only
    at = _open_gallery(kit)
    urls = _image_urls(at)
    assert len(urls) == 3 and len(set(urls)) == 3  # a still per card, each from its own video
    previews = [h.proto.body for h in at.get("html") if "data:image/webp;base64," in h.proto.body]
    assert len(previews) == 2 and len(set(previews)) == 2  # the animated previews, kept as WebP, urls
    captions = [c.value for c in at.caption]
    assert any(c.endswith(f"hair 0.48× · orbit right · {a.duration_s:g} s") for c in captions), captions
    assert any(c.endswith(f"hair 1.5× · zoom in · {b.duration_s:g} s") for c in captions)
    assert any(c.startswith("clouds 0.6×") and "pan right 0.5×" in c for c in captions)  # the landscape
    assert any("st-key-g-media-" in h.proto.body and ":hover" in h.proto.body for h in at.get("html"))


def test_two_ticked_cards_open_a_compare_with_the_differences(kit):
    a = _rendered(kit, "portrait_subtle", 1, hair_speed=0.48)
    b = _rendered(kit, "portrait_subtle", 1, hair_speed=0.9)
    at = _open_gallery(kit)
    assert not any(bt.key == "g.compare_go" for bt in at.button)
    at.checkbox(key=f"g.cmp.{a.id}").check().run()
    assert any("tick exactly two" in c.value for c in at.caption)
    at.checkbox(key=f"g.cmp.{b.id}").check().run()
    at.button(key="g.compare_go").click().run()
    assert not at.exception, at.exception
    assert any(h.value == f"Compare #{a.id} and #{b.id}" for h in at.subheader)
    table = next(m.value for m in at.markdown if "What differs" not in m.value and f"#{a.id} → #{b.id}" in m.value)
    assert "hair 0.48×" in table and "hair 0.9×" in table
    assert "seed" not in table  # the same seed is not a difference
    assert len(at.get("video")) == 2
    sync = [h.proto.body for h in at.get("html") if "vfCompareStart" in h.proto.body]
    assert sync and ".st-key-cmp-" in sync[0]
    at.button(key="g.compare_close").click().run()
    assert not at.get("video")


def test_plan_differences_lists_only_what_differs(kit):
    from ui.format import plan_differences

    a = _rendered(kit, "portrait_subtle", 4, hair_speed=0.5, preview=False)
    b = _rendered(kit, "portrait_subtle", 5, hair_speed=0.5, preview=False)
    rows = {what: (va, vb) for what, va, vb in plan_differences(a, b)}
    assert set(rows) == {"seed"}, rows
    assert rows["seed"][0].startswith("4") and rows["seed"][1].startswith("5")


def test_deleting_a_generation_deletes_its_animated_preview(kit):
    g = _rendered(kit, "portrait_subtle", 6)
    s = kit.store()
    preview = s.media.path_for(g.params["animated_preview"])
    assert preview.is_file()
    s.delete_generation(g.id, remove_files=True)
    assert not preview.exists() and not g.video_path.exists()


def test_compare_asked_in_the_chat_plays_both_beside_the_conversation(kit):
    """"compare #a and #b" in the chat: the studio shows the two side by side (the reply's `compare`), the plan
    is unchanged, and Close takes the comparison away."""
    a = _rendered(kit, "portrait_subtle", 1, hair_speed=0.48)
    b = _rendered(kit, "portrait_subtle", 1, hair_speed=0.9)
    at = kit.new_session()
    kit.upload(at)
    kit.chat(at, "make her hair flow in the wind")
    plan_before = at.session_state["studio"].plan
    kit.chat(at, f"compare #{a.id} and #{b.id}")
    assert any(h.value == f"Compare #{a.id} and #{b.id}" for h in at.subheader)
    assert len(at.get("video")) == 2
    assert at.session_state["studio"].plan == plan_before
    close = next(bt for bt in at.button if bt.label == "Close the comparison")
    close.click().run()
    assert not any(h.value.startswith("Compare #") for h in at.subheader)
