"""Training augmentation in tf.data, on uint8 face crops.

MesoNet's own (horizontal flip, zoom, brightness) plus what compressed video frames call for: JPEG
re-compression at a random quality and a light Gaussian blur. Seeds are fixed by the caller.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    zoom: float = 0.2
    brightness: float = 0.15
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)
    blur_probability: float = 0.2
    blur_sigma: tuple[float, float] = (0.3, 1.5)


def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    radius = 3
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel_1d = tf.exp(-(x**2) / (2.0 * sigma**2))
    kernel_1d /= tf.reduce_sum(kernel_1d)
    kernel = tf.tile(tf.reshape(kernel_1d[:, None] * kernel_1d[None, :], [2 * radius + 1, 2 * radius + 1, 1, 1]), [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]


def augment(image: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """uint8 [s, s, 3] -> float32 [s, s, 3] in [0, 1], randomly transformed."""
    size = tf.shape(image)[0]
    if config.jpeg_probability > 0:
        image = tf.cond(
            tf.random.uniform([]) < config.jpeg_probability,
            lambda: tf.image.random_jpeg_quality(image, *config.jpeg_quality),
            lambda: image,
        )
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.random_flip_left_right(image)
    if config.zoom > 0:
        side = tf.cast(tf.cast(size, tf.float32) * tf.random.uniform([], 1.0 - config.zoom, 1.0), tf.int32)
        image = tf.image.resize(tf.image.random_crop(image, [side, side, 3]), [size, size])
    if config.brightness > 0:
        image = tf.image.random_brightness(image, config.brightness)
    if config.blur_probability > 0:
        sigma = tf.random.uniform([], *config.blur_sigma)
        image = tf.cond(tf.random.uniform([]) < config.blur_probability, lambda: _gaussian_blur(image, sigma), lambda: image)
    return tf.clip_by_value(image, 0.0, 1.0)
