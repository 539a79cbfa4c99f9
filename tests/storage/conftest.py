"""Fixtures for the storage tests: a fresh store per test and a MotionPlan-shaped dict factory."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from storage import Store, open_store  # noqa: E402


def make_plan(**changes: Any) -> dict[str, Any]:
    """A plan dict in the MotionPlan JSON contract (storage does not import agent/)."""
    plan: dict[str, Any] = {
        "template": "landscape",
        "motions": [{"subject": "water", "action": "flow", "speed": 1.0, "intensity": 0.6}],
        "camera": {"move": "zoom_in", "speed": 1.0},
        "atmosphere": ["wind"],
        "duration_s": 3.0,
        "fps": 16,
        "num_frames": 49,
        "steps": 4,
        "guidance_scale": 1.0,
        "guidance_scale_2": 1.0,
        "seed": 42,
        "prompt": "Waves roll onto the beach, the camera slowly zooms in",
        "negative_prompt": "blurry, static",
    }
    plan.update(changes)
    return plan


def png_bytes(width: int = 8, height: int = 6, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path, db_url: str | None) -> Store:
    """A fresh store on each database (tests/conftest.py's db_url: SQLite and PostgreSQL)."""
    s = open_store(url=db_url, home=tmp_path / "home")
    yield s
    s.close()


@pytest.fixture
def conv(store: Store):
    return store.create_conversation("beach")


@pytest.fixture
def new_gen(store: Store, conv):
    """Create a queued generation: new_gen(parent_id=None, **plan_changes)."""

    def _make(parent_id: int | None = None, backend: str = "preview", **plan_changes: Any):
        return store.create_generation(
            conv.id, make_plan(**plan_changes), None, backend, "test-model", parent_id=parent_id
        )

    return _make


def finish_ok(store: Store, gen_id: int, content: bytes = b"fake mp4") -> Any:
    """Run a generation through claim -> succeeded with a video stored in the media folder."""
    store.claim_generation(gen_id)
    video = store.media.put_bytes(content + str(gen_id).encode(), ".mp4")
    return store.finish_generation(gen_id, "succeeded", video_path=video.path)


@pytest.fixture(name="make_plan")
def _make_plan_fixture():
    return make_plan


@pytest.fixture(name="png_bytes")
def _png_bytes_fixture():
    return png_bytes


@pytest.fixture(name="finish_ok")
def _finish_ok_fixture(store: Store):
    return lambda gen_id, content=b"fake mp4": finish_ok(store, gen_id, content)
