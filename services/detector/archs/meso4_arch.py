"""Meso4 (Afchar et al., "MesoNet: a Compact Facial Video Forgery Detection Network", WIFS 2018).

Four conv blocks (8, 8, 16, 16 filters) with batch norm and max pooling, then a 16-unit dense layer
and a sigmoid output where 1 means real. Layer names are those stored in the published
Meso4_*.h5 files, which were saved from a session where the layers were numbered from 5.
"""

import keras
from keras import layers


def build_meso4(input_size: int = 256, dense_leaky_relu: bool = False, dropout: float = 0.5) -> keras.Model:
    """Builds Meso4.

    Args:
        input_size: side of the square RGB input in pixels; the published weights need 256.
        dense_leaky_relu: LeakyReLU(0.1) after the 16-unit dense layer. The paper's code has it, but
            the published Meso4 weights were trained without it (their stored layer list has none).
        dropout: dropout rate before each dense layer (training only).
    """
    image = keras.Input(shape=(input_size, input_size, 3), name="image")
    x = image
    blocks = ((8, 3, 2), (8, 5, 2), (16, 5, 2), (16, 5, 4))
    for number, (filters, kernel, pool) in enumerate(blocks, start=5):
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"conv2d_{number}")(x)
        x = layers.BatchNormalization(name=f"batch_normalization_{number}")(x)
        x = layers.MaxPooling2D(pool_size=pool, padding="same", name=f"max_pooling2d_{number}")(x)
    x = layers.Flatten(name="flatten_2")(x)
    x = layers.Dropout(dropout, name="dropout_3")(x)
    x = layers.Dense(16, name="dense_3")(x)
    if dense_leaky_relu:
        x = layers.LeakyReLU(negative_slope=0.1, name="leaky_re_lu_2")(x)
    x = layers.Dropout(dropout, name="dropout_4")(x)
    real_probability = layers.Dense(1, activation="sigmoid", name="dense_4")(x)
    return keras.Model(image, real_probability, name="meso4")
