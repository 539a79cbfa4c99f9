"""The picture: upload (PNG/JPEG/WebP) with clear messages, the image itself, and the live resolution preview."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from generation.image import MAX_INPUT_BYTES
from ui.format import plain
from ui.widgets import is_current, scoped
from vividflow.studio import Studio

# Uploads take fewer formats than generation.image.ACCEPTED_FORMATS: Pillow's name -> the stored format
UPLOAD_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp")  # what the browser's file picker offers
FORMATS_TEXT = "PNG, JPEG or WebP"
MAX_UPLOAD_MB = MAX_INPUT_BYTES // 2**20  # the CLI's limit too; also server.maxUploadSize in .streamlit/config.toml


@dataclass(frozen=True)
class CheckedUpload:
    """An uploaded file that decodes as a picture we accept."""

    data: bytes
    filename: str
    width: int  # upright (after EXIF orientation)
    height: int
    format: str


class UploadError(ValueError):
    """An upload we cannot use; the message is shown to the person as it is."""


def check_upload(data: bytes, filename: str, *, max_pixels: int | None = None) -> CheckedUpload:
    """Validate an upload fully (format, size, decodes without error) before anything is stored."""
    from PIL import Image

    from generation.image import (
        MAX_INPUT_PIXELS,
        DecompressionBomb,
        ImageError,
        UnreadableImage,
        UnsupportedFormat,
        load_image,
        open_image,
    )

    if not data:
        raise UploadError(f"{filename} is empty (0 bytes).")
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise UploadError(f"{filename} is {len(data) / 2**20:.0f} MB; pictures up to {MAX_UPLOAD_MB} MB are accepted.")
    limit = max_pixels or MAX_INPUT_PIXELS
    try:
        with warnings.catch_warnings():  # the size is checked by open_image, with a message for the person
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image(data, max_pixels=limit, formats=tuple(UPLOAD_FORMATS)) as probe:
                fmt = probe.format
            image = load_image(data, max_pixels=limit)
    except UnreadableImage:
        raise UploadError(
            f"{filename} is not a picture we can read (corrupt, or not {FORMATS_TEXT})."
        ) from None
    except DecompressionBomb:
        raise UploadError(f"{filename} is far too large in pixels to open safely; downscale it first.") from None
    except UnsupportedFormat as e:
        raise UploadError(f"{filename} is a {e.format or 'unknown'} file; please upload a {FORMATS_TEXT} picture.") from None
    except ImageError as e:
        raise UploadError(f"{filename}: {e}") from None
    return CheckedUpload(data, filename, image.width, image.height, UPLOAD_FORMATS[fmt])


UPLOADER = "upload"  # the widget's key, scoped per conversation (ui.widgets.scoped)
ERROR = "upload._error"  # (file id, message) of the file in the uploader that could not be used
SEEN = "upload._seen"  # the file id last taken from the uploader


def clear_error() -> None:
    """Forget the last upload's error (another conversation opens)."""
    st.session_state.pop(ERROR, None)


def take_upload(studio: Studio, key: str, *, seen: str, error: str,
                use: Callable[[CheckedUpload], None]) -> None:
    """An uploader's callback body: runs before the page is drawn, so a new picture is in use (and a bad file's
    error shows) in the same run that shows the file in the uploader. `seen` and `error` are the session keys
    of the file last taken and of the (file id, message) of a file that could not be used."""
    if not is_current(studio):
        return
    uploaded = st.session_state.get(key)
    if uploaded is None:  # the person removed the file: its error goes with it
        st.session_state.pop(error, None)
        return
    if st.session_state.get(seen) == uploaded.file_id:
        return
    st.session_state[seen] = uploaded.file_id
    try:
        checked = check_upload(uploaded.getvalue(), uploaded.name)
    except UploadError as e:
        st.session_state[error] = (uploaded.file_id, str(e))
        return
    st.session_state.pop(error, None)
    use(checked)


def _on_upload(studio: Studio, key: str) -> None:
    take_upload(studio, key, seen=SEEN, error=ERROR,
                use=lambda c: studio.set_image(c.data, c.filename, c.width, c.height, c.format))


def upload_error() -> str | None:
    """The message for the file now in the uploader, if that file could not be used."""
    err = st.session_state.get(ERROR)
    if not err:
        return None
    file_id, message = err
    current = st.session_state.get(scoped(UPLOADER))
    return message if current is not None and current.file_id == file_id else None


def _uploader(studio: Studio) -> None:
    key = scoped(UPLOADER)
    st.file_uploader(
        f"Picture ({FORMATS_TEXT})",
        type=list(UPLOAD_EXTENSIONS),
        key=key,
        max_upload_size=MAX_UPLOAD_MB,
        help="The still image to bring to life",
        on_change=_on_upload,
        args=(studio, key),
    )


STORY_UPLOADER = "story_upload"  # story mode's multi-file uploader (scoped like UPLOADER)
STORY_ERROR = "story_upload._error"  # (file ids, message) of the files that could not be used
STORY_SEEN = "story_upload._seen"  # the file ids last taken


def _on_story_upload(studio: Studio, key: str) -> None:
    """The story uploader's callback (taken before the page is drawn, like `_on_upload`)."""
    from agent.plan import STORY_PICTURES

    if not is_current(studio):
        return
    files = list(st.session_state.get(key) or ())
    ids = tuple(f.file_id for f in files)
    if not ids:
        st.session_state.pop(STORY_ERROR, None)
        return
    if st.session_state.get(STORY_SEEN) == ids:
        return
    st.session_state[STORY_SEEN] = ids
    lo, hi = STORY_PICTURES
    try:
        if not lo <= len(files) <= hi:
            raise UploadError(f"story mode takes {lo} to {hi} pictures, got {len(files)}.")
        checked = [check_upload(f.getvalue(), f.name) for f in files]
    except UploadError as e:
        st.session_state[STORY_ERROR] = (ids, str(e))
        return
    st.session_state.pop(STORY_ERROR, None)
    studio.set_story_pictures([(c.data, c.filename, c.width, c.height, c.format) for c in checked])


def _story_uploader(studio: Studio) -> None:
    """Story mode (#12 §4): two to six pictures in order; the chat reorders them and paces each transition."""
    from agent.plan import STORY_PICTURES

    lo, hi = STORY_PICTURES
    key = scoped(STORY_UPLOADER)
    with st.expander(f"Story mode: {lo} to {hi} pictures", expanded=bool(studio.plan.story_images)):
        st.file_uploader(f"Pictures in order ({FORMATS_TEXT})", type=list(UPLOAD_EXTENSIONS),
                         accept_multiple_files=True, key=key, max_upload_size=MAX_UPLOAD_MB,
                         help="One video going from each picture to the next; say “slower between 2 and 3”",
                         on_change=_on_story_upload, args=(studio, key))
        err = st.session_state.get(STORY_ERROR)
        if err and err[0] == tuple(f.file_id for f in st.session_state.get(key) or ()):
            st.error(plain(err[1]), icon=":material/error:")  # names the file
        if studio.plan.story_images:
            records = [studio.store.find_image(k) for k in studio.plan.story_images]
            shown = [r for r in records if r is not None]
            if shown:  # in story order (the chat reorders them)
                st.image([thumbnail(r.path) for r in shown], caption=[str(i) for i in range(1, len(shown) + 1)],
                         width=96)
            st.caption(f"{len(studio.plan.story_images)} pictures, {studio.plan.segment_count} segments, "
                       f"{studio.plan.duration_s:g} s")


def render(studio: Studio, *, max_area: int | None = None) -> None:
    """The uploader, the current picture, story mode's uploader (#12 §4) and the resolution preview
    (`max_area`: the backend's budget).

    An upload is taken by the uploader's callback, before anything is drawn: the picture shown, the
    caption in the chat and the next render all use the file the uploader shows."""
    err = upload_error()
    if studio.image is None:
        _uploader(studio)
        if err:
            st.error(plain(err), icon=":material/error:")  # names the file
        st.info("Upload a picture to start.", icon=":material/photo:")
        _story_uploader(studio)
        return
    if err:
        st.error(plain(err) + " The previous picture is kept.", icon=":material/error:")
    st.image(thumbnail(studio.image.path), width="stretch", caption=studio.image.filename or "picture")
    resolution_line(studio, max_area=max_area)
    with st.expander("Use another picture", expanded=bool(err)):  # the uploader keeps its key: same widget
        _uploader(studio)
    _story_uploader(studio)


THUMB_SIDE = 320


def thumbnail(path: Path) -> bytes:
    """A small upright JPEG of the picture, made once per file and session (the page reruns often)."""
    from PIL import ImageOps

    from generation.image import open_image

    cache = st.session_state.setdefault("upload._thumbs", {})
    key = str(path)
    if key not in cache:
        with open_image(path) as im:
            im = ImageOps.exif_transpose(im)
            im.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", quality=88)
        cache[key] = buf.getvalue()
    return cache[key]


def upright_size(studio: Studio) -> tuple[int, int]:
    """The picture's size after EXIF orientation (header only, cached per image id)."""
    from generation.image import open_image, resolution_preview

    cache = st.session_state.setdefault("upload._sizes", {})
    image = studio.image
    if image is None:
        raise ValueError("no picture yet")
    if image.id not in cache:
        with open_image(image.path) as im:  # reads the header (and EXIF) only
            rp = resolution_preview(im, studio.plan)
        cache[image.id] = (rp.input_width, rp.input_height)
    return cache[image.id]


def resolution_line(studio: Studio, *, max_area: int | None = None) -> None:
    from generation.image import MAX_AREA, resolution_preview

    image = studio.image
    if image is None:
        return
    rp = resolution_preview(upright_size(studio), studio.plan, max_area=max_area or MAX_AREA)
    st.markdown(
        f"input {rp.input_width}×{rp.input_height} → output **{rp.width}×{rp.height}**  \n"
        f"**{rp.num_frames} frames** · **{rp.duration_s:.2f} s** at {rp.fps} fps"
    )
