"""The enhancer's models by name: the super-resolution networks, and "face" (faces restored, the
background through ESRGAN). Face restoration uses BasicSR's DFDNet when its published files are
configured, else the platform's own trained network."""

from __future__ import annotations

import dataclasses
import pathlib

from services.enhancer import face_restorers, weights
from services.enhancer.pipelines.enhance_media import Enhancer
from services.enhancer.pipelines.restore_faces import FaceEnhancer
from services.enhancer.upscaler import default_device, load_upscaler

FACE = "face"
MODELS = (*weights.BUILT_MODELS, FACE)
FACE_BACKGROUND = "esrgan-x4"


@dataclasses.dataclass(frozen=True)
class DfdnetFiles:
    checkpoint: pathlib.Path
    dictionary: pathlib.Path
    vgg19: pathlib.Path | None = None


def load(name: str, device: str | None = None, model_dir: pathlib.Path | None = None,
         dfdnet: DfdnetFiles | None = None) -> Enhancer:
    """A model by name, or a published super-resolution `.pth` by path."""
    if name != FACE:
        return load_upscaler(name, device, model_dir)
    from dfp.faces import FaceDetector

    device = device or default_device()
    restorer = (face_restorers.load_dfdnet(dfdnet.checkpoint, dfdnet.dictionary, dfdnet.vgg19, device) if dfdnet
                else face_restorers.load_unet(device=device))
    return FaceEnhancer(load_upscaler(FACE_BACKGROUND, device, model_dir), restorer, FaceDetector(device=device))
