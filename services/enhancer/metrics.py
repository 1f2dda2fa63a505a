"""Image quality metrics computed by BasicSR's own code, so numbers compare with papers.

PSNR and SSIM take 8-bit-range images on the luma (Y) channel of ITU-R BT.601 YCbCr (the
super-resolution convention), after removing `crop_border` pixels on each side (the scale, by
convention); SSIM is Wang et al.'s with an 11x11 Gaussian window. NIQE (no reference; lower is
better) uses the pristine-image statistics that ship with BasicSR. The platform works in RGB; BasicSR
expects BGR, so channels are flipped here and nowhere else.
"""

from __future__ import annotations

import numpy as np

from services.enhancer import basicsr_archs  # noqa: F401  (torchvision stand-in before any basicsr import)
from basicsr.metrics.niqe import calculate_niqe
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1]).astype(np.float64)


def _check(image: np.ndarray, reference: np.ndarray) -> None:
    if image.shape != reference.shape:
        raise ValueError(f"images differ in shape: {image.shape} and {reference.shape}")


def psnr(image: np.ndarray, reference: np.ndarray, crop_border: int = 0) -> float:
    """PSNR in dB on Y of two HxWx3 RGB images in [0, 255]."""
    _check(image, reference)
    return float(calculate_psnr(_bgr(image), _bgr(reference), crop_border, input_order="HWC", test_y_channel=True))


def ssim(image: np.ndarray, reference: np.ndarray, crop_border: int = 0) -> float:
    """SSIM on Y of two HxWx3 RGB images in [0, 255]."""
    _check(image, reference)
    return float(calculate_ssim(_bgr(image), _bgr(reference), crop_border, input_order="HWC", test_y_channel=True))


def niqe(image: np.ndarray, crop_border: int = 0) -> float:
    """NIQE on Y of an HxWx3 RGB image in [0, 255] at least 96 pixels a side after the crop."""
    if min(image.shape[:2]) - 2 * crop_border < 96:
        raise ValueError(f"NIQE needs 96x96 pixels or more, got {image.shape[1]}x{image.shape[0]}")
    return float(calculate_niqe(_bgr(image), crop_border, input_order="HWC", convert_to="y"))
