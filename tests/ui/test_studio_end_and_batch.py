"""The studio (AppTest) with an end picture, a seamless loop and a batch of 4 variations from the chat (#12 §1, §3)."""

from __future__ import annotations


def _coffee_png() -> bytes:
    import io

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.coffee()).resize((160, 120)).save(buf, "PNG")
    return buf.getvalue()


def test_end_picture_loop_and_a_batch_of_four_from_the_chat(app, kit):
    at = kit.upload(app, kit.photo_bytes(max_side=160))
    at = kit.chat(at, "her hair flows, 0.5 seconds")
    studio = at.session_state["studio"]
    # the end picture: uploaded in its own uploader, used once the chat says so
    at.file_uploader(key="endbatch.upload").set_value(("coffee.png", _coffee_png(), "image/png")).run()
    assert not at.exception
    end = at.session_state["studio"].end_image
    assert end is not None and at.session_state["studio"].plan.end_image is None
    at = kit.chat(at, "end on this picture")
    assert at.session_state["studio"].plan.end_image == end.sha256
    assert "ends on the end picture you uploaded" in at.chat_message[-1].markdown[0].value
    at = kit.chat(at, "make it a seamless loop")
    plan = at.session_state["studio"].plan
    assert plan.loop and plan.end_image is None
    assert "ends where it starts" in at.chat_message[-1].markdown[0].value
    at = kit.chat(at, "don't loop, end on this picture")
    assert at.session_state["studio"].plan.end_image == end.sha256
    at.button(key="res.generate").click().run()
    first = kit.wait_terminal(at.session_state["studio"].active_job_id)
    assert first.status == "succeeded", first.error
    assert first.plan["end_image"] == end.sha256 and first.params["end_frame"] == "end picture"

    # a batch of 4 from the chat: it renders right away (the chat continues from a result), as one batch
    at.run()
    at = kit.chat(at, "give me 4 variations")
    studio = at.session_state["studio"]
    last = kit.wait_terminal(studio.active_job_id)
    batch = kit.store().list_batch(last.batch_id)
    assert len(batch) == 4 and all(kit.wait_terminal(g.id).status == "succeeded" for g in batch)
    assert len({g.seed for g in batch}) == 4 and all(g.parent_id == first.id for g in batch)
    at.run()
    assert not at.exception
    assert len(at.get("video")) == 4  # the grid
    picks = [b for b in at.button if b.key and b.key.startswith("endbatch.pick.")]
    assert len(picks) == 4
    # clicking the third makes it the plan to refine
    at.button(key=f"endbatch.pick.{batch[2].id}").click().run()
    studio = at.session_state["studio"]
    assert studio.plan.seed == batch[2].seed and studio.plan.variations == 1
    assert studio.base_generation_id == batch[2].id
    # "I like the second one" in the chat does the same, and renders nothing
    at = kit.chat(at, "I like the second one")
    studio = at.session_state["studio"]
    assert studio.plan.seed == batch[1].seed and studio.base_generation_id == batch[1].id
    assert studio.active_job_id is None or kit.store().get_generation(studio.active_job_id).batch_id == last.batch_id
    assert "variation 2 of 4" in at.chat_message[-1].markdown[0].value

    # the gallery shows the batch as one card (its newest clip), and its details link the other clips
    at.switch_page(kit.GALLERY).run()
    assert not at.exception
    cards = [int(m.value.split("**")[1].lstrip("#")) for m in at.markdown if m.value.startswith("**#")]
    assert cards == [batch[-1].id, first.id]
    assert any("batch of 4 variations: " + " ".join(f"#{g.id}" for g in batch) in c.value for c in at.caption)
    at.button(key=f"g.open.{batch[-1].id}").click().run()
    assert not at.exception
    assert f"| batch | {last.batch_id[:12]} (variations with different seeds) |" in " ".join(
        m.value for m in at.markdown)
    at.button(key=f"endbatch.open.{batch[0].id}").click().run()
    assert f"#{batch[0].id} ·" in " ".join(h.value for h in at.subheader)


def test_the_end_picture_survives_a_restart_and_can_be_removed(kit):
    import random

    from vividflow.studio import Studio

    s = kit.store()
    studio = Studio.fresh(s, random.Random(3))
    studio.set_image(kit.photo_bytes(max_side=64), "astronaut.png", 64, 64, "png")
    end = studio.set_end_image(_coffee_png(), "coffee.png", 160, 120, "png")
    studio.chat("end on this picture")
    again = Studio.resume(s, studio.conversation_id)
    assert again.state.end_upload == end.sha256 and again.state.end_label == "coffee.png"
    assert again.plan.end_image == end.sha256
    again.clear_end_image()
    assert Studio.resume(s, studio.conversation_id).end_image is None
    again.chat("end on this picture")  # nothing to end on any more: the reply says how to upload one
    assert "upload one" in again.entries[-1].text
