"""generation.image: safe loading, colour modes, EXIF, the size rule, preprocessing, resolution preview."""

from __future__ import annotations

import math
import resource
import time

import numpy as np
import pytest
from PIL import Image

from agent.plan import MotionPlan
from generation.image import (
    DecompressionBomb,
    ImageError,
    ResolutionPreview,
    UnreadableImage,
    UnsupportedFormat,
    load_image,
    open_image,
    output_size,
    preprocess,
    resolution_preview,
)



# --- loading ------------------------------------------------------------------------------------


def test_load_png_jpeg_webp_paths_and_bytes(tmp_path, gh):
    im = gh.photo("chelsea", 120)
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")):
        data = gh.encode(im, fmt)
        p = tmp_path / f"cat.{ext}"
        p.write_bytes(data)
        for src in (p, str(p), data):
            out = load_image(src)
            assert out.mode == "RGB" and out.size == im.size
            diff = np.abs(np.asarray(out, np.int16) - np.asarray(im, np.int16)).mean()
            assert diff < 8, (fmt, diff)


def test_exif_orientation_is_applied(tmp_path, gh):
    # left half red, right half blue, 40×20; orientation 6 = "rotate 90° clockwise to display"
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = gh.encode(Image.fromarray(arr), "JPEG", exif=exif.tobytes(), quality=95)
    out = np.asarray(load_image(data))
    assert out.shape == (40, 20, 3)  # portrait after the turn
    top, bottom = out[:15].mean(axis=(0, 1)), out[-15:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue at the bottom
    # the resolution preview reads the same orientation from the header alone
    assert resolution_preview(Image.open(__import__("io").BytesIO(data)), MotionPlan.create(template="product")).input_width == 20


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "PA", "L", "1", "CMYK", "I;16", "YCbCr"])
def test_modes_become_rgb(mode):
    base = Image.new("RGB", (32, 24), (200, 30, 30))
    if mode == "P":
        im = base.convert("P")
    elif mode == "PA":
        im = base.convert("RGBA").convert("PA")
    elif mode == "I;16":
        im = Image.fromarray(np.full((24, 32), 40000, np.uint16))
        assert im.mode == "I;16"
    else:
        im = base.convert(mode)
    out = load_image(im)
    assert out.mode == "RGB" and out.size == (32, 24)
    if mode == "I;16":
        assert abs(int(np.asarray(out)[0, 0, 0]) - round(40000 / 257)) <= 1


def test_transparency_is_composited_on_white(gh):
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[..., 0] = 255
    arr[:, 10:, 3] = 255  # left half fully transparent
    out = np.asarray(load_image(gh.encode(Image.fromarray(arr, "RGBA"))))
    assert (out[:, :10] == 255).all()  # white where transparent
    assert (out[:, 10:] == (255, 0, 0)).all()
    # a palette image with a transparent index too
    p = Image.new("P", (20, 20), 0)
    p.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    p.info["transparency"] = 0
    assert (np.asarray(load_image(gh.encode(p))) == 255).all()


def test_corrupt_and_truncated_bytes_are_refused(gh):
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(b"this is not an image at all")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    jpeg = gh.encode(gh.photo("coffee", 200), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(jpeg[: len(jpeg) // 2])


def test_unsupported_format_is_named(tmp_path, gh):
    data = gh.encode(Image.new("RGB", (32, 32)), "PPM")
    with pytest.raises(ImageError, match="unsupported format PPM.*PNG, JPEG"):
        load_image(data)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(ImageError, match="not found.*nope.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="path, bytes or a PIL image, got int"):
        load_image(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(1, 1), (15, 200), (200, 15)])
def test_tiny_images_are_refused(size, gh):
    with pytest.raises(ImageError, match=r"at least 16 px"):
        load_image(gh.encode(Image.new("RGB", size)))


def test_decompression_bomb_refused_before_decoding(gh):
    data = gh.png_header_only(20000, 20000)  # 400 MP claimed, ~100 bytes on disk
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(data)
    assert time.perf_counter() - t0 < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 100_000  # KiB: nothing 400 MB was allocated
    # below Pillow's own hard limit, but above ours: still refused by our check, by the header alone
    with pytest.raises(ImageError, match=r"3000×3000 = 9,000,000 pixels.*1,000,000 allowed"):
        load_image(gh.png_header_only(3000, 3000), max_pixels=1_000_000)


def test_open_image_reads_the_header_only_and_names_each_failure(tmp_path, gh):
    p = tmp_path / "coffee.png"
    gh.photo("coffee", 200).save(p)
    for src in (p, p.read_bytes()):
        im = open_image(src)
        assert (im.format, im.size) == ("PNG", (200, 133))
        assert getattr(im, "_im", None) is None  # no pixel was decoded
    with pytest.raises(UnreadableImage, match="not a readable image"):
        open_image(b"this is not an image at all")
    with pytest.raises(DecompressionBomb, match="decompression bomb"):
        open_image(gh.png_header_only(20000, 20000))
    with pytest.raises(ImageError, match="3000×3000") as e:
        open_image(gh.png_header_only(3000, 3000), max_pixels=1_000_000)
    assert type(e.value) is ImageError  # our own limit, not Pillow's
    gif = gh.encode(Image.new("RGB", (32, 32)), "GIF")
    assert open_image(gif).format == "GIF"
    with pytest.raises(UnsupportedFormat, match="unsupported format GIF; accepted formats: PNG, WEBP") as e:
        open_image(gif, formats=("PNG", "WEBP"))
    assert e.value.format == "GIF"
    assert all(issubclass(c, ImageError) for c in (UnreadableImage, DecompressionBomb, UnsupportedFormat))


# --- size rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inp, expected",
    [
        ((1920, 1080), (832, 464)),
        ((1080, 1920), (464, 832)),
        ((832, 480), (832, 480)),
        ((1500, 1000), (768, 512)),
        ((1600, 1200), (720, 544)),
        ((1000, 1000), (624, 624)),
        ((64, 64), (624, 624)),  # small inputs are upscaled to the budget
        ((2000, 1000), (864, 432)),
        ((4000, 1000), (1216, 304)),
        ((16000, 16), (1216, 304)),  # beyond 4:1 the aspect is clamped
    ],
)
def test_output_size_table(inp, expected):
    assert output_size(*inp) == expected


def test_output_size_properties_over_many_aspects():
    budget = 832 * 480
    for w in range(16, 4000, 37):
        for h in (16, 100, 333, 480, 777, 1080, 2999):
            ow, oh = output_size(w, h)
            assert ow % 16 == 0 and oh % 16 == 0
            assert ow * oh <= budget
            if ow == oh:  # only an input within one 16-px step of square rounds to a square
                assert max(w, h) / min(w, h) < 1 + 16 / ow, (w, h)
            else:
                assert (ow > oh) == (w > h), (w, h, ow, oh)  # the orientation is kept
            a = max(w, h) / min(w, h)
            if a <= budget / 480**2:
                assert min(ow, oh) >= 480, (w, h, ow, oh)
            if a <= 4:
                # aspect kept to within one 16-px step on the long side (half a step unless the area forbids)
                got = max(ow, oh) / min(ow, oh)
                assert abs(got - a) < 16 / min(ow, oh), (w, h, ow, oh)


def test_output_size_options_and_errors():
    assert output_size(1920, 1080, max_area=1280 * 720) == (1280, 720)
    assert output_size(1920, 1080, max_long_side=640) == (624, 352)
    assert output_size(100, 100, max_area=16 * 16) == (16, 16)
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        output_size(0, 10)
    with pytest.raises(ValueError, match="max_area"):
        output_size(10, 10, max_area=100)


def test_preprocess_resizes_and_crops_little(gh):
    im = gh.photo("rocket")  # 640×427
    out = preprocess(im)
    assert out.size == output_size(*im.size) == (768, 512)
    # content kept: the output downscaled back matches the input downscaled (same framing)
    a = np.asarray(out.resize((64, 43), Image.Resampling.BOX), np.float32)
    b = np.asarray(im.resize((64, 43), Image.Resampling.BOX), np.float32)
    assert np.abs(a - b).mean() < 6
    assert preprocess(Image.new("RGB", (832, 480))).size == (832, 480)
    assert preprocess(Image.new("RGBA", (100, 50))).mode == "RGB"


def test_resolution_preview_loads_nothing(tmp_path, gh):
    p = tmp_path / "c.png"
    gh.photo("coffee").save(p)  # 600×400
    plan = MotionPlan.create(template="product", duration_s=3.0)
    im = Image.open(p)
    rp = resolution_preview(im, plan)
    assert getattr(im, "_im", None) is None  # no pixel was decoded
    assert rp == ResolutionPreview(
        input_width=600, input_height=400, width=768, height=512, num_frames=49, fps=16, duration_s=49 / 16
    )
    assert resolution_preview((1920, 1080), plan.with_changes(duration_s=5.0)).num_frames == 81
    assert math.isclose(resolution_preview((1920, 1080), plan).duration_s, 3.0625)
