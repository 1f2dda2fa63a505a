"""Loads Keras-2 style HDF5 weight files into the detector architectures, by layer name, strictly.

The published MesoNet files hold weights only (no model config): a group per layer with its weight
arrays, and the full layer list in the `layer_names` attribute. Keras's own by-name loading skips
names it does not find without a word, leaving random weights behind; this loader refuses instead:
every stored weighted layer must fill a model layer of the same shapes, every weighted model layer
must be filled, and the stored layer list (the architecture the weights were trained with) must match
the model's.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter

import h5py
import numpy as np

log = logging.getLogger(__name__)


class WeightMismatch(ValueError):
    """The weight file does not fit the architecture."""


def _decode(names) -> list[str]:
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]


def _kind(layer_name: str) -> str:
    return re.sub(r"_\d+$", "", layer_name)


def read_h5_weights(path: str | os.PathLike) -> tuple[list[str], dict[str, list[np.ndarray]]]:
    """Returns the stored layer list and {layer name: [arrays in stored order]} for weighted layers."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise WeightMismatch(f"{path}: not a Keras HDF5 weight file (no layer_names attribute)")
        layer_names = _decode(group.attrs["layer_names"])
        weights = {}
        for name in layer_names:
            weight_names = _decode(group[name].attrs.get("weight_names", []))
            if weight_names:
                weights[name] = [np.asarray(group[name][w]) for w in weight_names]
    return layer_names, weights


def load_h5_weights(model, path: str | os.PathLike) -> None:
    """Fills `model` from a Keras HDF5 weight file; raises WeightMismatch listing every difference."""
    stored_layers, stored = read_h5_weights(path)
    model_layers = {layer.name: layer for layer in model.layers}
    weighted = {name for name, layer in model_layers.items() if layer.weights}
    problems = []
    missing = sorted(weighted - stored.keys())
    unexpected = sorted(stored.keys() - weighted)
    if missing:
        problems.append(f"model layers with no stored weights: {missing}")
    if unexpected:
        problems.append(f"stored layers the model lacks: {unexpected}")
    # Layers without weights (pooling, dropout, activations) are numbered by the Keras session that
    # saved the file, so their numbers differ between files; their kinds and counts must match.
    input_names = {layer.name for layer in model.layers if type(layer).__name__ == "InputLayer"}
    stored_kinds = Counter(
        _kind(name) for name in stored_layers if not name.startswith("input_") and name not in input_names
    )
    model_kinds = Counter(_kind(name) for name in model_layers if name not in input_names)
    if stored_kinds != model_kinds:
        problems.append(
            "architecture differs from the one the weights were trained with: "
            f"stored only {sorted((stored_kinds - model_kinds).elements())}, "
            f"model only {sorted((model_kinds - stored_kinds).elements())}"
        )
    for name in sorted(weighted & stored.keys()):
        expected = [tuple(w.shape) for w in model_layers[name].weights]
        found = [tuple(a.shape) for a in stored[name]]
        if expected != found:
            problems.append(f"layer {name}: model shapes {expected}, stored {found}")
    if problems:
        for problem in problems:
            log.error("%s: %s", path, problem)
        raise WeightMismatch(f"{path} does not fit {model.name}: " + "; ".join(problems))
    for name in weighted:
        model_layers[name].set_weights(stored[name])


def save_h5_weights(model, path: str | os.PathLike) -> None:
    """Writes `model`'s weights in the same Keras-2 HDF5 layout as the published files, atomically.

    The platform's own trained weights thereby load through `load_h5_weights` exactly as the
    published ones do (same strict checks), and older Keras-2 tools can read them.
    """
    path = os.fspath(path)
    partial = path + ".partial"
    with h5py.File(partial, "w") as f:
        names = [layer.name for layer in model.layers]
        f.attrs["layer_names"] = np.array([n.encode("utf8") for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.5"
        for layer in model.layers:
            group = f.create_group(layer.name)
            weight_names = [f"{layer.name}/{_short_name(w)}:0".encode("utf8") for w in layer.weights]
            group.attrs["weight_names"] = np.array(weight_names, dtype="S")
            for name, value in zip(weight_names, layer.get_weights()):
                group.create_dataset(name.decode("utf8"), data=value)
    os.replace(partial, path)


def _short_name(variable) -> str:
    return variable.path.rsplit("/", 1)[-1] if hasattr(variable, "path") else variable.name
