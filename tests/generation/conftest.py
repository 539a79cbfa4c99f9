"""Shared fixtures for tests/generation (preview, export, jobs, CLI).

The Wan tests build their tiny pipeline through devtools/tiny_wan.py; keep this one small.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image


@functools.lru_cache(maxsize=None)
def _photo_array(name: str) -> np.ndarray:
    import skimage.data  # test dependency only

    return getattr(skimage.data, name)()


def photo(name: str, max_side: int | None = None) -> Image.Image:
    """A real photograph from scikit-image (astronaut, chelsea, coffee, rocket), optionally downscaled."""
    im = Image.fromarray(_photo_array(name)).convert("RGB")
    if max_side is not None and max(im.size) > max_side:
        s = max_side / max(im.size)
        im = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))), Image.Resampling.LANCZOS)
    return im


def png_bytes(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height with (almost) no pixel data: a decompression-bomb probe."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


class Helpers:
    """Test helpers as one fixture (importlib mode: test files cannot import conftest)."""

    photo = staticmethod(photo)
    encode = staticmethod(png_bytes)
    png_header_only = staticmethod(png_header_only)


@pytest.fixture
def gh() -> type[Helpers]:
    """Generation test helpers: gh.photo(name, max_side), gh.encode(im, fmt), gh.png_header_only(w, h)."""
    return Helpers


# --- job runner fixtures ------------------------------------------------------------------------


class FakeBackend:
    """A backend that emits `steps` progress events (optionally slow) and exports a tiny real MP4.

    `fail` raises that exception at `fail_at`; `gate` (a threading.Event) is waited on before the first step.
    """

    model_id = "fake-1"

    def __init__(self, name="preview", steps=4, delay=0.0, fail=None, fail_at=1, gate=None, max_area=64 * 64):
        self.name, self.steps, self.delay, self.fail, self.fail_at, self.gate = name, steps, delay, fail, fail_at, gate
        self.max_area = max_area
        self.calls = []

    def load(self, cfg=None):
        pass

    def generate(self, plan, image, on_event, cancel, *, out_dir=None):
        import time as _time

        from generation.events import GenerationCancelled, GenerationResult, Progress
        from generation.export import export_video

        self.calls.append(plan.seed)
        if self.gate is not None:
            self.gate.wait(10)
        for i in range(self.steps):
            if cancel.cancelled:
                raise GenerationCancelled(f"cancelled at step {i}")
            if self.fail is not None and i == self.fail_at:
                raise self.fail
            if self.delay:
                _time.sleep(self.delay)
            on_event(Progress(stage="sampling", step=i + 1, total=self.steps))
        if cancel.cancelled:
            raise GenerationCancelled("cancelled")
        frames = np.full((3, 32, 32, 3), plan.seed % 256, np.uint8)
        v = export_video(frames, out_dir, fps=16, metadata={"seed": plan.seed})
        return GenerationResult(v.video_path, v.thumbnail_path, 32, 32, 3, 16, self.name, self.model_id,
                                timings={"sampling_s": 0.0}, params={"seed": plan.seed})


Helpers.FakeBackend = FakeBackend


def submit_from_threads(submitter, picture, *, threads: int = 4, per_thread: int = 5) -> list[int]:
    """`threads` threads released together each submit `per_thread` preview jobs (distinct seeds) through
    `submitter` (a Runner); returns every job id."""
    import threading

    from agent.plan import MotionPlan

    ids: list[int] = []
    barrier = threading.Barrier(threads)

    def submit(k: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            plan = MotionPlan.create(seed=10 * k + i, template="landscape", duration_s=0.5)
            ids.append(submitter.submit(plan, picture, backend="preview").id)

    workers = [threading.Thread(target=submit, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    return ids


Helpers.submit_from_threads = staticmethod(submit_from_threads)


@pytest.fixture
def gen_store(request, tmp_path):
    """A fresh store (SQLite + media folder) under tmp_path/home; a test marked
    `@pytest.mark.parametrize("gen_store", DATABASES, indirect=True)` runs on PostgreSQL too."""
    from storage import open_store

    url = request.getfixturevalue("postgres_url") if getattr(request, "param", "sqlite") == "postgresql" else None
    store = open_store(url=url, home=tmp_path / "home")
    yield store
    store.close()


def db_snapshot(store) -> dict:
    """Every row of every table, plus the media files: to prove an operation changed nothing."""
    import sqlite3
    from pathlib import Path

    con = sqlite3.connect(store.database_path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = {t: con.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    finally:
        con.close()
    root = Path(store.media.root)
    rows["__media__"] = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return rows


Helpers.db_snapshot = staticmethod(db_snapshot)


@pytest.fixture
def frames_seen(monkeypatch):
    """The float frames each generate hands to export_video, in order (the MP4 itself is lossy)."""
    from generation import export

    seen: list[np.ndarray] = []
    real = export.export_video

    def spy(frames, *args, **kwargs):
        seen.append(np.array(frames))
        return real(frames, *args, **kwargs)

    monkeypatch.setattr(export, "export_video", spy)
    return seen


@pytest.fixture(scope="module")
def offline_single_torch_thread():
    """HF_HUB_OFFLINE=1 and one torch thread for a module's tests, restored afterwards (tiny torch ops on
    2 shared cores run ~10× faster on one thread)."""
    import torch

    old, threads = os.environ.get("HF_HUB_OFFLINE"), torch.get_num_threads()
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = old
