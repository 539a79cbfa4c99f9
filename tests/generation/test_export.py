"""generation.export: H.264 MP4 with metadata, atomic content-addressed writes, probe_video."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from generation import export as export_mod
from generation.export import ExportError, export_video, probe_video



def _moving_frames(gh, n=9, h=64, w=96):
    base = np.asarray(gh.photo("astronaut").resize((w + 4 * n, h)), np.uint8)
    return np.stack([base[:, 4 * i : 4 * i + w] for i in range(n)])


def test_export_uint8_and_probe(tmp_path, gh):
    frames = _moving_frames(gh)
    meta = {"plan": {"template": "product", "note": "a=b; c#d \\ é\nnext"}, "seed": 7, "model_id": "preview"}
    v = export_video(frames, tmp_path, fps=16, metadata=meta)
    assert (v.width, v.height, v.num_frames, v.fps) == (96, 64, 9, 16)
    assert os.path.basename(v.video_path) == f"{v.sha256}.mp4"
    assert hashlib.sha256(open(v.video_path, "rb").read()).hexdigest() == v.sha256
    assert v.thumbnail_path.endswith(".jpg") and Image.open(v.thumbnail_path).size == (96, 64)
    info = probe_video(v.video_path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"], info["fps"], info["num_frames"]) == (96, 64, 16.0, 9)
    assert info["metadata"] == meta
    assert sorted(os.listdir(tmp_path)) == sorted([f"{v.sha256}.mp4", f"{v.sha256}.jpg", f"{v.sha256}.preview.webp"])
    # the decoded first frame looks like the first input frame
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(v.video_path)
    meta_r = next(reader)
    first = np.frombuffer(next(reader), np.uint8).reshape(meta_r["size"][1], meta_r["size"][0], 3)
    reader.close()
    assert np.abs(first.astype(int) - frames[0].astype(int)).mean() < 6


def test_same_frames_same_file_and_float_and_pil_inputs(tmp_path, gh):
    frames = _moving_frames(gh)
    a = export_video(frames, tmp_path / "a")
    b = export_video(frames.astype(np.float32) / 255.0, tmp_path / "b")
    c = export_video([Image.fromarray(f) for f in frames], tmp_path / "c")
    assert a.sha256 == b.sha256 == c.sha256  # floats round to the same bytes; deterministic encode
    assert b.num_frames == 9 and probe_video(b.video_path)["num_frames"] == 9
    w = export_video(frames, tmp_path / "w", thumbnail_format="webp", crf=30, fps=8)
    assert w.thumbnail_path.endswith(".webp") and probe_video(w.video_path)["fps"] == 8.0
    assert os.path.getsize(w.video_path) < os.path.getsize(a.video_path)  # higher CRF → smaller


def test_odd_sides_are_cropped_to_even(tmp_path, caplog):
    frames = np.zeros((3, 33, 51, 3), np.uint8)
    v = export_video(frames, tmp_path, thumbnail_format=None)
    assert (v.width, v.height) == (50, 32) and v.thumbnail_path is None
    assert "even sides" in caplog.text
    assert probe_video(v.video_path)["width"] == 50


@pytest.mark.parametrize(
    "frames, kw, match",
    [
        (np.zeros((0, 16, 16, 3), np.uint8), {}, "at least one frame"),
        (np.zeros((2, 16, 16), np.uint8), {}, r"\(T, H, W, 3\)"),
        (np.zeros((2, 16, 16, 3), np.int64), {}, "uint8 or float"),
        ([np.zeros((16, 16, 3), np.uint8), np.zeros((32, 16, 3), np.uint8)], {}, "frame 1 is 16×32"),
        (np.zeros((2, 16, 16, 3), np.uint8), {"fps": 0}, "fps must be"),
        (np.zeros((2, 16, 16, 3), np.uint8), {"crf": 60}, "crf must be"),
        (np.zeros((2, 16, 16, 3), np.uint8), {"thumbnail_format": "gif"}, "thumbnail_format"),
    ],
)
def test_bad_frames_raise_and_leave_nothing(tmp_path, frames, kw, match):
    with pytest.raises(ValueError, match=match):
        export_video(frames, tmp_path / "out", **kw)
    out = tmp_path / "out"
    assert not out.exists() or os.listdir(out) == []


def test_failure_midway_leaves_no_partial_file(tmp_path, monkeypatch, gh):
    frames = list(_moving_frames(gh, n=6))
    frames[4] = np.zeros((64, 96, 4), np.uint8)  # the 5th frame is bad: fails after encoding began
    with pytest.raises(ValueError, match="without alpha"):
        export_video(frames, tmp_path)
    assert os.listdir(tmp_path) == []

    def broken_encode(*a, **k):
        raise ExportError("ffmpeg exploded")

    monkeypatch.setattr(export_mod, "_encode", broken_encode)
    with pytest.raises(ExportError):
        export_video(_moving_frames(gh, n=2), tmp_path)
    assert os.listdir(tmp_path) == []


def test_probe_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "none.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="no video stream"):
        probe_video(bad)


def test_streamed_frames_and_an_error_mid_stream(tmp_path, gh):
    frames = _moving_frames(gh, n=7)
    v = export_video((f for f in frames), tmp_path / "ok")  # a generator: encoded as it comes
    assert v.num_frames == 7 and probe_video(v.video_path)["num_frames"] == 7

    class Stop(Exception):
        pass

    def broken():
        yield frames[0]
        yield frames[1]
        raise Stop("renderer gave up")

    with pytest.raises(Stop):
        export_video(broken(), tmp_path / "bad")
    assert os.listdir(tmp_path / "bad") == []


def test_metadata_reaches_ffmpeg_through_a_file_not_the_command_line(tmp_path, monkeypatch):
    """A comment larger than one command-line argument may be (128 KiB on Linux) is written whole, with the
    characters ffmetadata escapes; no ffmpeg argument carries it, and no temporary file is left."""
    import subprocess

    calls = []
    real_run = subprocess.run

    def spy(cmd, *a, **kw):
        calls.append(cmd)
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(export_mod.subprocess, "run", spy)
    meta = {"prompt": "a=b; #c \\ d\nsecond line ü", "long": "x" * 200_000}
    r = export_video(np.zeros((5, 32, 32, 3), np.uint8), tmp_path, metadata=meta, thumbnail_format=None)
    assert calls and all(len(arg) < 4096 for cmd in calls for arg in cmd)
    assert probe_video(r.video_path, count_frames=False)["metadata"] == meta
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(x) for x in (r.video_path, r.preview_path) if x)


def test_thumbnail_is_the_middle_frame_and_the_animated_preview_loops_at_clip_speed(tmp_path, gh):
    """The gallery's card: the thumbnail is a frame from the middle of the video (the first one is the
    input picture again), the hover preview a small looping WebP of evenly spaced frames."""
    frames = _moving_frames(gh, n=60, h=64, w=96)
    v = export_video(frames, tmp_path / "array", fps=16)
    thumb = np.asarray(Image.open(v.thumbnail_path).convert("RGB"), int)
    assert np.abs(thumb - frames[30].astype(int)).mean() < np.abs(thumb - frames[0].astype(int)).mean()
    with Image.open(v.preview_path) as anim:
        assert anim.format == "WEBP" and anim.is_animated and anim.size == (96, 64)
        assert 10 <= anim.n_frames <= export_mod.PREVIEW_FRAMES
        total_ms = 0
        for i in range(anim.n_frames):
            anim.seek(i)
            anim.load()
            total_ms += anim.info["duration"]
    assert abs(total_ms - 1000 * 60 / 16) < 300  # plays as long as the clip
    # a stream of unknown length (what the preview backend hands over), larger than the preview side
    big = np.stack([np.full((400, 640, 3), i * 2, np.uint8) for i in range(100)])
    s = export_video(iter(big), tmp_path / "stream", fps=16, thumbnail_format=None)
    with Image.open(s.preview_path) as anim:
        assert max(anim.size) <= export_mod.PREVIEW_SIDE and anim.n_frames <= export_mod.PREVIEW_FRAMES
    no = export_video(frames, tmp_path / "none", animated_preview=False)
    assert no.preview_path is None and not any(p.endswith(".webp") for p in os.listdir(tmp_path / "none"))
