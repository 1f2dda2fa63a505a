"""Training augmentation in tf.data, on uint8 face crops.

MesoNet's own (horizontal flip, zoom, brightness) plus what compressed video frames call for: JPEG
re-compression at a random quality and a light Gaussian blur. Every random choice comes from the
seed passed in (stateless ops), so two images given the same seed get the same transform: the
training loop gives a real face and the fake made from the same source video one seed, which leaves
the manipulation as the only difference the network can learn from within the pair.
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


def _uniform(seed: tf.Tensor, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed, low, high)


def augment(image: tf.Tensor, config: AugmentConfig, seed: tf.Tensor) -> tf.Tensor:
    """uint8 [s, s, 3] -> float32 [s, s, 3] in [0, 1], transformed as `seed` (int32 [2]) decides."""
    (jpeg_on, jpeg_quality, flip, zoom_side, crop, brightness, blur_on, blur_sigma) = tf.unstack(
        tf.random.experimental.stateless_split(seed, 8))
    size = tf.shape(image)[0]
    if config.jpeg_probability > 0:
        image = tf.cond(
            _uniform(jpeg_on) < config.jpeg_probability,
            lambda: tf.image.stateless_random_jpeg_quality(image, *config.jpeg_quality, seed=jpeg_quality),
            lambda: image,
        )
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.stateless_random_flip_left_right(image, flip)
    if config.zoom > 0:
        side = tf.cast(tf.cast(size, tf.float32) * _uniform(zoom_side, 1.0 - config.zoom, 1.0), tf.int32)
        image = tf.image.resize(tf.image.stateless_random_crop(image, [side, side, 3], crop), [size, size])
    if config.brightness > 0:
        image = tf.image.stateless_random_brightness(image, config.brightness, brightness)
    if config.blur_probability > 0:
        sigma = _uniform(blur_sigma, *config.blur_sigma)
        image = tf.cond(_uniform(blur_on) < config.blur_probability, lambda: _gaussian_blur(image, sigma), lambda: image)
    return tf.clip_by_value(image, 0.0, 1.0)
