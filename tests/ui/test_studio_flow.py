"""Issue 17: the studio's state transitions a new user trips over (new chat + upload, replacing the
picture, a bad file), the layout (conversation in its own column, input under it), labels, contrast."""

from __future__ import annotations

import functools
import io
import tomllib
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def cat_png() -> bytes:
    """skimage's chelsea (a real photo of a cat), 451×300: not the astronaut, another size."""
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, "PNG")
    return buf.getvalue()


def _captions(at) -> list[str]:
    return [c.value for c in at.caption]


def _messages(kit, conversation_id: int) -> list[str]:
    return [m.text for m in kit.store().list_messages(conversation_id)]


def test_new_chat_then_upload_starts_a_new_conversation(app, kit):
    """upload → chat → template edit → New chat → upload another picture, twice: each picture opens its own
    conversation with its own caption, nothing lands in the previous one, and the page never breaks."""
    at = kit.upload(app)
    at = kit.chat(at, "make her hair flow in the wind")
    at.selectbox(key=kit.key(at, "pp.template")).set_value("fashion").run()  # a panel edit (template callback)
    first = at.session_state["studio"].conversation_id
    before = _messages(kit, first)
    seen = {first}
    for round_no, name in enumerate(("cat.png", "cat-again.png")):
        at.button(key="sb.new").click().run()
        assert not at.exception, at.exception
        at = kit.upload(at, cat_png(), name)
        assert not at.exception, at.exception
        studio = at.session_state["studio"]
        assert studio.conversation_id is not None and studio.conversation_id not in seen
        seen.add(studio.conversation_id)
        if round_no == 0:  # a different picture: it is the one in use and the chat says so
            assert studio.image.filename == "cat.png"
            assert any("Picture: cat.png" in c for c in _captions(at)), _captions(at)
            assert not any("astronaut" in c for c in _captions(at))
        # the fresh conversation's panel is the default plan, not the previous chat's template
        assert at.selectbox(key=kit.key(at, "pp.template")).value == "portrait_subtle"
        at = kit.chat(at, "slow zoom in")
        assert "slow zoom in" in _messages(kit, studio.conversation_id)
        at.selectbox(key=kit.key(at, "pp.template")).set_value("animals").run()
        assert not at.exception
        assert at.session_state["studio"].plan.template == "animals"
    assert _messages(kit, first) == before  # the first conversation got nothing of the later ones


def test_replacing_the_picture_takes_effect_at_once(app, kit):
    at = kit.upload(app)
    assert "input 512×512" in " ".join(m.value for m in at.markdown)
    at = kit.upload(at, cat_png(), "cat.png")  # one run: the uploader's file is the picture in use
    studio = at.session_state["studio"]
    assert studio.image.filename == "cat.png" and (studio.image.width, studio.image.height) == (451, 300)
    text = " ".join(m.value for m in at.markdown)
    assert "input 451×300" in text and "input 512×512" not in text
    assert at.image[0].proto.imgs[0].caption == "cat.png"
    assert "Picture: cat.png (451×300)" in " ".join(_captions(at))


def test_a_bad_file_shows_its_error_at_once_and_it_clears_on_the_next_good_upload(app, kit):
    at = kit.upload(app)
    at = kit.upload(at, b"just some notes, not a picture", "notes.png")
    errors = " ".join(e.value for e in at.error)
    assert "notes.png is not a picture we can read" in errors and "previous picture is kept" in errors
    assert at.session_state["studio"].image.filename == "astronaut.png"
    at = kit.upload(at, cat_png(), "cat.png")
    assert not at.error
    assert at.session_state["studio"].image.filename == "cat.png"
    # a bad file as the very first picture: its error at once, then gone with the good one
    fresh = kit.new_session()
    at = kit.upload(fresh, b"", "empty.png")
    assert any("empty.png is empty" in e.value for e in at.error)
    at = kit.upload(at, cat_png(), "cat.png")
    assert not at.error and at.session_state["studio"].image.filename == "cat.png"


def _column_of(at, predicate) -> list[int]:
    """For each element matching `predicate`: the index of the top-level column holding it."""
    top = next(c for c in at.main.children.values() if getattr(c, "type", "") == "flex_container")
    found = []
    for i, column in enumerate(top.children.values()):
        stack = [column]
        while stack:
            node = stack.pop()
            if predicate(node):
                found.append(i)
            children = getattr(node, "children", None)
            if isinstance(children, dict):
                stack.extend(children.values())
    return found


def test_layout_conversation_in_its_own_column_with_the_input_under_it(app, kit):
    at = kit.upload(app)
    at = kit.chat(at, "make her hair flow in the wind")
    top = next(c for c in at.main.children.values() if getattr(c, "type", "") == "flex_container")
    talk = list(top.children.values())[0]
    first, second = list(talk.children.values())[:2]
    assert getattr(first, "key", None) == "chat_log"  # the messages (a scrolling container) ...
    assert second.type == "chat_input"  # ... and the input right under them
    assert {m.name for m in first.children.values() if m.type == "chat_message"} == {"user", "assistant"}
    assert _column_of(at, lambda n: getattr(n, "type", "") == "chat_message") == [0, 0]
    assert _column_of(at, lambda n: getattr(n, "key", None) == "pp.template") == [1]  # the plan beside it
    assert _column_of(at, lambda n: getattr(n, "key", None) == "res.generate") == [1]


def _finished_in(kit, conversation_id: int, image_id: int):
    """A finished preview render of this conversation, made straight in the store (no rendering)."""
    from agent.compiler import default_plan

    s = kit.store()
    g = s.create_generation(conversation_id, default_plan("portrait_subtle", seed=9).to_dict(), image_id, "preview",
                            "preview-warp-1", width=624, height=624)
    s.claim_generation(g.id)
    video = s.media.put_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64), ".mp4")
    return s.finish_generation(g.id, "succeeded", video_path=video.path)


def test_the_preview_note_appears_once(app, kit):
    from ui.format import PREVIEW_NOTE

    def notes(at) -> int:
        return sum(PREVIEW_NOTE in e.value for e in list(at.caption) + list(at.markdown))

    at = kit.upload(app)
    assert notes(at) == 1  # beside Generate: what will render
    studio = at.session_state["studio"]
    _finished_in(kit, studio.conversation_id, studio.image.id)
    at.run()
    assert at.get("video")
    assert notes(at) == 1  # under the result only, not beside Generate as well


def test_a_running_render_shows_its_progress_in_the_chat_turn_that_caused_it(app, kit):
    at = kit.upload(app)
    at.slider(key=kit.key(at, "pp.duration")).set_value(5.0).run()
    at.button(key="res.generate").click().run()
    job = at.session_state["studio"].active_job_id
    try:
        log = next(c for c in _column_children(at, 0) if getattr(c, "key", None) == "chat_log")
        kinds = _walk_types(log)
        assert "progress" in kinds and kinds.index("progress") > max(
            i for i, (t, v) in enumerate(_walk(log)) if t == "caption" and f"Render #{job}" in v)
        assert _column_of(at, lambda n: getattr(n, "key", None) == "res.cancel") == [0]  # Cancel beside it
    finally:
        at.button(key="res.cancel").click().run()
        kit.wait_terminal(job)


def _column_children(at, index: int) -> list:
    top = next(c for c in at.main.children.values() if getattr(c, "type", "") == "flex_container")
    return list(list(top.children.values())[index].children.values())


def _walk(node) -> list[tuple[str, str]]:
    """(type, text) of every element under `node`, in page order."""
    out = []
    for child in getattr(node, "children", {}).values():
        value = getattr(child, "value", "")
        out.append((getattr(child, "type", ""), value if isinstance(value, str) else ""))
        if isinstance(getattr(child, "children", None), dict):
            out.extend(_walk(child))
    return out


def _walk_types(node) -> list[str]:
    return [t for t, _ in _walk(node)]


LABELLED = ("button", "selectbox", "slider", "text_input", "number_input", "toggle", "text_area", "checkbox",
            "multiselect", "date_input", "file_uploader", "radio", "download_button")


def _labels(at) -> list[tuple[str, str]]:
    out = []
    for kind in LABELLED:
        for w in at.get(kind):
            label = getattr(w, "label", None)
            if label is None:
                label = getattr(w.proto, "label", "")
            out.append((kind, str(label)))
    return out


def test_every_control_has_a_label(app, kit):
    at = kit.upload(app)
    at = kit.chat(at, "make her hair flow in the wind")
    labels = _labels(at)
    assert len(labels) > 20
    assert all(label.strip() for _, label in labels), [k for k, label in labels if not label.strip()]
    assert not [label for _, label in labels if "**" in label]  # read aloud as "star star"
    assert at.chat_input[0].placeholder.strip()
    at.switch_page(kit.GALLERY).run()
    assert all(label.strip() for _, label in _labels(at))


# --- contrast: WCAG 2.x relative luminance and contrast ratio ---------------------------------------------


def _rgb(hex_color: str) -> tuple[float, float, float]:
    h = hex_color.lstrip("#")
    return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _luminance(rgb: tuple[float, float, float]) -> float:
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str | tuple, b: str | tuple) -> float:
    la, lb = (_luminance(_rgb(x) if isinstance(x, str) else x) for x in (a, b))
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def _over(fg: str, bg: str, alpha: float) -> tuple[float, float, float]:
    """`fg` at `alpha` opacity over `bg` (Streamlit fades captions and placeholders this way)."""
    f, b = _rgb(fg), _rgb(bg)
    return tuple(alpha * x + (1 - alpha) * y for x, y in zip(f, b, strict=True))  # type: ignore[return-value]


def test_contrast_math_matches_known_pairs():
    assert round(contrast("#000000", "#FFFFFF"), 1) == 21.0
    assert round(contrast("#777777", "#FFFFFF"), 2) == 4.48  # the classic just-fails-AA grey


def test_shipped_theme_passes_wcag_aa():
    theme = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["theme"]
    text, bg, bg2, primary = (theme[k] for k in ("textColor", "backgroundColor", "secondaryBackgroundColor",
                                                 "primaryColor"))
    aa = 4.5  # normal-size text
    assert contrast(text, bg) >= aa and contrast(text, bg2) >= aa
    assert contrast(primary, bg) >= aa  # links, the active tab, slider values
    assert contrast("#FFFFFF", primary) >= aa  # the label of a primary button (Generate)
    # captions, help text and placeholders: the text colour faded to 60 %
    assert contrast(_over(text, bg, 0.6), bg) >= aa and contrast(_over(text, bg2, 0.6), bg2) >= aa


def test_generate_has_a_keyboard_shortcut_and_says_so(app, kit):
    from ui.result import GENERATE_SHORTCUT

    at = kit.upload(app)
    button = at.button(key="res.generate")
    assert button.proto.shortcut.lower() == GENERATE_SHORTCUT.lower() == "alt+g"  # Streamlit reserves R and C
    assert GENERATE_SHORTCUT in button.proto.help


def _stale_callback_script():
    import streamlit as st

    from ui import plan_panel

    state = st.session_state
    if "first" not in state:
        state["first"] = state["studio"] = object()
        state["calls"] = []
    callback = plan_panel._current_only(lambda studio: state["calls"].append(studio is state["studio"]))
    st.button("edit", key="edit", on_click=callback, args=(state["first"],))  # drawn for the first studio
    st.button("New chat", key="new", on_click=lambda: state.update(studio=object()))


def test_a_widget_callback_of_a_conversation_no_longer_open_does_nothing():
    """The `pp.template` KeyError / wrong-chat edits: a callback bound to the previous studio (the browser
    sends a stale widget value once more) must not touch the new conversation."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_stale_callback_script)
    at.run()
    at.button(key="edit").click().run()
    assert at.session_state["calls"] == [True]
    at.button(key="new").click().run()
    at.button(key="edit").click().run()
    assert at.session_state["calls"] == [True] and not at.exception
