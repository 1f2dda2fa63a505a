"""A narrow ResNet detector: the platform's stronger architecture beside the paper's Meso nets.

ResNet-18's layout (four stages of two basic blocks) at a quarter of its width, behind a 2x2 average
pooling stem, so that it takes the same 256x256 face crops as MesoNet (one resize function on every
path) while computing at 128x128. Output is a sigmoid where 1 means real, as MesoNet's, so export,
serving and scoring treat every detector alike.
"""

import keras
from keras import layers


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_down_conv")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_down_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(y)


def build_resnet(
    input_size: int = 256,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    stem_pool: int = 2,
    dropout: float = 0.3,
) -> keras.Model:
    """Builds the narrow ResNet.

    Args:
        input_size: side of the square RGB input in [0, 1].
        widths: filters of each stage (ResNet-18 has 64, 128, 256, 512).
        blocks: basic blocks per stage.
        stem_pool: average pooling factor applied to the input before the first convolution.
        dropout: dropout rate before the output layer (training only).
    """
    if len(widths) != len(blocks):
        raise ValueError("widths and blocks need one entry per stage")
    image = keras.Input(shape=(input_size, input_size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_signed")(image)
    if stem_pool > 1:
        x = layers.AveragePooling2D(stem_pool, name="stem_pool")(x)
    x = layers.Conv2D(widths[0], 5, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, (filters, count) in enumerate(zip(widths, blocks), start=1):
        for block in range(1, count + 1):
            stride = 2 if block == 1 and stage > 1 else 1
            x = _basic_block(x, filters, stride, f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    real_probability = layers.Dense(1, activation="sigmoid", name="real_probability")(x)
    return keras.Model(image, real_probability, name="resnet")
