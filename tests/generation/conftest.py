"""Shared fixtures for tests/generation (preview, export, jobs, CLI).

The Wan backend's fixtures live in their own files (conftest_wan.py / test modules); keep this one small.
"""

from __future__ import annotations

import functools
import io
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
