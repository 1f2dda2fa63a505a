import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dfp import media, png


def png_bytes(pixels: np.ndarray | Image.Image) -> bytes:
    buffer = io.BytesIO()
    (pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def pillow_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def photo_like(height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth gradients with noise, so Pillow's adaptive filtering uses several row filters."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1)
    noise = np.random.RandomState(1).randint(0, 12, (height, width, 3))
    return ((base + noise) % 256).astype(np.uint8)


@pytest.mark.parametrize("pixels", [photo_like(), np.random.RandomState(0).randint(0, 256, (33, 17, 3), np.uint8)],
                         ids=["photo-like", "noise"])
def test_a_plain_rgb_png_decodes_to_exactly_pillows_pixels(pixels):
    data = png_bytes(pixels)
    fast = png.decode_plain_rgb(data)
    assert fast is not None and fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, pillow_pixels(data))
    np.testing.assert_array_equal(fast, pixels)


def marked_interlaced(data: bytes) -> bytes:
    """The same file with IHDR's interlace flag set (and its CRC made to match)."""
    ihdr = bytearray(data[12:29])
    ihdr[-1] = 1
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(bytes(ihdr))) + data[33:]


def with_chunk_before_idat(data: bytes, kind: bytes, body: bytes) -> bytes:
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    at = data.index(b"IDAT") - 4
    return data[:at] + chunk + data[at:]


@pytest.mark.parametrize("make", [
    lambda d: d[:-12],  # no IEND
    lambda d: d[: len(d) // 2],  # truncated inside IDAT
    lambda d: d[: len(d) // 2] + bytes([d[len(d) // 2] ^ 0xFF]) + d[len(d) // 2 + 1:],  # a flipped bit: CRC fails
    lambda d: d + b"trailing bytes",
    lambda d: with_chunk_before_idat(d, b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00"),
    marked_interlaced,
], ids=["no-iend", "truncated", "bit-flip", "trailing", "exif", "interlaced"])
def test_a_png_the_fast_path_cannot_vouch_for_is_left_to_pillow(make):
    assert png.decode_plain_rgb(make(png_bytes(photo_like()))) is None


@pytest.mark.parametrize("pixels", [
    photo_like()[..., 0],
    np.dstack([photo_like(), np.full((48, 64), 200, np.uint8)]),
    Image.fromarray(photo_like()).quantize(16),
    Image.fromarray(photo_like()[..., 0].astype(np.uint16) * 257),
], ids=["grey", "rgba", "palette", "16-bit-grey"])
def test_other_png_kinds_are_left_to_pillow_and_still_decode_as_before(pixels):
    data = png_bytes(pixels)
    assert png.decode_plain_rgb(data) is None
    np.testing.assert_array_equal(media.decode_image(data, 10_000), pillow_pixels(data))


def test_decode_image_refuses_a_truncated_png_and_accepts_what_pillow_accepted():
    data = png_bytes(photo_like())
    with pytest.raises(media.InvalidMedia, match="corrupt or truncated"):
        media.decode_image(data[: len(data) // 2], 10_000)
    np.testing.assert_array_equal(media.decode_image(data[:-12], 10_000), photo_like())
