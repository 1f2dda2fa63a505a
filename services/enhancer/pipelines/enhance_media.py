"""Super-resolution (optionally with face restoration) of image, `.npy` and video files, labelled as
machine-enhanced.

Images and videos are decoded under the platform's pixel limits, upscaled in bounded memory
(`services.enhancer.tiling`), and written whole or not at all: videos frame by frame in batches,
at the source's frame rate and with its audio. Results carry the synthetic-media labels
(container tags, invisible watermark, visible mark unless turned off). `.npy` arrays (HxWx3 float32
in [0, 1]) are the exact path: used as given, written as given, unlabelled, for reference checks.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable

import numpy as np

from dfp import media, provenance
from services.enhancer import tiling
from services.enhancer.pipelines.restore_faces import FaceEnhancer
from services.enhancer.upscaler import Upscaler

Enhancer = Upscaler | FaceEnhancer


@dataclasses.dataclass(frozen=True)
class EnhanceOptions:
    # Output scale; None is the model's own.
    scale: int | None = None
    tiles: tiling.TileOptions = tiling.TileOptions()
    frames_per_batch: int = 4
    visible_mark: bool = True
    # Limits on what is read and on what would be written.
    max_input_pixels: int = 50_000_000
    max_output_pixels: int = 200_000_000


@dataclasses.dataclass(frozen=True)
class EnhanceResult:
    kind: str  # "image", "array" or "video"
    width: int
    height: int
    frames: int


Progress = Callable[[int, int], None]


def output_scale(enhancer: Enhancer, options: EnhanceOptions) -> int:
    scale = options.scale or enhancer.model_scale
    if scale not in range(2, enhancer.model_scale + 1):
        raise ValueError(f"scale {scale} is not supported by {enhancer.name} (x{enhancer.model_scale}): "
                         f"use 2 to {enhancer.model_scale}")
    return scale


def _check_output_size(width: int, height: int, scale: int, options: EnhanceOptions) -> None:
    pixels = width * height * scale * scale
    if pixels > options.max_output_pixels:
        raise media.MediaTooLarge(f"the result would be {width * scale}x{height * scale} = {pixels:,} pixels, over the "
                                  f"limit of {options.max_output_pixels:,}: use a smaller scale or a smaller input")


def enhance_file(enhancer: Enhancer, source: pathlib.Path, target: pathlib.Path, options: EnhanceOptions,
                 metadata: dict[str, str] | None = None, progress: Progress | None = None) -> EnhanceResult:
    """Enhances `source` into `target`; the kind is read from the content (`.npy` by suffix)."""
    scale = output_scale(enhancer, options)
    if source.suffix.lower() == ".npy":
        if isinstance(enhancer, FaceEnhancer):
            raise ValueError(".npy arrays go through super-resolution only: face restoration needs an image or a video")
        return _enhance_array(enhancer, source, target, scale, options)
    with open(source, "rb") as handle:
        kind = media.sniff(handle.read(64))
    metadata = metadata or provenance.synthetic_metadata(f"enhance:{enhancer.name}")
    if kind == media.IMAGE:
        return _enhance_image(enhancer, source, target, scale, options, metadata, progress)
    if kind == media.VIDEO:
        return _enhance_video(enhancer, source, target, scale, options, metadata, progress)
    raise media.InvalidMedia(f"{source} is neither an image nor a video this platform reads")


def _enhance_array(enhancer: Upscaler, source: pathlib.Path, target: pathlib.Path, scale: int,
                   options: EnhanceOptions) -> EnhanceResult:
    image = np.load(source, mmap_mode="r", allow_pickle=False)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.float32:
        raise media.InvalidMedia(f"{source}: a .npy input must be HxWx3 float32 in [0, 1], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height * width > options.max_input_pixels:
        raise media.MediaTooLarge(f"{source} is {width}x{height}, over the limit of {options.max_input_pixels:,} pixels")
    _check_output_size(width, height, scale, options)
    partial = target.with_name(target.name + ".partial.npy")
    # A memory-mapped output keeps memory flat however large the result.
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(height * scale, width * scale, 3))
    try:
        tiling.upscale(enhancer.model, image, enhancer.model_scale, scale, enhancer.tiles(options.tiles), out=out)
        out.flush()
        del out
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return EnhanceResult("array", width * scale, height * scale, 1)


def _enhance_image(enhancer: Enhancer, source: pathlib.Path, target: pathlib.Path, scale: int, options: EnhanceOptions,
                   metadata: dict[str, str], progress: Progress | None) -> EnhanceResult:
    info = media.probe_image(source, options.max_input_pixels)
    _check_output_size(info.width, info.height, scale, options)
    rgb = media.decode_image(source, options.max_input_pixels)
    result = enhance_frames(enhancer, rgb[None], scale, options.tiles)[0]
    marked = provenance.mark_frame(result, provenance.watermark_payload(metadata), options.visible_mark)
    provenance.save_labelled_png(marked, target, metadata)
    if progress:
        progress(1, 1)
    return EnhanceResult("image", marked.shape[1], marked.shape[0], 1)


def _enhance_video(enhancer: Enhancer, source: pathlib.Path, target: pathlib.Path, scale: int, options: EnhanceOptions,
                   metadata: dict[str, str], progress: Progress | None) -> EnhanceResult:
    stream = media.video_stream_info(source)
    if stream.width * stream.height > options.max_input_pixels:
        raise media.MediaTooLarge(f"video frames are {stream.width}x{stream.height}, over the limit of "
                                  f"{options.max_input_pixels:,} pixels")
    _check_output_size(stream.width, stream.height, scale, options)
    payload = provenance.watermark_payload(metadata)
    writer = media.VideoWriter(target, stream.frames_per_second, audio_from=source, metadata=metadata)
    done = 0
    try:
        batch: list[np.ndarray] = []
        for frame in media.iter_video_frames(source):
            batch.append(frame)
            if len(batch) == options.frames_per_batch:
                done = _write_batch(enhancer, batch, scale, options, writer, payload, done, stream.frame_count, progress)
                batch = []
        if batch:
            done = _write_batch(enhancer, batch, scale, options, writer, payload, done, stream.frame_count, progress)
        if done == 0:
            raise media.InvalidMedia(f"{source.name}: the video has no frames")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return EnhanceResult("video", (stream.width * scale) // 2 * 2, (stream.height * scale) // 2 * 2, done)


def _write_batch(enhancer: Enhancer, batch: list[np.ndarray], scale: int, options: EnhanceOptions,
                 writer: media.VideoWriter, payload: int, done: int, total: int, progress: Progress | None) -> int:
    for result in enhance_frames(enhancer, np.stack(batch), scale, options.tiles):
        writer.write(provenance.mark_frame(result, payload, options.visible_mark))
    done += len(batch)
    if progress:
        progress(done, max(total, done))
    return done


def enhance_frames(enhancer: Enhancer, frames: np.ndarray, scale: int, tiles: tiling.TileOptions) -> np.ndarray:
    """NxHxWx3 uint8 frames enhanced `scale` times, uint8."""
    if isinstance(enhancer, FaceEnhancer):
        return enhancer.enhance_frames(frames, scale, tiles)[0]
    return to_uint8(tiling.upscale_frames(enhancer.model, frames.astype(np.float32) / 255.0, enhancer.model_scale, scale,
                                          enhancer.tiles(tiles)))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255.0 + 0.5).astype(np.uint8)
