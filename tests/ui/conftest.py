"""Fixtures for the studio's tests: the app under AppTest, real photos, and records made straight in the store.

Every test has its own VIVIDFLOW_HOME (tests/conftest.py), so its store and runner (cached per data folder)
are its own.
"""

from __future__ import annotations

import functools
import io
import time
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
GALLERY = "pages/gallery.py"


@functools.lru_cache(maxsize=None)
def photo_bytes(fmt: str = "PNG", max_side: int = 512) -> bytes:
    """skimage's astronaut (a real portrait photo) encoded as `fmt`."""
    from skimage import data

    im = Image.fromarray(data.astronaut())
    if max(im.size) > max_side:
        im = im.resize((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _preview_backend(monkeypatch):
    """The studio renders with the CPU preview backend in tests, whatever the machine has."""
    monkeypatch.setenv("VIVIDFLOW_BACKEND", "preview")
    monkeypatch.delenv("VIVIDFLOW_CONFIG", raising=False)
    monkeypatch.chdir(ROOT)


@pytest.fixture
def app():
    """The studio page, run once (fresh session)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    return at


def new_session():
    """A second browser session on the same data folder (as after a restart or in another tab)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    return at


def store():
    from ui.services import store_for
    import os

    return store_for(str(Path(os.environ["VIVIDFLOW_HOME"]).resolve()))


def key(at, base: str) -> str:
    """A per-conversation widget key ("pp.template", "upload", …) in the open conversation's scope
    (ui.widgets.scoped: after "New chat" or "Branch into chat" the widgets have new keys)."""
    n = at.session_state["ui.scope"] if "ui.scope" in at.session_state else 0
    return base if not n else f"{base}@{n}"


def upload(at, data: bytes | None = None, name: str = "astronaut.png", mime: str = "image/png"):
    uploader = at.file_uploader(key=key(at, "upload"))
    uploader.set_value((name, data if data is not None else photo_bytes(), mime)).run()
    return at


def chat(at, text: str):
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    return at


def wait_terminal(generation_id: int, timeout: float = 60.0):
    """Wait for the runner thread to end a generation; returns the record."""
    s = store()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        g = s.get_generation(generation_id)
        if g.is_terminal:
            return g
        time.sleep(0.1)
    raise AssertionError(f"generation {generation_id} still {s.get_generation(generation_id).status} after {timeout} s")


def finished_generation(template: str = "portrait_subtle", *, prompt_word: str = "", status: str = "succeeded",
                        backend: str = "preview", parent_id: int | None = None, seed: int = 7,
                        with_files: bool = True, user: str = "local", shared: bool = False):
    """A generation record made straight in the store (no rendering): queued → running → `status`,
    with a small (not playable) video file and a real JPEG thumbnail in the media folder."""
    from agent.compiler import default_plan

    s = store()
    plan = default_plan(template, seed=seed)
    if prompt_word:
        plan = plan.with_changes(prompt_override=f"{plan.prompt} {prompt_word}", prompt=f"{plan.prompt} {prompt_word}")
    image = s.add_image(photo_bytes(max_side=64), filename="astronaut.png")
    g = s.create_generation(None, plan.to_dict(), image.id, backend, "preview-warp-1" if backend == "preview" else "wan",
                            parent_id=parent_id, width=624, height=624, user=user)
    if shared:
        s.share_generation(g.id)
    if status == "cancelled":
        s.cancel_queued(g.id)
        return s.get_generation(g.id)
    s.claim_generation(g.id)
    if status == "failed":
        return s.finish_generation(g.id, "failed", error="out of memory (test)")
    video = thumb = None
    if with_files:
        videos = s.media.root / "videos"
        videos.mkdir(parents=True, exist_ok=True)
        video = videos / f"test-{g.id}.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(g.id))
        thumb = videos / f"test-{g.id}.jpg"
        Image.new("RGB", (64, 64), (g.id * 40 % 255, 90, 160)).save(thumb, "JPEG")
    return s.finish_generation(g.id, "succeeded", video_path=video or "/nonexistent.mp4", thumbnail_path=thumb,
                               timings={"render_s": 0.5, "total_s": 0.6})


@pytest.fixture
def kit():
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""
    import types

    return types.SimpleNamespace(
        photo_bytes=photo_bytes, key=key, new_session=new_session, store=store, upload=upload, chat=chat,
        wait_terminal=wait_terminal, finished_generation=finished_generation, GALLERY=GALLERY,
    )
