"""Talking-head clips as training data: each clip face-cropped with one stable box, resized to the
model's frame size and cached as a uint8 array (T, S, S, 3). The last HOLDOUT_FRACTION of every clip
is held out for evaluation, as the issue's protocol asks."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from dfp import faces as faces_lib
from dfp.client import sha256_file
from dfp import media
from dfp.config import cache_dir
from services.creator.pipelines import animate_media

HOLDOUT_FRACTION = 0.2


@dataclasses.dataclass
class Clip:
    name: str
    frames: np.ndarray  # (T, S, S, 3) uint8

    @property
    def split_index(self) -> int:
        return int(round(len(self.frames) * (1.0 - HOLDOUT_FRACTION)))

    @property
    def train_frames(self) -> np.ndarray:
        return self.frames[: self.split_index]

    @property
    def heldout_frames(self) -> np.ndarray:
        return self.frames[self.split_index :]


def _cache_path(video: pathlib.Path, size: int) -> pathlib.Path:
    digest = sha256_file(video)[:16]
    return cache_dir() / "fomm-clips" / f"{video.stem}-{digest}-{size}.npy"


def load_clip(video: pathlib.Path, size: int, detector: faces_lib.FaceDetector | None = None) -> Clip:
    path = _cache_path(video, size)
    if path.exists():
        return Clip(video.stem, np.load(path, mmap_mode="r"))
    detector = detector or faces_lib.FaceDetector()
    info = media.video_stream_info(video)
    box = animate_media.driving_face_box(video, detector, info.frame_count)
    left, top, side = box
    frames = np.stack([
        animate_media.to_uint8(animate_media.fit_frame(rgb[top : top + side, left : left + side], size))
        for rgb in media.iter_video_frames(video)
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, frames)
    tmp.replace(path)
    return Clip(video.stem, frames)


def load_clips(folder: pathlib.Path, size: int) -> list[Clip]:
    videos = sorted(folder.glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"no .mp4 clips in {folder}")
    detector = faces_lib.FaceDetector()
    return [load_clip(video, size, detector) for video in videos]
