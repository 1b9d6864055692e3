"""The one preprocessing function: file or frame -> uint8 ``HxWxC`` in the model's colour order.

Training (its dataset cache), quantization calibration, export verification, ``classify``,
``live``, ``bench`` and ``eval`` all call :func:`load_image` (or its two halves, :func:`decode`
and :func:`prepare`), so the pixels the model sees at the edge are the pixels it was trained on.

Steps: read bytes -> check the header (refuse absurd sizes before allocating) -> decode with
OpenCV (at reduced size for big JPEGs, chosen only from header size and target size, so it is
deterministic; large images straight into their array, without the binding's copy) -> fit
(crop / stretch / pad / height) -> resize -> colour order (on the small result) -> uint8.
``pad`` letterboxes; ``height`` resizes to the model's height keeping the aspect ratio (text
lines, strips) and stretches only an image too wide for the model. Both fill with
``spec.pad_value`` and place the image at ``spec.anchor`` (left or centre).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from edgecnn.errors import EdgecnnError, ImageError
from edgecnn.image_files import HEAD_BYTES, looks_like_image
from edgecnn.spec import InputSpec, ModelSpec
from edgecnn.user_files import IMAGE_LIMIT, UnusableFile, read_bounded

ImageInput = str | Path | bytes | bytearray | memoryview | np.ndarray

#: Images whose header claims more pixels than this are refused before decoding (150 MP covers
#: today's largest phone sensors; 30000x30000 = 900 MP would need 2.7 GB as BGR).
MAX_PIXELS = 150_000_000
#: Files larger than this are refused before reading them into memory.
MAX_FILE_BYTES = IMAGE_LIMIT
#: Decoded images at least this large are decoded in place (see :func:`_decode_pixels`); smaller
#: ones take ``cv2.imdecode``'s extra copy, cheaper than a memory file's system calls.
IN_PLACE_BYTES = 16 * 1024 * 1024

_INTERPOLATION = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
_REDUCED_COLOR = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_REDUCED_GRAY = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def describe_source(source: ImageInput) -> str:
    """A printable name for an input, used in results and error messages."""
    if isinstance(source, (str, Path)):
        return os.fsdecode(source)
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))} {source.dtype}>"
    return f"<{len(source)} bytes>"


def read_bytes(path: str | Path) -> bytes:
    """Read an image file, refusing what is not a regular, non-empty, sane-sized file.

    Never blocks on a FIFO and never reads past :data:`MAX_FILE_BYTES` (a link to /dev/zero).
    """
    try:
        return read_bounded(path, MAX_FILE_BYTES)
    except UnusableFile as exc:
        raise ImageError(exc.path, exc.reason) from None


@dataclass(frozen=True)
class Header:
    """What an image's header says, read without decoding pixels."""

    width: int
    height: int
    bands: int  # channels as stored (1 gray, 3 RGB, 4 RGBA / CMYK)
    sample_bytes: int  # bytes per channel value (2 for 16-bit)

    def decoded_bytes(self, factor: int = 1, channels: int = 3) -> int:
        """Memory the decoded image takes at 1/``factor`` scale (the larger of the stored and
        the delivered channel counts, as decoders convert row by row or after decoding)."""
        pixels = -(-self.width // factor) * -(-self.height // factor)
        return pixels * max(self.bands, channels) * self.sample_bytes


_PNG = b"\x89PNG\r\n\x1a\n"
#: PNG colour type -> channels as stored (a palette is stored as one band, like Pillow's "P").
_PNG_BANDS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: JPEG start-of-frame markers (C0-CF but DHT C4, JPG C8, DAC CC), which carry the size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _quick_header(data: bytes) -> Header | None:
    """The header of a JPEG or PNG read straight from its bytes (microseconds, where Pillow's
    plugins cost a fifth of a small photo's decode: ``predict`` pays it per image); None for
    anything else or anything unusual, which then goes to Pillow."""
    if data[:8] == _PNG and data[12:16] == b"IHDR" and len(data) >= 26:
        bands = _PNG_BANDS.get(data[25])
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if bands is None or not width or not height:
            return None
        wide = data[24] == 16 and data[25] == 0  # as Pillow: only 16-bit gray stays wide
        return Header(width, height, bands, 2 if wide else 1)
    i = _jpeg_frame(data)
    if i is None:
        return None
    height = int.from_bytes(data[i + 5 : i + 7], "big")
    width = int.from_bytes(data[i + 7 : i + 9], "big")
    bands = data[i + 9]
    if not width or not height or bands not in (1, 3, 4):
        return None
    return Header(width, height, bands, 1 if data[i + 4] <= 8 else 2)


def _jpeg_frame(data: bytes) -> int | None:
    """Offset of a JPEG's start-of-frame marker (which carries size and components); None for
    anything else or anything unusual."""
    if data[:2] != b"\xff\xd8":
        return None
    i, end = 2, len(data)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None  # not at a marker: let Pillow judge
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        elif marker in _SOF:
            complete = i + 10 <= end and i + 10 + 3 * data[i + 9] <= end
            return i if complete else None
        elif marker == 0xDA:  # start of scan before any frame header
            return None
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


#: Progressive JPEG frame markers (SOF2, SOF6, SOF10, SOF14).
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


def coefficient_bytes(data: bytes) -> int:
    """Memory a JPEG decoder holds for the DCT coefficients of the whole image, whatever the
    output scale; 0 for a single-scan JPEG (decoded row by row) and for other formats.

    libjpeg keeps every coefficient (64 per 8x8 block of every component, 2 bytes each) when
    the image comes in several scans: progressive, or sequential with a scan per component.
    A 3 MB progressive 12200x12200 JPEG decoded at 1/8 scale (7 MB) peaks 430 MB higher.
    Only the headers are read; a JPEG whose headers break off before the first scan counts.
    """
    i = _jpeg_frame(data)
    if i is None:
        return 0
    if data[i + 1] not in _PROGRESSIVE_SOF and _first_scan_components(data, i) == data[i + 9]:
        return 0
    height = int.from_bytes(data[i + 5 : i + 7], "big")
    width = int.from_bytes(data[i + 7 : i + 9], "big")
    sampling = [(hv >> 4 or 1, hv & 15 or 1) for hv in data[i + 11 : i + 10 + 3 * data[i + 9] : 3]]
    if not sampling:
        return 0
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    blocks = 0
    for h, v in sampling:  # blocks per component, padded to whole MCUs as libjpeg does
        across = -(-width // (8 * h_max)) * h
        down = -(-height // (8 * v_max)) * v
        blocks += across * down
    return blocks * 64 * 2


def _first_scan_components(data: bytes, frame: int) -> int | None:
    """How many components the first scan of a JPEG holds (its SOS header's count), reading
    only the marker segments from the frame header at offset ``frame`` to that scan; None when
    they end or break before it.

    libjpeg decides from this alone whether a sequential JPEG has several scans (fewer
    components in the first scan than in the frame), so the entropy-coded data, nearly all of
    the file, is never scanned.
    """
    i, end = frame, len(data)
    while i + 5 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xDA:
            return data[i + 4]
        if marker == 0xFF:  # fill byte
            i += 1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _pillow_header(data: bytes) -> Header | None:
    """Pillow's header parse, without ``Image.open``'s decompression-bomb warning (changing
    the warnings filters to hide it would change them for the whole process, and is not
    thread-safe): the format plugins are called directly, as ``Image.open`` does."""
    prefix = data[:16]
    for load in (Image.preinit, Image.init):
        load()
        for fmt in list(Image.ID):
            factory, accept = Image.OPEN[fmt]
            try:  # some plugins' checks unpack fixed-size fields from short input
                accepted = accept is None or accept(prefix)
            except Exception:
                continue
            if isinstance(accepted, str) or not accepted:
                continue
            try:
                im = factory(io.BytesIO(data), None)
            except Exception:  # not this format (or a header Pillow cannot parse)
                continue
            with im:
                width, height = im.size
                bands = len(im.getbands())
                wide = im.mode.startswith("I;16") or im.mode in ("I", "F")
            return Header(width, height, bands, 2 if wide else 1)
    return None


def read_header(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> Header | None:
    """The image header (None if Pillow does not know the format); raises :class:`ImageError`
    when it claims more than ``max_pixels`` pixels."""
    header = _quick_header(data) or _pillow_header(data)
    if header is not None and header.width * header.height > max_pixels:
        raise ImageError(
            name,
            f"image header claims {header.width}x{header.height} pixels "
            f"(over {max_pixels:,}); refused",
        )
    return header


def header_size(
    data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS
) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding pixels; None if unknown format.

    Raises ImageError when the header claims more than ``max_pixels``.
    """
    header = read_header(data, name, max_pixels)
    return None if header is None else (header.width, header.height)


def reduction_factor(width: int, height: int, spec: InputSpec) -> int:
    """Largest JPEG DCT scale (1, 2, 4, 8) that keeps the fitted region >= the target size.

    Depends only on the header size and the spec, so training and serving reduce alike.
    Uses min/max so EXIF rotation (which swaps width and height) cannot change the answer.
    """
    need = max(spec.height, spec.width)
    short = min(width, height)
    for factor in (8, 4, 2):
        if short // factor >= need:
            return factor
    return 1


#: SOF markers of arithmetic-coded JPEG, which can code a block in less than one bit.
_ARITHMETIC_SOF = (b"\xff\xc9", b"\xff\xca", b"\xff\xcb", b"\xff\xcd", b"\xff\xce", b"\xff\xcf")


def _too_short_jpeg(data: bytes, width: int, height: int) -> bool:
    """True when a (Huffman-coded) JPEG holds fewer bytes than its declared size needs.

    Every 8x8 luma block costs at least one bit (its DC code) in any Huffman-coded JPEG,
    baseline or progressive, so fewer than blocks / 8 bytes cannot hold the image: the decoder
    would fill the rest with grey and say nothing (a 4.7 kB file declaring 12200x12200).
    """
    if data[:2] != b"\xff\xd8":
        return False
    scan = data.find(b"\xff\xda")
    head = data[: scan if scan != -1 else len(data)]
    if any(marker in head for marker in _ARITHMETIC_SOF):
        return False
    blocks = -(-width // 8) * -(-height // 8)
    return len(data) * 8 < blocks


def _is_truncated_jpeg(data: bytes) -> bool:
    # Entropy-coded data escapes 0xFF, so FFD9 after the last start-of-scan is the real EOI.
    # Searching forward from the last FFD9 (not backward from the end for the last FFDA, which
    # crosses the whole file when the only scan is near the start) keeps this O(tail).
    if data[:2] != b"\xff\xd8":
        return False
    eoi = data.rfind(b"\xff\xd9")
    return eoi == -1 or data.find(b"\xff\xda", eoi) != -1


def decode(
    source: ImageInput,
    spec: InputSpec,
    *,
    reduce: bool = True,
    color_order: str = "bgr",
    max_pixels: int = MAX_PIXELS,
    reserve: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Decode a file / encoded bytes (or normalise an array) to uint8 BGR ``HxWx3`` or gray ``HxW``.

    ``color_order`` only matters for arrays: the order of the caller's channels ("bgr" as
    OpenCV delivers frames, or "rgb"). ``max_pixels``: larger declared images are refused.
    ``reserve``: called before decoding with the bytes decoding will hold (the image, in one
    copy or, below :data:`IN_PLACE_BYTES`, two; plus a multi-scan JPEG's coefficients), so a
    pipeline bounds the memory of the images it decodes at once. Raises :class:`ImageError`
    naming the source.
    """
    if isinstance(source, np.ndarray):
        return _normalise_array(source, spec, color_order)
    name = describe_source(source)
    data = read_bytes(source) if isinstance(source, (str, Path)) else bytes(source)
    if not data:
        raise ImageError(name, "empty input (0 bytes)")
    header = read_header(data, name, max_pixels)
    if _is_truncated_jpeg(data):
        raise ImageError(name, "truncated JPEG (no end-of-image marker after the last scan)")
    if header is not None and _too_short_jpeg(data, header.width, header.height):
        raise ImageError(
            name,
            f"truncated JPEG ({len(data):,} bytes cannot hold the declared "
            f"{header.width}x{header.height} pixels)",
        )
    factor = 1
    if reduce and header is not None and data[:2] == b"\xff\xd8":
        factor = reduction_factor(header.width, header.height, spec)
    size = 0 if header is None else header.decoded_bytes(factor, 1 if spec.color == "gray" else 3)
    in_place = size >= IN_PLACE_BYTES and _can_decode_in_place()
    if reserve is not None and header is not None:
        reserve((1 if in_place else 2) * size + coefficient_bytes(data))
    flags = (_REDUCED_GRAY if spec.color == "gray" else _REDUCED_COLOR)[factor]
    image = _decode_pixels(data, flags, in_place)
    if image is None or image.size == 0:
        known = header is not None or looks_like_image(data[:HEAD_BYTES])
        kind = "corrupt image data" if known else "not an image (unknown format)"
        raise ImageError(name, f"cannot decode: {kind}")
    return image


@functools.cache
def _can_decode_in_place() -> bool:
    """Whether :func:`_decode_pixels` can decode in place here (Linux: memfd and /proc)."""
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def _decode_pixels(data: bytes, flags: int, in_place: bool) -> np.ndarray | None:
    """OpenCV's decoder on ``data``; ``in_place``: straight into the returned array.

    ``cv2.imdecode`` returns a matrix that OpenCV's Python binding then copies into NumPy
    memory, so it peaks at twice the decoded image (876 MiB for a 432 MB PNG); ``cv2.imread``
    with ``dst=None`` allocates through NumPy and decodes into it once (463 MiB), but reads a
    file: the bytes already read and checked go to an anonymous in-memory file (memfd), read
    back by its /proc path. Same decoder, same flags, same pixels. None when OpenCV cannot
    decode (as imdecode).
    """
    if in_place:
        try:
            fd = os.memfd_create("edgecnn-image", os.MFD_CLOEXEC)
        except OSError:  # out of descriptors, or forbidden by a sandbox: the copying way
            fd = -1
        if fd >= 0:
            try:
                with memoryview(data) as view:
                    written = 0
                    while written < len(view):
                        written += os.write(fd, view[written:])
                return cv2.imread(f"/proc/self/fd/{fd}", None, flags)
            except cv2.error:  # an OpenCV without imread's dst overload: the copying way
                pass
            finally:
                os.close(fd)
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _normalise_array(array: np.ndarray, spec: InputSpec, color_order: str) -> np.ndarray:
    """Bring a caller's array to uint8 BGR (or gray) like :func:`decode` would."""
    name = describe_source(array)
    if color_order not in ("bgr", "rgb"):
        raise ValueError(f"color_order must be 'bgr' or 'rgb', not {color_order!r}")
    image = array
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(name, "expected an HxW, HxWx1, HxWx3 or HxWx4 image array")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(name, "image has no pixels")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(name, f"unsupported dtype {image.dtype} (use uint8, uint16 or float)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3 and color_order == "rgb":
        image = image[:, :, ::-1]
    if spec.color == "gray":
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def fit_box(height: int, width: int, spec: InputSpec) -> tuple[int, int, int, int]:
    """The centred crop (y, x, h, w) that ``fit="crop"`` takes, as Keras' crop_to_aspect_ratio."""
    crop_h = max(min(height, int(width * spec.height / spec.width)), 1)
    crop_w = max(min(width, int(height * spec.width / spec.height)), 1)
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def _place(resized: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``resized`` on a canvas of the model's size filled with ``pad_value``: horizontally at
    the anchor (left or centre), vertically centred."""
    out = np.full((spec.height, spec.width, *resized.shape[2:]), spec.pad_value, np.uint8)
    h, w = resized.shape[:2]
    y = (spec.height - h) // 2
    x = 0 if spec.anchor == "left" else (spec.width - w) // 2
    out[y : y + h, x : x + w] = resized
    return out


def prepare(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Decoded BGR / gray image -> fitted, resized uint8 ``HxWxC`` in the spec's colour order."""
    interpolation = _INTERPOLATION[spec.interpolation]
    target = (spec.width, spec.height)  # OpenCV sizes are (w, h)
    height, width = image.shape[:2]
    if spec.fit == "crop":
        y, x, h, w = fit_box(height, width, spec)
        out = cv2.resize(image[y : y + h, x : x + w], target, interpolation=interpolation)
    elif spec.fit == "stretch":
        out = cv2.resize(image, target, interpolation=interpolation)
    elif spec.fit == "height":  # the model's height, aspect kept; stretched only when too wide
        new_w = max(1, round(width * spec.height / height))
        if new_w >= spec.width:
            out = cv2.resize(image, target, interpolation=interpolation)
        else:
            resized = cv2.resize(image, (new_w, spec.height), interpolation=interpolation)
            out = _place(resized, spec)
    else:  # pad: letterbox, keeping the aspect ratio
        scale = min(spec.height / height, spec.width / width)
        new_h = min(spec.height, max(1, round(height * scale)))
        new_w = min(spec.width, max(1, round(width * scale)))
        out = _place(cv2.resize(image, (new_w, new_h), interpolation=interpolation), spec)
    if spec.color == "gray":
        return np.ascontiguousarray(out.reshape(spec.height, spec.width, 1))
    if spec.color == "rgb":
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(out)


def load_image(
    source: ImageInput,
    spec: InputSpec | ModelSpec,
    *,
    reduce: bool = True,
    color_order: str = "bgr",
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """The one preprocessing function: any image input -> uint8 ``HxWxC`` the model accepts.

    ``spec``: the model's :class:`ModelSpec` (``clf.spec``) or its :class:`InputSpec`.
    """
    if isinstance(spec, ModelSpec):
        spec = spec.input
    if not isinstance(spec, InputSpec):
        raise EdgecnnError(
            f"spec must be a ModelSpec (clf.spec) or an InputSpec, not {type(spec).__name__}"
        )
    decoded = decode(source, spec, reduce=reduce, color_order=color_order, max_pixels=max_pixels)
    return prepare(decoded, spec)
