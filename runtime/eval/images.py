"""Reading one val image: the file problems that make it unusable, and the oddities that don't.

Decoding is OpenCV's `IMREAD_COLOR`, as in the seed: grayscale, CMYK, 16-bit and alpha images
come out as 8-bit BGR and are evaluated, with a note. Missing, unreadable, empty, undecodable or
truncated files, and images whose shorter side is below the crop size, are skipped with a reason.
The JPEG/PNG header facts come from the bytes themselves, since the decoder hides them.

A val list and its root are not trusted, so reading is bounded: only regular files are read (a
FIFO would block, /dev/zero would fill memory), none over `ImageLimits.max_bytes`, and none is
decoded whose header declares more than `ImageLimits.max_pixels` (OpenCV decodes whole: a 1 MB
PNG of 20000 x 20000 pixels takes 1.2 GB). JPEG and PNG headers are read here; the loading
workers also start OpenCV with its own limit set to the same value
(`ImageLimits.opencv_environment`), which its decoders check for every format after reading the
header.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from archc.files import FileTooLarge, NotRegularFile, read_regular_file

_JPEG_START = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...), not DHT/JPG/DAC.
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_COLOUR_NOTES = {0: ("grayscale",), 4: ("grayscale", "alpha"), 6: ("alpha",)}


class Unusable(Exception):
    """The image cannot be evaluated; str() is the reason recorded in the results."""


# Well above any camera's photos (50 megapixels take 150 MB decoded) and the files they come in.
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 256 * 1024 ** 2
# OpenCV's decoders refuse images over this many pixels; it reads the variable once, on loading,
# and its refusal is an assertion that names the limit.
_OPENCV_MAX_PIXELS = "OPENCV_IO_MAX_IMAGE_PIXELS"
_OPENCV_PIXELS_REFUSED = "pixels <= CV_IO_MAX_IMAGE_PIXELS"


@dataclass(frozen=True)
class ImageLimits:
    """What one image may take; None: no limit of archc's (OpenCV's own, 2^30 pixels, remains)."""

    max_bytes: int | None = DEFAULT_MAX_BYTES
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def opencv_environment(self) -> dict[str, str]:
        """The environment in which OpenCV, loaded afterwards, holds every format to max_pixels."""
        return {} if self.max_pixels is None else {_OPENCV_MAX_PIXELS: str(self.max_pixels)}

    def too_many_pixels(self, size: tuple[int, int] | None) -> Unusable:
        declared = f"{size[0]}x{size[1]}, " if size else ""
        return Unusable(f"too many pixels: {declared}over the limit of {self.max_pixels:,} "
                        f"(--max-pixels)")


@dataclass(frozen=True)
class FileFacts:
    truncated: bool
    notes: tuple[str, ...]                  # e.g. ("cmyk",), ("16-bit", "alpha")
    size: tuple[int, int] | None = None     # width, height, as the header declares them


def jpeg_facts(data: bytes) -> FileFacts:
    """Walk the marker segments up to the first scan: the frame's size and components (1 = gray,
    4 = CMYK), and whether the last scan is followed by an end-of-image marker."""
    notes: tuple[str, ...] = ()
    size = None
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _SOF_MARKERS and position + 10 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            size = (width, height)
            components = data[position + 9]
            notes = {1: ("grayscale",), 4: ("cmyk",)}.get(components, ())
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        position += 2 + length
    last_scan = data.rfind(b"\xff\xda")
    truncated = last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0
    return FileFacts(truncated, notes, size)


def png_facts(data: bytes) -> FileFacts:
    """IHDR's size, bit depth and colour type, and whether the IEND chunk is there."""
    notes: tuple[str, ...] = ()
    size = None
    if len(data) >= 26 and data[12:16] == b"IHDR":
        size = struct.unpack(">II", data[16:24])
        depth, colour_type = data[24], data[25]
        notes = _PNG_COLOUR_NOTES.get(colour_type, ())
        if depth == 16:
            notes = ("16-bit",) + notes
    return FileFacts(truncated=data.rfind(b"IEND") < 0, notes=notes, size=size)


def file_facts(data: bytes) -> FileFacts:
    if data.startswith(_JPEG_START):
        return jpeg_facts(data)
    if data.startswith(_PNG_SIGNATURE):
        return png_facts(data)
    return FileFacts(truncated=False, notes=())


def read_bytes(path: str, limits: ImageLimits) -> bytes:
    try:
        return read_regular_file(path, limits.max_bytes)
    except FileNotFoundError:
        raise Unusable("missing") from None
    except NotRegularFile as error:
        raise Unusable(error.strerror) from None
    except FileTooLarge as error:
        raise Unusable(f"too large: {error.size:,} bytes, over the limit of {error.limit:,} "
                       f"(--max-image-bytes)") from None
    except OSError as error:
        raise Unusable(f"unreadable: {error.strerror}") from None


# The seed resizes every image's shorter side to the base size, so any photo is usable, however
# small; these limits only keep out what is not a photo (an icon, a one-pixel line) and images
# whose resize would take gigabytes.
MIN_SIDE = 16
MAX_ASPECT = 50


def decode(data: bytes, limits: ImageLimits) -> tuple[np.ndarray, tuple[str, ...]]:
    """The 8-bit BGR image and its notes; raises Unusable with the reason it cannot be used."""
    if not data:
        raise Unusable("empty file")
    facts = file_facts(data)
    if facts.truncated:
        raise Unusable("truncated")
    if facts.size and limits.max_pixels is not None and math.prod(facts.size) > limits.max_pixels:
        raise limits.too_many_pixels(facts.size)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as error:
        if limits.max_pixels is not None and _OPENCV_PIXELS_REFUSED in str(error):
            raise limits.too_many_pixels(None) from None
        raise
    if image is None:
        raise Unusable("not a decodable image")
    height, width = image.shape[:2]
    if limits.max_pixels is not None and height * width > limits.max_pixels:
        # what OpenCV refuses where it was loaded with the limit (the workers), refused alike
        # where it was not (--workers 0), so that results never depend on where images load
        raise limits.too_many_pixels(None)
    if min(height, width) < MIN_SIDE:
        raise Unusable(f"too small: {width}x{height}, a side under {MIN_SIDE} pixels")
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise Unusable(f"too thin: {width}x{height}, one side over {MAX_ASPECT} times the other")
    return image, facts.notes
