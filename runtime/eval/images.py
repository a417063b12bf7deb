"""Reading one val image: the file problems that make it unusable, and the oddities that don't.

Decoding is OpenCV's `IMREAD_COLOR`, as in the seed: grayscale, CMYK, 16-bit and alpha images
come out as 8-bit BGR and are evaluated, with a note. Missing, unreadable, empty, undecodable or
truncated files, and images whose shorter side is below the crop size, are skipped with a reason.
The JPEG/PNG header facts come from the bytes themselves, since the decoder hides them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

_JPEG_START = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...), not DHT/JPG/DAC.
_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_COLOUR_NOTES = {0: ("grayscale",), 4: ("grayscale", "alpha"), 6: ("alpha",)}


class Unusable(Exception):
    """The image cannot be evaluated; str() is the reason recorded in the results."""


@dataclass(frozen=True)
class FileFacts:
    truncated: bool
    notes: tuple[str, ...]   # e.g. ("cmyk",), ("16-bit", "alpha")


def jpeg_facts(data: bytes) -> FileFacts:
    """Walk the marker segments up to the first scan: components (1 = gray, 4 = CMYK) and whether
    the last scan is followed by an end-of-image marker."""
    notes: tuple[str, ...] = ()
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _SOF_MARKERS and position + 10 <= len(data):
            components = data[position + 9]
            notes = {1: ("grayscale",), 4: ("cmyk",)}.get(components, ())
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        position += 2 + length
    last_scan = data.rfind(b"\xff\xda")
    truncated = last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0
    return FileFacts(truncated, notes)


def png_facts(data: bytes) -> FileFacts:
    """IHDR's bit depth and colour type, and whether the IEND chunk is there."""
    notes: tuple[str, ...] = ()
    if len(data) >= 26 and data[12:16] == b"IHDR":
        depth, colour_type = data[24], data[25]
        notes = _PNG_COLOUR_NOTES.get(colour_type, ())
        if depth == 16:
            notes = ("16-bit",) + notes
    return FileFacts(truncated=data.rfind(b"IEND") < 0, notes=notes)


def file_facts(data: bytes) -> FileFacts:
    if data.startswith(_JPEG_START):
        return jpeg_facts(data)
    if data.startswith(_PNG_SIGNATURE):
        return png_facts(data)
    return FileFacts(truncated=False, notes=())


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise Unusable("missing") from None
    except IsADirectoryError:
        raise Unusable("not a file") from None
    except OSError as error:
        raise Unusable(f"unreadable: {error.strerror}") from None


# The seed resizes every image's shorter side to the base size, so any photo is usable, however
# small; these limits only keep out what is not a photo (an icon, a one-pixel line) and images
# whose resize would take gigabytes.
MIN_SIDE = 16
MAX_ASPECT = 50


def decode(data: bytes) -> tuple[np.ndarray, tuple[str, ...]]:
    """The 8-bit BGR image and its notes; raises Unusable with the reason it cannot be used."""
    if not data:
        raise Unusable("empty file")
    facts = file_facts(data)
    if facts.truncated:
        raise Unusable("truncated")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise Unusable("not a decodable image")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise Unusable(f"too small: {width}x{height}, a side under {MIN_SIDE} pixels")
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise Unusable(f"too thin: {width}x{height}, one side over {MAX_ASPECT} times the other")
    return image, facts.notes
