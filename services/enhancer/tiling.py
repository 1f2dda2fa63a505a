"""Super-resolution of any size of image in bounded memory: overlapping tiles, batched.

Each tile is cut with `tile_pad` pixels of context on every side that has image, run through the
network, and only its centre is kept. Where the context covers all the network sees, tiled equals
whole-image output exactly (SRVGG: 18 convolutions, so a pad of 18). RRDBNet sees much further than
any practical pad: on noise, a 16-pixel pad moves tile-edge pixels by up to 0.03 of full range, on
faces far less; `--tile 0` is the exact path. Tiles of equal size go through the network
together. The output may be any writable array, a memory-mapped `.npy` included, so neither the
network's activations nor the output need fit in memory at once.

Scales below the model's own (2 or 3 with an x4 model) resample each tile's output with pixel-area
averaging. Scales are whole numbers, so every tile's output lands on the output's pixel grid, and
the area filter reads only pixels inside the tile's context: tiled equals whole-image resampling.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator

import cv2
import numpy as np
import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class Tile:
    y0: int
    y1: int
    x0: int
    x1: int
    # The cut, context included.
    pad_y0: int
    pad_y1: int
    pad_x0: int
    pad_x1: int

    @property
    def cut_shape(self) -> tuple[int, int]:
        return self.pad_y1 - self.pad_y0, self.pad_x1 - self.pad_x0


@dataclasses.dataclass(frozen=True)
class TileOptions:
    # Tile side in input pixels; 0 runs the whole image at once.
    tile: int = 256
    tile_pad: int = 16
    batch_size: int = 4
    # fp16 weights and activations; only on a GPU (CPU half precision is slow and inexact).
    half: bool = False
    # Input sides the network needs multiples of (cuts are reflect-padded up to them).
    input_multiple: int = 1


def plan_tiles(height: int, width: int, tile: int, tile_pad: int) -> list[Tile]:
    if tile <= 0:
        return [Tile(0, height, 0, width, 0, height, 0, width)]
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            tiles.append(Tile(y0, y1, x0, x1, max(y0 - tile_pad, 0), min(y1 + tile_pad, height),
                              max(x0 - tile_pad, 0), min(x1 + tile_pad, width)))
    return tiles


def _batches(tiles: list[Tile], batch_size: int) -> Iterator[list[Tile]]:
    by_shape: dict[tuple[int, int], list[Tile]] = defaultdict(list)
    for tile in tiles:
        by_shape[tile.cut_shape].append(tile)
    for group in by_shape.values():
        for start in range(0, len(group), batch_size):
            yield group[start:start + batch_size]


def _fp16(model: nn.Module, half: bool) -> bool:
    return half and next(model.parameters()).device.type == "cuda"


@torch.inference_mode()
def _run(model: nn.Module, crops: np.ndarray, input_multiple: int, half: bool, model_scale: int) -> np.ndarray:
    """Network output for a batch of HxWx3 crops, as NxH'xW'x3 float32."""
    device = next(model.parameters()).device
    batch = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).to(device=device, dtype=torch.float32)
    height, width = batch.shape[2:]
    pad_h, pad_w = (-height) % input_multiple, (-width) % input_multiple
    if pad_h or pad_w:
        batch = torch.nn.functional.pad(batch, (0, pad_w, 0, pad_h), mode="reflect")
    # Autocast runs the convolutions in fp16 while the weights stay fp32 (one copy serves both).
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=_fp16(model, half)):
        out = model(batch)[:, :, :height * model_scale, :width * model_scale]
    return out.float().clamp_(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def upscale(model: nn.Module, image: np.ndarray, model_scale: int, scale: int | None = None,
            options: TileOptions = TileOptions(), out: np.ndarray | None = None) -> np.ndarray:
    """`image` (HxWx3 float32 in [0, 1]) enlarged `scale` times (default: the model's own)."""
    scale = scale or model_scale
    if scale not in range(2, model_scale + 1):
        raise ValueError(f"scale {scale} is not possible with an x{model_scale} model: use 2 to {model_scale}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    height, width = image.shape[:2]
    if out is None:
        out = np.empty((height * scale, width * scale, 3), dtype=np.float32)
    elif out.shape != (height * scale, width * scale, 3):
        raise ValueError(f"the output array is {out.shape}, the result {(height * scale, width * scale, 3)}")
    for group in _batches(plan_tiles(height, width, options.tile, options.tile_pad), max(options.batch_size, 1)):
        crops = np.stack([image[t.pad_y0:t.pad_y1, t.pad_x0:t.pad_x1] for t in group]).astype(np.float32, copy=False)
        results = _run(model, crops, options.input_multiple, options.half, model_scale)
        for tile, result in zip(group, results):
            if scale != model_scale:
                cut_h, cut_w = tile.cut_shape
                result = cv2.resize(result, (cut_w * scale, cut_h * scale), interpolation=cv2.INTER_AREA)
            top, left = (tile.y0 - tile.pad_y0) * scale, (tile.x0 - tile.pad_x0) * scale
            out[tile.y0 * scale:tile.y1 * scale, tile.x0 * scale:tile.x1 * scale] = \
                result[top:top + (tile.y1 - tile.y0) * scale, left:left + (tile.x1 - tile.x0) * scale]
    return out


def upscale_frames(model: nn.Module, frames: np.ndarray, model_scale: int, scale: int | None = None,
                   options: TileOptions = TileOptions()) -> np.ndarray:
    """A batch of equal-size frames (NxHxWx3): untiled, they go through the network together."""
    if options.tile > 0 or len(frames) == 1:
        return np.stack([upscale(model, frame, model_scale, scale, options) for frame in frames])
    scale = scale or model_scale
    if scale not in range(2, model_scale + 1):
        raise ValueError(f"scale {scale} is not possible with an x{model_scale} model: use 2 to {model_scale}")
    results = []
    for start in range(0, len(frames), max(options.batch_size, 1)):
        batch = _run(model, frames[start:start + options.batch_size].astype(np.float32, copy=False),
                     options.input_multiple, options.half, model_scale)
        if scale != model_scale:
            height, width = frames.shape[1:3]
            batch = np.stack([cv2.resize(frame, (width * scale, height * scale), interpolation=cv2.INTER_AREA)
                              for frame in batch])
        results.append(batch)
    return np.concatenate(results)
