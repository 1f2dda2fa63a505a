"""A faster decoder for the commonest PNG: whole, 8-bit RGB, not interlaced, no EXIF.

Face crops sent for detection are mostly such PNGs, and decoding them is the largest CPU cost of a
detection call in the gateway. libpng (through OpenCV) undoes PNG's row filters with SIMD and takes
about a sixth less CPU than Pillow on a 256x256 crop, with the same pixels (PNG is lossless).
Pillow stays the decoder of record: any PNG this module does not vouch for goes to it, so what is
accepted or refused, and the error a user reads, do not change. The chunk walk below vouches only
for files whose every chunk is whole with a matching CRC and that end with IEND, so libpng is never
handed a file it would complain about on stderr.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB_COLOUR_TYPE = 2


def decode_plain_rgb(data: bytes) -> np.ndarray | None:
    """RGB uint8 HxWx3 for a whole, plain 8-bit RGB PNG; None for any other input (decode it with
    Pillow)."""
    header = _plain_rgb_header(data)
    if header is None:
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape != (header[1], header[0], 3):
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _plain_rgb_header(data: bytes) -> tuple[int, int] | None:
    """(width, height) when every chunk is whole with its CRC, IHDR says 8-bit RGB without
    interlacing, there is no eXIf chunk (orientation is Pillow's to apply) and IEND ends the file."""
    if not data.startswith(SIGNATURE):
        return None
    offset, size = len(SIGNATURE), None
    view = memoryview(data)
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + 12 + length
        if end > len(data):
            return None
        kind = bytes(view[offset + 4 : offset + 8])
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[offset + 4 : end - 4]) != crc:
            return None
        if kind == b"IHDR":
            if length != 13:
                return None
            width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, offset + 8)
            if depth != 8 or colour != _RGB_COLOUR_TYPE or interlace != 0:
                return None
            size = (width, height)
        elif kind == b"eXIf":
            return None
        elif kind == b"IEND":
            return size if end == len(data) else None
        offset = end
    return None
