"""Image quality metrics computed the way BasicSR computes them, so numbers compare with papers.

PSNR and SSIM take 8-bit-range images, optionally on the luma (Y) channel of ITU-R BT.601 YCbCr
(the super-resolution convention), after removing `crop_border` pixels on each side (the scale, by
convention). SSIM is Wang et al.'s: an 11x11 Gaussian window (sigma 1.5), valid region only.
"""

from __future__ import annotations

import cv2
import numpy as np


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] of an RGB image in [0, 255]."""
    rgb = rgb.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _prepare(image: np.ndarray, reference: np.ndarray, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    if image.shape != reference.shape:
        raise ValueError(f"images differ in shape: {image.shape} and {reference.shape}")
    if crop_border:
        image = image[crop_border:-crop_border, crop_border:-crop_border]
        reference = reference[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        return rgb_to_y(image)[..., None], rgb_to_y(reference)[..., None]
    return image.astype(np.float64), reference.astype(np.float64)


def psnr(image: np.ndarray, reference: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """PSNR in dB of two HxWx3 RGB images in [0, 255]."""
    image, reference = _prepare(image, reference, crop_border, y_channel)
    mse = np.mean((image - reference) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = kernel @ kernel.T

    def filtered(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu_a, mu_b = filtered(a), filtered(b)
    var_a = filtered(a * a) - mu_a ** 2
    var_b = filtered(b * b) - mu_b ** 2
    covariance = filtered(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * covariance + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(image: np.ndarray, reference: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """Mean SSIM over channels of two HxWx3 RGB images in [0, 255]."""
    image, reference = _prepare(image, reference, crop_border, y_channel)
    return float(np.mean([_ssim_channel(image[..., c], reference[..., c]) for c in range(image.shape[2])]))
