"""MesoInception4 (Afchar et al., WIFS 2018).

Two inception blocks (1x1, 3x3 and dilated 3x3 branches) then two 16-filter conv blocks, a 16-unit
dense layer with LeakyReLU and a sigmoid output where 1 means real. Layer names follow the order in
which the paper's code creates the layers, as stored in the published MesoInception_*.h5 files.
"""

import keras
from keras import layers


def _inception(x, a: int, b: int, c: int, d: int, first_conv: int, block: int):
    """Four branches concatenated: 1x1 (a), 1x1+3x3 (b), 1x1+3x3 dilation 2 (c), 1x1+3x3 dilation 3 (d)."""
    names = iter(f"conv2d_{n}" for n in range(first_conv, first_conv + 7))

    def conv(filters: int, kernel: int, dilation: int = 1):
        return layers.Conv2D(
            filters, kernel, padding="same", dilation_rate=dilation, activation="relu", name=next(names)
        )

    branch_a = conv(a, 1)(x)
    branch_b = conv(b, 1)(x)
    branch_b = conv(b, 3)(branch_b)
    branch_c = conv(c, 1)(x)
    branch_c = conv(c, 3, 2)(branch_c)
    branch_d = conv(d, 1)(x)
    branch_d = conv(d, 3, 3)(branch_d)
    return layers.Concatenate(axis=-1, name=f"concatenate_{block}")([branch_a, branch_b, branch_c, branch_d])


def build_mesoinception4(input_size: int = 256, dense_leaky_relu: bool = True, dropout: float = 0.5) -> keras.Model:
    """Builds MesoInception4.

    Args:
        input_size: side of the square RGB input in pixels; the published weights need 256.
        dense_leaky_relu: LeakyReLU(0.1) after the 16-unit dense layer, as in the published weights.
        dropout: dropout rate before each dense layer (training only).
    """
    image = keras.Input(shape=(input_size, input_size, 3), name="image")
    x = _inception(image, 1, 4, 4, 2, first_conv=1, block=1)
    x = layers.BatchNormalization(name="batch_normalization_1")(x)
    x = layers.MaxPooling2D(pool_size=2, padding="same", name="max_pooling2d_1")(x)
    x = _inception(x, 2, 4, 4, 2, first_conv=8, block=2)
    x = layers.BatchNormalization(name="batch_normalization_2")(x)
    x = layers.MaxPooling2D(pool_size=2, padding="same", name="max_pooling2d_2")(x)
    for number, (conv, pool) in enumerate(((15, 2), (16, 4)), start=3):
        x = layers.Conv2D(16, 5, padding="same", activation="relu", name=f"conv2d_{conv}")(x)
        x = layers.BatchNormalization(name=f"batch_normalization_{number}")(x)
        x = layers.MaxPooling2D(pool_size=pool, padding="same", name=f"max_pooling2d_{number}")(x)
    x = layers.Flatten(name="flatten_1")(x)
    x = layers.Dropout(dropout, name="dropout_1")(x)
    x = layers.Dense(16, name="dense_1")(x)
    if dense_leaky_relu:
        x = layers.LeakyReLU(negative_slope=0.1, name="leaky_re_lu_1")(x)
    x = layers.Dropout(dropout, name="dropout_2")(x)
    real_probability = layers.Dense(1, activation="sigmoid", name="dense_2")(x)
    return keras.Model(image, real_probability, name="mesoinception4")
