"""The run's inputs, made small and alike: stills cropped around their face and scaled to fit
`max_side`, clips cut to their first `frames` frames and scaled the same way. Deterministic, so a resumed run uploads the same bytes."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Callable

import numpy as np
from PIL import Image

from dfp import media
from dfp.redteam.config import RunConfig, is_media_name

MAX_INPUT_PIXELS = 100_000_000
# The square around a still's face grows by this much of the face's side on every side.
FACE_FRAME_MARGIN = 0.75


@dataclasses.dataclass(frozen=True)
class PreparedInput:
    key: str  # "still:s0" or "clip:d0": names the input in the run's state and report
    source: str  # the file or media name the configuration named
    path: pathlib.Path  # the prepared file that is uploaded


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # Even sides: H.264 in yuv420p needs them, and stills follow the same rule for simplicity.
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def face_framed(rgb: np.ndarray) -> np.ndarray:
    """The still cropped to a square around its most confident face, as the driving clips are framed
    (a portrait's face is often a tenth of its width: scaled down whole, it would be too small to find)."""
    from dfp.faces import FaceDetector, square_crop_box

    found = FaceDetector().detect(rgb)
    if not found:
        raise media.InvalidMedia("no face found in the still")
    left, top, side = square_crop_box(found[0].box, rgb.shape[:2], margin=FACE_FRAME_MARGIN)
    return rgb[top:top + side, left:left + side]


def prepare_still(source: pathlib.Path, out: pathlib.Path, max_side: int) -> None:
    try:
        rgb = face_framed(media.decode_image(source, MAX_INPUT_PIXELS))
    except media.InvalidMedia as exc:
        raise media.InvalidMedia(f"{source}: {exc}") from None
    size = _fit(rgb.shape[1], rgb.shape[0], max_side)
    partial = out.with_name(f".{out.name}.partial")
    Image.fromarray(rgb).resize(size, Image.LANCZOS).save(partial, format="PNG")
    os.replace(partial, out)


def prepare_clip(source: pathlib.Path, out: pathlib.Path, max_side: int, frames: int) -> None:
    info = media.video_stream_info(source)
    size = _fit(info.width, info.height, max_side)
    writer = media.VideoWriter(out, info.frames_per_second)
    try:
        for index, rgb in enumerate(media.iter_video_frames(source)):
            if index >= frames:
                break
            writer.write(np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS)))
    except BaseException:
        writer.abort()
        raise
    writer.close()


def _key(kind: str, source: str, taken: set[str]) -> str:
    stem = pathlib.PurePosixPath(source).stem
    key = f"{kind}:{stem}"
    suffix = 2
    while key in taken:
        key = f"{kind}:{stem}-{suffix}"
        suffix += 1
    taken.add(key)
    return key


def prepare(run: RunConfig, folder: pathlib.Path,
            fetch: Callable[[str, pathlib.Path], None] | None = None) -> dict[str, PreparedInput]:
    """Every still and clip of the run, prepared into `folder` (kept when already there); stored
    media names are first downloaded with `fetch(name, path)`."""
    folder.mkdir(parents=True, exist_ok=True)
    prepared: dict[str, PreparedInput] = {}
    taken: set[str] = set()
    for kind, sources in (("still", run.sources), ("clip", (*run.drivers, *run.swap_targets, *run.extra_real_clips))):
        for source in sources:
            if source in prepared:
                continue
            key = _key(kind, source, taken)
            out = folder / f"{key.replace(':', '-')}{'.png' if kind == 'still' else '.mp4'}"
            if not out.exists():
                local = pathlib.Path(source)
                if is_media_name(source):
                    if fetch is None:
                        raise ValueError(f"{source} is a stored media name: a gateway client is needed to fetch it")
                    local = folder / f".{key.replace(':', '-')}.download"
                    fetch(source, local)
                if kind == "still":
                    prepare_still(local, out, run.max_side)
                else:
                    prepare_clip(local, out, run.max_side, run.frames)
                if is_media_name(source):
                    local.unlink()
            prepared[source] = PreparedInput(key, source, out)
    return prepared
