"""Blind face degradation in BasicSR's style (as used to train GFPGAN-like restorers).

A clean face goes through, in order: Gaussian blur of random width, downsampling by a random factor,
Gaussian noise, JPEG compression at a random quality, and upsampling back to the original size, so
the network learns to undo the mix of losses that real low-quality faces show. A fraction of faces
instead get the classic super-resolution degradation alone (antialiased bicubic down by 2, 3 or 4
and bicubic back up), so the network also learns to add detail to a clean enlargement rather than
to treat it as damaged. Every draw comes from the given generator: the same seed gives the same
degraded batch.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class DegradationRanges:
    blur_sigma: tuple[float, float] = (0.1, 3.0)
    downscale: tuple[float, float] = (1.0, 8.0)
    noise_sigma: tuple[float, float] = (0.0, 10.0)
    jpeg_quality: tuple[int, int] = (50, 95)
    classic_fraction: float = 0.3
    classic_factors: tuple[int, ...] = (2, 3, 4)


def degrade(face: np.ndarray, rng: np.random.Generator, ranges: DegradationRanges = DegradationRanges()) -> np.ndarray:
    """A degraded copy of an HxWx3 uint8 face, the same size, uint8."""
    height, width = face.shape[:2]
    if rng.random() < ranges.classic_fraction:
        factor = int(rng.choice(ranges.classic_factors))
        small = Image.fromarray(face).resize((max(1, width // factor), max(1, height // factor)), Image.BICUBIC)
        return np.asarray(small.resize((width, height), Image.BICUBIC))
    image = face.astype(np.float32)
    sigma = rng.uniform(*ranges.blur_sigma)
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    factor = rng.uniform(*ranges.downscale)
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    image = cv2.resize(image, small, interpolation=cv2.INTER_LINEAR)
    image = image + rng.normal(0.0, rng.uniform(*ranges.noise_sigma), image.shape).astype(np.float32)
    quality = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
    encoded = cv2.imencode(".jpg", np.clip(image, 0, 255).round().astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
