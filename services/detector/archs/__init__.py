"""Detector architectures, one per file, selected by name.

Each builder takes the constructor arguments of its config and returns an uncompiled Keras model whose
layer names are the names stored in the published weight files.
"""

from services.detector.archs.meso4_arch import build_meso4
from services.detector.archs.mesoinception4_arch import build_mesoinception4
from services.detector.archs.resnet_arch import build_resnet

ARCHS = {
    "meso4": build_meso4,
    "mesoinception4": build_mesoinception4,
    "resnet": build_resnet,
}


def build(arch: str, **options):
    try:
        builder = ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown detector architecture {arch!r}; choose one of {sorted(ARCHS)}") from None
    return builder(**options)
