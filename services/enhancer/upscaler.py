"""A super-resolution network ready to run: weights loaded, on its device, with its name and scale."""

from __future__ import annotations

import dataclasses
import pathlib

import torch
from torch import nn

from services.enhancer import tiling, weights


@dataclasses.dataclass(frozen=True)
class Upscaler:
    model: nn.Module
    model_scale: int
    name: str
    input_multiple: int = 1

    def tiles(self, options: tiling.TileOptions) -> tiling.TileOptions:
        """`options` with this network's input multiple."""
        return dataclasses.replace(options, input_multiple=self.input_multiple)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_upscaler(name_or_path: str, device: str | None = None, folder: pathlib.Path | None = None) -> Upscaler:
    """A built model by name (`esrgan-x4`, `srvgg-x4`) or a published `.pth` file by path."""
    model = weights.load(name_or_path, folder).to(device or default_device())
    name = name_or_path if name_or_path in weights.BUILT_MODELS else f"file:{name_or_path.rsplit('/', 1)[-1]}"
    return Upscaler(model, weights.model_scale(model), name, weights.input_multiple(model))
