"""An invisible watermark on everything the platform synthesises: a 32-bit payload and a 16-bit
check, spread over the whole frame's chroma at low spatial frequency.

The frame, whatever its size, is seen as a GRID x GRID lattice. Each lattice cell belongs to one of
the 48 bits (a key-seeded assignment) and carries a key-seeded ±1 chip; embedding adds ``strength``
times chip times bit to the cell's blue and red chroma (smoothly upsampled), where pictures have
little fine detail and eyes little acuity. Reading resamples the chroma to the lattice, removes the
picture's own slow variation (a 3x3 local mean), and correlates each bit's cells with their chips:
the signs are the bits. Being defined on the frame's proportions and coarse, the mark survives
resizing, JPEG and H.264 at common qualities. A frame counts as marked only when the 16-bit check of
the read payload matches (a random frame passes with probability 2^-16); for a video the
correlations of its frames are summed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter

GRID = 64
PAYLOAD_BITS = 32
CHECK_BITS = 16
BITS = PAYLOAD_BITS + CHECK_BITS
STRENGTH = 2.5  # chroma levels (of 255) per lattice cell, before smoothing
KEY = b"dfp-watermark-v1"


@dataclasses.dataclass(frozen=True)
class Reading:
    marked: bool
    payload: int  # meaningful only when marked
    confidence: float  # mean |correlation| over the bits, in standard deviations of unmarked media


def _lattice() -> tuple[np.ndarray, np.ndarray]:
    """(chips ±1, bit index) per lattice cell, from the key."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(KEY).digest()[:8], "big"))
    chips = rng.choice(np.array([-1.0, 1.0], np.float32), size=(GRID, GRID))
    owner = (rng.permutation(GRID * GRID) % BITS).reshape(GRID, GRID)
    return chips, owner


CHIPS, OWNER = _lattice()


def payload_for(text: str) -> int:
    """A 32-bit payload naming what made the media (for example its operation or generator)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _check(payload: int) -> int:
    return int.from_bytes(hashlib.sha256(KEY + payload.to_bytes(4, "big")).digest()[:2], "big")


def bits_of(payload: int) -> np.ndarray:
    """The 48 embedded bits (payload then check) as ±1."""
    word = (payload << CHECK_BITS) | _check(payload)
    return np.array([1.0 if (word >> (BITS - 1 - i)) & 1 else -1.0 for i in range(BITS)], np.float32)


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """Blue and red chroma (BT.601), (H, W, 2) float."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([-0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b], axis=-1)


@functools.lru_cache(maxsize=8)
def _offset(payload: int, height: int, width: int, strength: float) -> np.ndarray:
    """The RGB offset that marks a frame of this size: the same for every frame of a video."""
    lattice = (CHIPS * bits_of(payload)[OWNER] * strength).astype(np.float32)
    field = np.asarray(Image.fromarray(lattice, mode="F").resize((width, height), Image.BICUBIC), np.float32)
    # +field on both chroma channels, back in RGB (BT.601 inverse, luma unchanged).
    offset = np.stack([1.402 * field, (-0.344136 - 0.714136) * field, 1.772 * field], axis=-1) + 0.5
    offset.setflags(write=False)
    return offset


def embed(rgb: np.ndarray, payload: int, strength: float = STRENGTH) -> np.ndarray:
    """The frame with the payload added to its blue and red chroma (luma unchanged)."""
    offset = _offset(payload, rgb.shape[0], rgb.shape[1], strength)
    return np.clip(rgb.astype(np.float32) + offset, 0, 255).astype(np.uint8)


def correlations(rgb: np.ndarray) -> np.ndarray:
    """Per bit, the correlation of the frame's coarse chroma detail with that bit's chips,
    normalised by the detail's spread (about N(0, 1) per bit on unmarked media)."""
    chroma = _chroma(rgb.astype(np.float32))
    coarse = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(chroma[..., c]), mode="F")
                                  .resize((GRID, GRID), Image.BOX), np.float32) for c in range(2)]).sum(axis=0)
    detail = (coarse - uniform_filter(coarse, size=3, mode="reflect")) * CHIPS
    spread = detail.std() + 1e-6
    sums = np.bincount(OWNER.ravel(), weights=detail.ravel(), minlength=BITS)
    counts = np.bincount(OWNER.ravel(), minlength=BITS)
    return (sums / (spread * np.sqrt(counts))).astype(np.float32)


def read(frames_correlations: list[np.ndarray]) -> Reading:
    """The payload from the summed correlations of one or more frames, and whether its check holds."""
    summed = np.sum(frames_correlations, axis=0)
    bits = (summed > 0).astype(int)
    word = int("".join(map(str, bits)), 2)
    payload, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    confidence = float(np.abs(summed).mean() / np.sqrt(len(frames_correlations)))
    return Reading(marked=_check(payload) == check, payload=payload, confidence=confidence)


def read_image(rgb: np.ndarray) -> Reading:
    return read([correlations(rgb)])
