"""Input images: load safely, fix orientation and colour mode, and pick the output resolution.

Both backends (`wan`, `preview`) use the same rule, so a preview and the final video have the same size; the
model's spec (`generation.specs`) gives the size multiple and the max area (16 and 832×480 for Wan2.2-A14B,
32 and 1280×704 for TI2V-5B); the defaults below are the default model's.

The size rule (`output_size`), exactly:
1. `a` = long side / short side of the input (after EXIF orientation). Aspects beyond `max_aspect`
   (default 4:1) are clamped to it; `preprocess` then centre-crops the long side (logged).
2. The ideal continuous size at the area budget: short side `S* = sqrt(max_area / a)`.
   When `max_long_side` is given, the budget shrinks so the long side fits: `max_area' =
   min(max_area, max_long_side**2 / a)`.
3. Short side `S = max(multiple, floor(S* / multiple) * multiple)`; long side `L` = the multiple of
   `multiple` nearest to `S * a`, lowered by `multiple` while `S * L > max_area'` (and never below `S`).
4. Orientation is kept: landscape inputs give `(L, S)`, portrait ones `(S, L)`.

Consequences: both sides are multiples of `multiple`; the area never exceeds `max_area`; the long side is
within half a multiple of `S * a` (one multiple when rounding up would break the area); the short
side is ≥ `min_short_side` whenever the aspect allows it (`a ≤ max_area / min_short_side**2`, i.e.
up to 832/480 ≈ 1.73 for the 480p budget). Examples at 480p: 16:9 → 832×464, 3:2 → 768×512,
4:3 → 720×544, 1:1 → 624×624, 9:16 → 464×832. Wider inputs trade short side for aspect
(2:1 → 864×432; 4:1 → 1216×304). Small inputs are upscaled to the budget (Lanczos).
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from generation.specs import default_spec
from vividflow.errors import VividflowError, short

if TYPE_CHECKING:
    from agent.plan import MotionPlan

log = logging.getLogger(__name__)

MAX_AREA = default_spec().max_area  # Wan2.2-A14B's 480p budget: 832×480 = 399,360 pixels
MULTIPLE = default_spec().size_multiple  # its VAE spatial factor 8 × patch size 2
MIN_SHORT_SIDE = 480
MAX_ASPECT = 4.0
MIN_INPUT_SIDE = 16
# The input limits, the same for the CLI, the workers and the studio's uploads (ui.create), checked before
# decoding a pixel: the file's size in bytes, and Pillow's own default bomb limit in pixels (~89.5 MP).
MAX_INPUT_BYTES = 50 * 2**20
MAX_INPUT_PIXELS = 89_478_485
ACCEPTED_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF")

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, Image.Image]


class ImageError(VividflowError, ValueError):
    """An input image we cannot use; the message says what was wrong with it."""


class UnreadableImage(ImageError):
    """Not an image Pillow can read (corrupt, or a format it does not know)."""


class DecompressionBomb(ImageError):
    """So many pixels that Pillow itself refuses to open it."""


class UnsupportedFormat(ImageError):
    """A readable image in a format we do not accept; `format` is Pillow's name for it."""

    def __init__(self, message: str, format: str | None) -> None:
        super().__init__(message)
        self.format = format


@dataclass(frozen=True)
class ResolutionPreview:
    """What a generation will produce from this image and plan, known before any model loads."""

    input_width: int
    input_height: int
    width: int
    height: int
    num_frames: int
    fps: int
    duration_s: float


# --- loading ------------------------------------------------------------------------------------


def open_image(
    source: str | os.PathLike[str] | bytes | bytearray,
    *,
    max_pixels: int = MAX_INPUT_PIXELS,
    min_side: int = MIN_INPUT_SIDE,
    formats: Collection[str] = ACCEPTED_FORMATS,
    max_bytes: int = MAX_INPUT_BYTES,
) -> Image.Image:
    """Open a path or bytes from its header alone (no pixel decoded yet), checked, or raise ImageError saying why not.

    Checked: at most `max_bytes` long (before reading it), it is an image Pillow reads (else UnreadableImage; DecompressionBomb beyond Pillow's own
    limit), its format is in `formats` (else UnsupportedFormat), each side is ≥ `min_side` and it has
    at most `max_pixels` pixels. The one place that opens an input image; `load_image` decodes it.
    """
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("image bytes are empty")
        _check_bytes(len(source), "image bytes", max_bytes)
        fp: io.BytesIO | str = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ImageError(f"image file not found: {short(path)}")
        if not os.path.isfile(path):  # a folder, a FIFO, a device: refused without reading
            raise ImageError(f"image path is not a file (a folder, FIFO or device): {short(path)}")
        _check_bytes(os.path.getsize(path), _describe(path), max_bytes)
        fp = path
    else:
        raise ImageError(
            f"image must be a path, bytes or a PIL image, got {type(source).__name__}"
        )
    what = _describe(source)
    try:
        im = Image.open(fp)
    except Image.DecompressionBombError as e:
        raise DecompressionBomb(f"{what} is too large to decode safely (decompression bomb): {e}") from None
    except UnidentifiedImageError:
        raise UnreadableImage(
            f"{what} is not a readable image (corrupt, or a format Pillow does not know); "
            f"accepted formats: {', '.join(formats)}"
        ) from None
    except OSError as e:
        raise ImageError(f"{what} is corrupt or truncated and cannot be opened: {e}") from None
    if im.format not in formats:
        fmt = im.format
        im.close()
        raise UnsupportedFormat(
            f"{what} has unsupported format {fmt}; accepted formats: {', '.join(formats)}", fmt
        )
    _check_size(im.size, what, max_pixels=max_pixels, min_side=min_side)
    return im


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = MAX_INPUT_PIXELS,
    min_side: int = MIN_INPUT_SIDE,
) -> Image.Image:
    """Open a path, bytes or PIL image as an upright RGB image, or raise ImageError saying why not.

    The header is checked (`open_image`: format, size, decompression bomb) before any pixel is decoded.
    """
    if isinstance(source, Image.Image):
        im = source
        what = "image"
        _check_size(im.size, what, max_pixels=max_pixels, min_side=min_side)
    else:
        im = open_image(source, max_pixels=max_pixels, min_side=min_side)
        what = _describe(source)
    if getattr(im, "n_frames", 1) > 1:
        log.info("%s is animated (%d frames): using the first frame", what, im.n_frames)
        im.seek(0)
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{what} is corrupt or truncated and cannot be decoded: {e}") from None
    return to_rgb(im)


def _describe(source: str | os.PathLike[str] | bytes | bytearray) -> str:
    """How messages name an image source."""
    if isinstance(source, (bytes, bytearray)):
        return f"image bytes ({len(source)} B)"
    return f"image {short(os.path.basename(os.fspath(source)))}"


def _check_bytes(size: int, what: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise ImageError(f"{what} is {size / 2**20:.1f} MB; pictures up to {max_bytes / 2**20:g} MB are accepted")


def _check_size(size: tuple[int, int], what: str, *, max_pixels: int, min_side: int) -> None:
    w, h = size
    if min(w, h) < min_side:
        raise ImageError(f"{what} is {w}×{h}: each side must be at least {min_side} px")
    if w * h > max_pixels:
        raise ImageError(
            f"{what} is {w}×{h} = {w * h:,} pixels: more than the {max_pixels:,} allowed "
            "(refused before decoding, as a possible decompression bomb); downscale it first"
        )


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; transparency is composited on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(im, dtype=np.float32)
        if im.mode.startswith("I;16") or (im.mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0
        elif im.mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        log.info("converted %s-mode image to 8-bit", im.mode)
        im = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


# --- size rule ----------------------------------------------------------------------------------


def output_size(
    width: int,
    height: int,
    *,
    max_area: int = MAX_AREA,
    multiple: int = MULTIPLE,
    min_short_side: int = MIN_SHORT_SIDE,
    max_long_side: int | None = None,
    max_aspect: float = MAX_ASPECT,
) -> tuple[int, int]:
    """The (width, height) a backend renders for a width×height input; the rule is in the module docstring."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if multiple < 1:
        raise ValueError(f"multiple must be ≥ 1, got {multiple}")
    if max_area < multiple * multiple:
        raise ValueError(f"max_area must be ≥ multiple² = {multiple * multiple}, got {max_area}")
    if max_aspect < 1:
        raise ValueError(f"max_aspect must be ≥ 1, got {max_aspect}")
    short, long_ = min(width, height), max(width, height)
    aspect = long_ / short
    if aspect > max_aspect:
        log.info("aspect %.2f:1 of %d×%d is clamped to %.2f:1", aspect, width, height, max_aspect)
        aspect = max_aspect
    budget = float(max_area)
    if max_long_side is not None:
        budget = min(budget, max_long_side * max_long_side / aspect)
    s = max(multiple, int(math.sqrt(budget / aspect) // multiple) * multiple)
    ell = max(s, int(round(s * aspect / multiple)) * multiple)
    while ell > s and s * ell > budget:
        ell -= multiple
    if s * ell > max_area:  # only when even the smallest square does not fit
        raise ValueError(f"max_area {max_area} is too small for multiple {multiple}")
    if s < min_short_side and aspect <= max_area / (min_short_side * min_short_side):
        # Cannot happen with min_short_side a multiple of `multiple`; guard the documented promise.
        log.warning("short side %d < %d for aspect %.3f", s, min_short_side, aspect)
    return (ell, s) if width >= height else (s, ell)


def preprocess(
    image: Image.Image,
    *,
    max_area: int = MAX_AREA,
    multiple: int = MULTIPLE,
    max_long_side: int | None = None,
    max_aspect: float = MAX_ASPECT,
) -> Image.Image:
    """Resize (Lanczos) to `output_size`, centre-cropping only what the aspect change needs."""
    image = to_rgb(image)
    w, h = image.size
    tw, th = output_size(
        w, h, max_area=max_area, multiple=multiple, max_long_side=max_long_side, max_aspect=max_aspect
    )
    # The largest box of the target aspect centred in the source: one resample, no second crop.
    target_aspect = tw / th
    if w / h > target_aspect:
        bw, bh = h * target_aspect, float(h)
    else:
        bw, bh = float(w), w / target_aspect
    x0, y0 = (w - bw) / 2, (h - bh) / 2
    cropped = (w - bw) + (h - bh)
    if cropped > 0.02 * max(w, h):
        log.info("preprocess crops %.0f px to go from %d×%d to %d×%d", cropped, w, h, tw, th)
    elif cropped > 0.5:
        log.debug("preprocess crops %.1f px to go from %d×%d to %d×%d", cropped, w, h, tw, th)
    if (w, h) == (tw, th):
        return image.copy()
    return image.resize((tw, th), Image.Resampling.LANCZOS, box=(x0, y0, x0 + bw, y0 + bh))


def resolution_preview(
    image_or_size: Image.Image | tuple[int, int],
    plan: MotionPlan,
    *,
    max_area: int = MAX_AREA,
    multiple: int = MULTIPLE,
    max_long_side: int | None = None,
    fps: int | None = None,
) -> ResolutionPreview:
    """Input and output sizes, frames (4k+1 at `fps`, default the plan's) and duration for `plan`; loads no model
    and decodes no pixels."""
    from agent.plan import frames_for

    if isinstance(image_or_size, Image.Image):
        iw, ih = _upright_size(image_or_size)
    else:
        iw, ih = image_or_size
    w, h = output_size(iw, ih, max_area=max_area, multiple=multiple, max_long_side=max_long_side)
    fps = fps or plan.fps
    n = frames_for(plan.duration_s, fps)
    return ResolutionPreview(
        input_width=iw, input_height=ih, width=w, height=h,
        num_frames=n, fps=fps, duration_s=round(n / fps, 4),
    )


def _upright_size(im: Image.Image) -> tuple[int, int]:
    """Size after EXIF orientation, read from the header only."""
    w, h = im.size
    try:
        data = im.info.get("exif")
        if data:
            exif = Image.Exif()
            exif.load(data)
            orientation = exif.get(0x0112, 1)
        elif im.format == "PNG" and getattr(im, "_im", None) is None:
            orientation = 1  # PNG's getexif() would decode the pixels to find a trailing eXIf chunk
        else:
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError):
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
