"""Frames → H.264 MP4 + thumbnail + a small animated WebP preview, written atomically under a
content-addressed name.

The thumbnail is the middle frame (the first one is the input picture again: every card looked alike);
the animated preview (`<sha256>.preview.webp`, ≤ PREVIEW_FRAMES frames ≤ PREVIEW_SIDE px, looping at the
clip's speed) is what the gallery plays on hover. Both come from frames kept while encoding (a bounded,
evenly spaced sample), so streaming renderers need no second pass.

The MP4's `comment` tag carries the metadata JSON (plan, seed, model ids …) so the file alone is
enough to reproduce the video. `probe_video` reads it back with the ffmpeg binary that
imageio-ffmpeg ships (there is no ffprobe), and both backends' tests use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from generation.config import CRF_RANGE, DEFAULT_CRF
from vividflow.errors import VividflowError

log = logging.getLogger(__name__)

THUMBNAIL_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
PREVIEW_SUFFIX = ".preview.webp"
PREVIEW_FRAMES = 20  # at most, evenly spaced over the clip
PREVIEW_SIDE = 256  # px, the longer side (a gallery card is ~300 px wide; the file stays ~50–150 kB)
PREVIEW_QUALITY = 55


class ExportError(VividflowError, RuntimeError):
    """ffmpeg could not write the video; nothing was left behind."""


@dataclass(frozen=True)
class ExportedVideo:
    """A video written by `export_video`: where it is, its content hash and what it holds."""

    video_path: str
    thumbnail_path: str | None
    sha256: str
    width: int
    height: int
    num_frames: int
    fps: int
    preview_path: str | None = None  # the animated WebP (None when not asked for)


# --- frames -------------------------------------------------------------------------------------


def _as_uint8(frame: Any) -> np.ndarray:
    if isinstance(frame, Image.Image):
        frame = np.asarray(frame.convert("RGB"))
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"each frame must be (H, W, 3) RGB, got shape {arr.shape}")
    if arr.shape[2] == 4:
        raise ValueError("frames must be RGB without alpha (H, W, 3), got 4 channels")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            log.warning("float frame values in [%.3f, %.3f] are clipped to [0, 1]", lo, hi)
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"frames must be uint8 or float in [0, 1], got dtype {arr.dtype}")


def _frames(frames: Any) -> tuple[Iterator[np.ndarray], int | None, int, int]:
    """(iterator of uint8 frames, count or None, height, width).

    `frames` is a (T, H, W, 3) array, a sequence of images/arrays, or any iterable of them (a
    generator is consumed lazily, so a renderer can stream frames while ffmpeg encodes).
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
        source: Iterator[Any] = iter(frames)
        n: int | None = len(frames)
    elif isinstance(frames, Sequence) and not isinstance(frames, (str, bytes)):
        source, n = iter(frames), len(frames)
    elif isinstance(frames, Iterable):
        source, n = iter(frames), None
    else:
        raise ValueError(f"frames must be an array or a list of images, got {type(frames).__name__}")
    try:
        first = _as_uint8(next(source))
    except StopIteration:
        raise ValueError("frames is empty: a video needs at least one frame") from None
    h, w = first.shape[:2]

    def it() -> Iterator[np.ndarray]:
        yield first
        for i, raw in enumerate(source, start=1):
            f = _as_uint8(raw)
            if f.shape[:2] != (h, w):
                raise ValueError(f"frame {i} is {f.shape[1]}×{f.shape[0]}, frame 0 is {w}×{h}")
            yield f

    return it(), n, h, w


# --- export -------------------------------------------------------------------------------------


def export_video(
    frames: Any,
    out_dir: str | os.PathLike[str],
    *,
    fps: int = 16,
    metadata: dict[str, Any] | None = None,
    crf: int = DEFAULT_CRF,
    thumbnail_format: str | None = "jpg",
    preset: str = "medium",
    animated_preview: bool = True,
) -> ExportedVideo:
    """Encode `frames` as H.264/yuv420p MP4 into `out_dir` as `<sha256>.mp4` (+ `<sha256>.<ext>` thumbnail
    of the middle frame, + `<sha256>.preview.webp` animated preview unless `animated_preview` is False).

    `frames`: a (T, H, W, 3) uint8 array, floats in [0, 1], or a list / iterable of PIL images or arrays.

    Written to a temporary file in `out_dir` and renamed when complete; on any failure nothing is left.
    Odd sides are cropped by one pixel (yuv420p needs even sides; logged).
    """
    # 1. Check inputs
    if not isinstance(fps, int) or not 1 <= fps <= 240:
        raise ValueError(f"fps must be an integer in 1–240, got {fps!r}")
    if not isinstance(crf, int) or not CRF_RANGE[0] <= crf <= CRF_RANGE[1]:
        raise ValueError(f"crf must be an integer in {CRF_RANGE[0]}–{CRF_RANGE[1]}, got {crf!r}")
    if thumbnail_format is not None and thumbnail_format.lower() not in THUMBNAIL_FORMATS:
        raise ValueError(
            f"thumbnail_format must be one of {sorted(THUMBNAIL_FORMATS)} or None, got {thumbnail_format!r}"
        )
    comment = json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str) if metadata else None
    it, count, h, w = _frames(frames)
    ew, eh = w - w % 2, h - h % 2
    if (ew, eh) != (w, h):
        log.warning("frames are %d×%d: cropped to %d×%d (H.264 yuv420p needs even sides)", w, h, ew, eh)
    if ew < 2 or eh < 2:
        raise ValueError(f"frames are {w}×{h}: too small to encode")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    tmp_video = _temp_path(out_dir, ".mp4")
    tmp_thumb = _temp_path(out_dir, "." + thumbnail_format.lower()) if thumbnail_format else None
    tmp_preview = _temp_path(out_dir, PREVIEW_SUFFIX) if animated_preview else None
    sampler = FrameSampler(count)
    try:
        # 2. Encode the video into the temp file (keeping a sample of the frames)
        _, n = _encode(it, tmp_video, ew, eh, fps=fps, crf=crf, preset=preset, faststart=comment is None,
                       sampler=sampler)
        if comment is not None:  # 2b. the metadata, through a file (never the command line: it has a length limit)
            _attach_comment(tmp_video, comment)
        digest = _sha256(tmp_video)
        # 3. Thumbnail = the middle frame; animated preview = the sample, looping at the clip's speed
        thumb_path = preview_path = None
        if tmp_thumb is not None:
            fmt = THUMBNAIL_FORMATS[thumbnail_format.lower()]
            with open(tmp_thumb, "wb") as f:
                sampler.middle_frame(n).save(f, fmt, quality=90)
                f.flush()
                os.fsync(f.fileno())
            thumb_path = os.path.join(out_dir, f"{digest}.{thumbnail_format.lower()}")
            os.replace(tmp_thumb, thumb_path)
        if tmp_preview is not None:
            sampler.write_preview(tmp_preview, n, fps)
            preview_path = os.path.join(out_dir, f"{digest}{PREVIEW_SUFFIX}")
            os.replace(tmp_preview, preview_path)
        # 4. Publish under the content hash
        video_path = os.path.join(out_dir, f"{digest}.mp4")
        os.replace(tmp_video, video_path)
    finally:
        for p in (tmp_video, tmp_thumb, tmp_preview):
            if p is not None and os.path.exists(p):
                os.unlink(p)
    return ExportedVideo(
        video_path=video_path, thumbnail_path=thumb_path, sha256=digest,
        width=ew, height=eh, num_frames=n, fps=fps, preview_path=preview_path,
    )


class FrameSampler:
    """Small copies of every `stride`-th frame seen, evenly spaced and bounded: the stride follows from
    `count` when it is known, else it doubles whenever 2 × max_frames are kept; and the full frame in the
    middle when the count is known. Shrinking is a box filter by a whole factor (cheap: a render must
    not slow down for its preview)."""

    def __init__(self, count: int | None = None, max_frames: int = PREVIEW_FRAMES, side: int = PREVIEW_SIDE) -> None:
        self.middle = count // 2 if count else None
        self.max_frames = max_frames
        self.side = side
        self.stride = max(1, count // max_frames) if count else 1
        self.kept: list[tuple[int, Image.Image]] = []
        self.full_middle: Image.Image | None = None

    def add(self, index: int, frame: np.ndarray) -> None:
        if index == self.middle:
            self.full_middle = Image.fromarray(frame)
        if index % self.stride:
            return
        factor = -(-max(frame.shape[:2]) // self.side)  # ceil: the longer side ends ≤ side
        small = Image.fromarray(frame[: frame.shape[0] - frame.shape[0] % factor, : frame.shape[1] - frame.shape[1] % factor])
        if factor > 1:
            small = small.reduce(factor)
        self.kept.append((index, small))
        if len(self.kept) >= 2 * self.max_frames:
            self.kept = self.kept[::2]
            self.stride *= 2

    def middle_frame(self, n: int) -> Image.Image:
        """The frame in the middle of the clip (full size when the count was known, else the kept copy)."""
        if self.full_middle is not None:
            return self.full_middle
        return min(self.kept, key=lambda k: abs(k[0] - n // 2))[1]

    def write_preview(self, path: str, n: int, fps: int) -> None:
        """The kept frames (at most `max_frames`, evenly spaced) as a looping animated WebP at the clip's speed."""
        step = max(1, -(-len(self.kept) // self.max_frames))
        frames = [im for _, im in self.kept[::step]]
        duration_ms = max(20, round(1000 * n / fps / len(frames)))
        with open(path, "wb") as f:
            frames[0].save(f, "WEBP", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0,
                           quality=PREVIEW_QUALITY, method=0)
            f.flush()
            os.fsync(f.fileno())


def default_out_dir() -> str:
    """Where a backend writes when given no `out_dir`: `<home>/media/videos` (the settings' storage.home)."""
    from storage.store import MEDIA_DIRNAME, resolve_location

    return str(resolve_location()[1] / MEDIA_DIRNAME / "videos")


def _temp_path(out_dir: str, suffix: str) -> str:
    fd, path = tempfile.mkstemp(prefix=".tmp-export-", suffix=suffix, dir=out_dir)
    os.close(fd)
    return path


def _encode(
    frames: Iterator[np.ndarray], path: str, w: int, h: int, *, fps: int, crf: int, preset: str,
    faststart: bool = True, sampler: FrameSampler | None = None,
) -> tuple[np.ndarray, int]:
    """Pipe the frames to ffmpeg/libx264 (each also to `sampler`); returns the first (cropped) frame and
    the frame count."""
    import imageio_ffmpeg

    params = ["-crf", str(crf), "-preset", preset] + (["-movflags", "+faststart"] if faststart else [])
    writer = imageio_ffmpeg.write_frames(
        path, (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        quality=None, macro_block_size=16 if w % 16 == 0 and h % 16 == 0 else 2,
        ffmpeg_log_level="error", output_params=params,
    )
    first: np.ndarray | None = None
    count = 0
    try:
        writer.send(None)
        for f in frames:
            f = np.ascontiguousarray(f[:h, :w])
            if first is None:
                first = f
            writer.send(f)
            if sampler is not None:
                sampler.add(count, f)
            count += 1
    except (OSError, RuntimeError) as e:  # broken pipe, ffmpeg exited early
        writer.close()
        raise ExportError(f"ffmpeg failed while encoding {path!r}: {e}") from e
    except BaseException:
        writer.close()
        raise
    try:
        writer.close()
    except (OSError, RuntimeError) as e:
        raise ExportError(f"ffmpeg failed to finish {path!r}: {e}") from e
    assert first is not None  # _frames guarantees one frame
    return first, count


def _attach_comment(path: str, comment: str) -> None:
    """Set the MP4's `comment` tag to `comment` from an ffmetadata file (`-i meta.txt -map_metadata 1`), copying
    the streams into a temporary file that replaces `path`; the metadata never goes on the command line."""
    import imageio_ffmpeg

    folder = os.path.dirname(path)
    meta = _temp_path(folder, ".ffmeta.txt")
    out = _temp_path(folder, ".mp4")
    try:
        with open(meta, "w", encoding="utf-8") as f:
            f.write(";FFMETADATA1\ncomment=" + _escape_ffmetadata(comment) + "\n")
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-i", path,
               "-f", "ffmetadata", "-i", meta, "-map", "0", "-map_metadata", "1", "-c", "copy",
               "-movflags", "+faststart", out]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise ExportError(f"ffmpeg could not write the metadata of {path!r}: {done.stderr.strip()[-300:]}")
        os.replace(out, path)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExportError(f"ffmpeg could not write the metadata of {path!r}: {e}") from e
    finally:
        for p in (meta, out):
            if os.path.exists(p):
                os.unlink(p)


def _escape_ffmetadata(text: str) -> str:
    """ffmetadata escapes `=`, `;`, `#`, `\\` and newlines with a backslash (the inverse of `_parse_ffmetadata`)."""
    return re.sub(r"([=;#\\\n])", r"\\\1", text)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        os.fsync(f.fileno())
    return h.hexdigest()


# --- probe --------------------------------------------------------------------------------------

_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<rest>.*)")
_SIZE = re.compile(r"\b(\d{1,5})x(\d{1,5})\b")
_FPS = re.compile(r"([\d.]+) fps")
_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_FRAME = re.compile(r"frame=\s*(\d+)")


def probe_video(path: str | os.PathLike[str], *, count_frames: bool = True) -> dict[str, Any]:
    """codec, pix_fmt, width, height, fps, duration_s, num_frames (decoded), tags, comment, metadata.

    `metadata` is the comment parsed as JSON (None when absent or not JSON).
    """
    import imageio_ffmpeg

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video not found: {path}")
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    info = subprocess.run(
        [exe, "-hide_banner", "-i", path, "-f", "ffmetadata", "-"],
        capture_output=True, text=True, timeout=60,
    )
    m = _STREAM.search(info.stderr)
    if m is None:
        raise ValueError(f"{path} has no video stream (ffmpeg: {info.stderr.strip()[-300:]})")
    rest = m.group("rest")
    codec = rest.split()[0].rstrip(",")
    parts = [p.strip() for p in re.split(r",(?![^(]*\))", rest)]
    pix_fmt = parts[1].split("(")[0].strip() if len(parts) > 1 else None
    size = _SIZE.search(rest)
    fps_m = _FPS.search(rest)
    dur = _DURATION.search(info.stderr)
    tags = _parse_ffmetadata(info.stdout)
    comment = tags.get("comment")
    meta = None
    if comment:
        try:
            meta = json.loads(comment)
        except json.JSONDecodeError:
            meta = None
    out: dict[str, Any] = {
        "codec": codec,
        "pix_fmt": pix_fmt,
        "width": int(size.group(1)) if size else None,
        "height": int(size.group(2)) if size else None,
        "fps": float(fps_m.group(1)) if fps_m else None,
        "duration_s": (int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3))) if dur else None,
        "tags": tags,
        "comment": comment,
        "metadata": meta,
        "num_frames": None,
    }
    if count_frames:
        dec = subprocess.run(
            [exe, "-hide_banner", "-nostats", "-stats_period", "1000", "-progress", "pipe:1",
             "-i", path, "-map", "0:v:0", "-f", "null", "-"],
            capture_output=True, text=True, timeout=300,
        )
        if dec.returncode != 0:
            raise ValueError(f"{path} does not decode: {dec.stderr.strip()[-300:]}")
        counts = _FRAME.findall(dec.stdout)
        out["num_frames"] = int(counts[-1]) if counts else None
    return out


def _parse_ffmetadata(text: str) -> dict[str, str]:
    """Parse ffmpeg's ffmetadata format (`key=value`, with `\\` escaping `=;#\\` and newlines)."""
    tags: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line or line.startswith(";") or line.startswith("["):
            continue
        # join continued lines (an escaped newline ends the line with a lone backslash)
        while _ends_escaped(line) and i < len(lines):
            line = line[:-1] + "\n" + lines[i]
            i += 1
        key, value = _split_unescaped(line)
        if key is not None:
            tags[key.lower()] = value
    return tags


def _ends_escaped(line: str) -> bool:
    n = len(line) - len(line.rstrip("\\"))
    return n % 2 == 1


def _split_unescaped(line: str) -> tuple[str | None, str]:
    key_chars: list[str] = []
    val_chars: list[str] = []
    target = key_chars
    seen_eq = False
    it = iter(line)
    for ch in it:
        if ch == "\\":
            target.append(next(it, ""))
        elif ch == "=" and not seen_eq:
            seen_eq = True
            target = val_chars
        else:
            target.append(ch)
    if not seen_eq:
        return None, ""
    return "".join(key_chars), "".join(val_chars)
