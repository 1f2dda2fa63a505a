"""Test-time mirror averaging: a detector's score of a face averaged with its score of the mirror image.

A face and its left-right mirror are equally real or fake, so the two scores are two looks at one
answer; their mean is steadier than either. It is a wrapper model, not a change to the network, so the
same weights load either way, and every path that serves the wrapper (the exported SavedModel, the
in-process detector, evaluation) computes the same number, at twice the inference cost.
"""

from __future__ import annotations

import keras


def mirror_averaged(model: keras.Model) -> keras.Model:
    """A model whose output is the mean of `model` on its input and on the input flipped left-right."""
    image = keras.Input(model.input_shape[1:], name="image")
    mirrored = keras.ops.flip(image, axis=2)
    averaged = keras.layers.Average(name="mirror_average")([model(image), model(mirrored)])
    return keras.Model(image, averaged, name=f"{model.name}_mirror_averaged")


def card_asks_for_it(card: dict) -> bool:
    """Whether a model card says its model is served mirror-averaged (cards before the option: no)."""
    return bool(card.get("inference", {}).get("mirror_average", False))


def as_served(network: keras.Model, card: dict) -> keras.Model:
    """`network` as its model card says to serve it."""
    return mirror_averaged(network) if card_asks_for_it(card) else network
