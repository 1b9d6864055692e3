"""The one preprocessing function on real files: geometry, colour, and every kind of bad input."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import ImageError
from edgecnn.preprocess import (
    IN_PLACE_BYTES,
    MAX_PIXELS,
    coefficient_bytes,
    decode,
    load_image,
    prepare,
    reduction_factor,
)
from edgecnn.spec import InputSpec

RGB = InputSpec(64, 64, 3, "rgb", "crop", "area")


def thirds(height: int = 100, width: int = 201) -> np.ndarray:
    """BGR image: left third red, middle green, right third blue."""
    image = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    image[:, :third] = (0, 0, 255)
    image[:, third : 2 * third] = (0, 255, 0)
    image[:, 2 * third :] = (255, 0, 0)
    return image


def png_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_crop_takes_the_centre_and_returns_rgb():
    out = load_image(png_bytes(thirds()), RGB)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert tuple(out[32, 32]) == (0, 255, 0)  # centre green, in RGB order
    assert tuple(out[32, 0]) == (255, 0, 0)  # the crop (50..150) starts inside the red third
    assert tuple(out[32, 63]) == (0, 0, 255)  # and ends inside the blue third


def test_stretch_keeps_all_three_thirds():
    spec = InputSpec(30, 30, 3, "rgb", "stretch", "nearest")
    out = load_image(png_bytes(thirds()), spec)
    assert tuple(out[15, 2]) == (255, 0, 0)
    assert tuple(out[15, 15]) == (0, 255, 0)
    assert tuple(out[15, 27]) == (0, 0, 255)


def test_pad_letterboxes_with_zeros():
    spec = InputSpec(64, 64, 3, "rgb", "pad", "area")
    out = load_image(png_bytes(thirds(100, 200)), spec)
    assert out[:15].max() == 0 and out[49:].max() == 0  # 32 rows of content, centred
    assert tuple(out[32, 32]) == (0, 255, 0)


def test_fit_height_keeps_the_aspect_anchors_left_and_pads_with_the_given_value():
    """A text-line model: 32 px high, 128 wide; a 100x201 photo becomes 32x64, then padding."""
    spec = InputSpec(32, 128, 3, "rgb", "height", "nearest", anchor="left", pad_value=200)
    out = load_image(png_bytes(thirds(100, 201)), spec)
    assert out.shape == (32, 128, 3)
    assert tuple(out[16, 2]) == (255, 0, 0) and tuple(out[16, 61]) == (0, 0, 255)
    assert (out[:, 65:] == 200).all()  # the right side is padding in pixel units
    centred = load_image(png_bytes(thirds(100, 201)), InputSpec(32, 128, fit="height"))
    assert (centred[:, :31] == 0).all() and (centred[:, 97:] == 0).all()
    assert tuple(centred[16, 64]) == (0, 255, 0)


def test_fit_height_stretches_an_image_too_wide_for_the_model():
    spec = InputSpec(30, 60, 3, "rgb", "height", "nearest", anchor="left", pad_value=200)
    out = load_image(png_bytes(thirds(20, 201)), spec)  # 30 px high would be 301 wide
    assert (out != 200).all(axis=-1).all()  # no padding anywhere
    assert tuple(out[15, 1]) == (255, 0, 0) and tuple(out[15, 58]) == (0, 0, 255)


def test_pad_anchor_left_and_pad_value_reach_the_letterbox():
    spec = InputSpec(64, 64, 1, "gray", "pad", "area", anchor="left", pad_value=255)
    out = load_image(png_bytes(thirds(100, 50)), spec)  # tall: 64 high, 32 wide, at the left
    assert (out[:, 33:] == 255).all() and (out[:, :32] < 255).all()


def test_gray_model_gets_one_channel_and_bgr_model_keeps_order():
    gray = load_image(png_bytes(thirds()), InputSpec(16, 16, 1, "gray"))
    assert gray.shape == (16, 16, 1)
    bgr = load_image(png_bytes(thirds()), InputSpec(16, 16, 3, "bgr", "stretch", "nearest"))
    assert tuple(bgr[8, 0]) == (0, 0, 255)


def test_arrays_in_either_channel_order_and_dtype_give_the_same_pixels():
    bgr = thirds()
    reference = load_image(bgr, RGB)
    assert np.array_equal(load_image(bgr[:, :, ::-1].copy(), RGB, color_order="rgb"), reference)
    assert np.array_equal(load_image(bgr.astype(np.float32) / 255.0, RGB), reference)
    assert np.array_equal(load_image(bgr.astype(np.uint16) * 257, RGB), reference)
    rgba = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    assert np.array_equal(load_image(rgba, RGB), reference)
    with pytest.raises(ImageError, match="image array"):
        load_image(np.zeros((4, 4, 2), np.uint8), RGB)


def test_large_jpeg_decodes_reduced_and_deterministically():
    photo = np.random.default_rng(0).integers(0, 255, (2672, 4000, 3), np.uint8)
    data = cv2.imencode(".jpg", photo)[1].tobytes()
    assert reduction_factor(4000, 2672, RGB) == 8
    assert reduction_factor(2672, 4000, RGB) == 8  # EXIF rotation cannot change the choice
    assert reduction_factor(300, 200, RGB) == 2
    assert reduction_factor(100, 100, RGB) == 1
    assert decode(data, RGB).shape == (334, 500, 3)
    assert decode(data, RGB, reduce=False).shape == (2672, 4000, 3)
    assert np.array_equal(load_image(data, RGB), load_image(data, RGB))


def test_only_multi_scan_jpegs_count_their_coefficients():
    """libjpeg holds the whole image's coefficients when a JPEG has several scans, which the
    header up to the first scan tells: progressive, or a first scan with fewer components than
    the frame. A 201x100 4:2:0 image is 13x7 MCUs of 6 blocks, 128 bytes a block."""
    image = thirds()
    baseline = cv2.imencode(".jpg", image)[1].tobytes()
    progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert coefficient_bytes(progressive) == 13 * 7 * 6 * 128
    assert coefficient_bytes(baseline) == 0
    # Decided from the headers alone: bytes after the image that look like two more scans
    # change nothing (counting start-of-scan markers read every byte of every JPEG).
    assert coefficient_bytes(baseline + b"\xff\xda" * 2) == 0
    sos = baseline.index(b"\xff\xda")
    assert baseline[sos + 4] == 3  # one interleaved scan of Y, Cb and Cr
    one_component_first = baseline[: sos + 4] + b"\x01" + baseline[sos + 5 :]
    assert coefficient_bytes(one_component_first) == 13 * 7 * 6 * 128
    assert coefficient_bytes(png_bytes(image)) == 0


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_large_images_decode_in_place_to_the_pixels_imdecode_gives(ext):
    """Images decoding to >= IN_PLACE_BYTES skip cv2.imdecode's extra copy (OpenCV's decoder
    writes straight into the array): the pixels must be the ones imdecode gives, in colour
    and in gray, whole and at a JPEG's reduced scale, so the model sees what it saw before."""
    ramp = np.linspace(0, 255, 4100, dtype=np.float32)
    image = np.dstack([np.add.outer(ramp[:4200] * 0.5, ramp * 0.5)] * 3).astype(np.uint8)
    image[::7, :, 1] = 200
    image[:, ::11, 2] = 30
    data = cv2.imencode(ext, image)[1].tobytes()
    gray = InputSpec(600, 600, 1, "gray", "crop", "area")
    reduced = InputSpec(512, 512, 3, "rgb", "crop", "area")  # a JPEG decodes at 1/8 for it
    cases = [(RGB, False, cv2.IMREAD_COLOR), (gray, False, cv2.IMREAD_GRAYSCALE)]
    if ext == ".jpg":
        cases.append((reduced, True, cv2.IMREAD_REDUCED_COLOR_8))
    assert IN_PLACE_BYTES <= 4200 * 4100  # the gray case decodes in place too
    for spec, reduce, flags in cases:
        expected = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        assert np.array_equal(decode(data, spec, reduce=reduce), expected)
        assert np.array_equal(load_image(data, spec, reduce=reduce), prepare(expected, spec))


# ---------------------------------------------------------------- converted, not rejected
def pil_bytes(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "rgb"),
    [
        ("grayscale png", pil_bytes(Image.new("L", (30, 20), 200), "PNG"), (200, 200, 200)),
        (
            "rgba png",
            pil_bytes(Image.new("RGBA", (30, 20), (250, 10, 20, 128)), "PNG"),
            (250, 10, 20),
        ),
        ("16-bit png", pil_bytes(Image.new("I;16", (30, 20), 40000), "PNG"), (156, 156, 156)),
        (
            "cmyk jpeg",
            pil_bytes(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"),
            (255, 0, 0),
        ),
        ("1x1 png", pil_bytes(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), (10, 200, 30)),
        ("webp", pil_bytes(Image.new("RGB", (30, 20), (0, 0, 250)), "WEBP"), (0, 0, 250)),
        ("tiff", pil_bytes(Image.new("RGB", (30, 20), (0, 250, 0)), "TIFF"), (0, 250, 0)),
    ],
)
def test_unusual_formats_are_converted(name, data, rgb):
    out = load_image(data, RGB)
    assert out.shape == (64, 64, 3), name
    assert np.abs(out[32, 32].astype(int) - rgb).max() <= 3, (name, out[32, 32])


# ---------------------------------------------------------------- refused, with the reason
def png_header_claiming(width: int, height: int) -> bytes:
    data = bytearray(pil_bytes(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_header_claiming(width: int, height: int) -> bytes:
    data = bytearray(pil_bytes(Image.new("RGB", (8, 8)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        png_header_claiming(30000, 30000),
        png_header_claiming(50000, 50000),
        jpeg_header_claiming(50000, 50000),
        png_header_claiming(13000, 12000),
    ],
    ids=["png-30000", "png-50000", "jpeg-50000", "png-156MP"],
)
def test_absurd_headers_are_refused_before_decoding(data):
    assert MAX_PIXELS < 13000 * 12000
    with pytest.raises(ImageError, match="refused"):
        load_image(data, RGB)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_files_each_get_a_clear_error(tmp_path):
    noise = np.random.default_rng(1).integers(0, 255, (480, 640, 3), np.uint8)
    good_jpeg = cv2.imencode(".jpg", noise)[1].tobytes()
    cases = {
        write(tmp_path / "zero.jpg", b""): "empty file",
        write(tmp_path / "truncated.jpg", good_jpeg[: len(good_jpeg) // 2]): "truncated JPEG",
        write(tmp_path / "header-only.jpg", good_jpeg[:300]): "truncated JPEG",
        write(tmp_path / "text.jpg", b"this is not a picture\n" * 20): "not an image",
        # one to three bytes: short enough to trip format checks that unpack fixed-size fields
        write(tmp_path / "one-byte.jpg", b"\xff"): "not an image",
        write(tmp_path / "three-bytes.png", b"\x89PN"): "not an image",
        write(tmp_path / "cut.png", png_bytes(thirds())[:60]): "cannot decode",
        tmp_path / "missing.png": "no such file",
    }
    folder = tmp_path / "x.png"
    folder.mkdir()
    cases[folder] = "is a directory"
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    cases[fifo] = "not a regular file"
    loop = tmp_path / "loop.jpg"
    os.symlink(tmp_path / "loop2.jpg", loop)
    os.symlink(loop, tmp_path / "loop2.jpg")
    cases[loop] = "cannot access"
    for path, reason in cases.items():
        with pytest.raises(ImageError, match=reason) as info:
            load_image(path, RGB)
        assert str(path) in str(info.value)  # the message names the file


def test_awkward_file_names_work(tmp_path):
    data = png_bytes(thirds())
    spaced = write(tmp_path / "my photo (1).png", data)
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9-latin1.png")  # not valid UTF-8
    with open(raw, "wb") as fh:
        fh.write(data)
    reference = load_image(data, RGB)
    assert np.array_equal(load_image(spaced, RGB), reference)
    assert np.array_equal(load_image(os.fsdecode(raw), RGB), reference)
