"""Talking-head clips as training data: each clip face-cropped with one stable box, resized to the
model's frame size and cached as a uint8 array (T, S, S, 3). The last HOLDOUT_FRACTION of every clip
is held out for evaluation, as the issue's protocol asks; an unseen clip (``train_params.unseen_clips``)
is held out whole, to measure motion on people and recordings the model never saw."""

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
    unseen: bool = False

    @property
    def split_index(self) -> int:
        if self.unseen:
            return 0
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


def load_clips(folder: pathlib.Path, size: int, unseen: tuple[str, ...] = ()) -> list[Clip]:
    """Every clip in ``folder``; those named in ``unseen`` (file stems) are held out whole."""
    videos = sorted(folder.glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"no .mp4 clips in {folder}")
    missing = set(unseen) - {video.stem for video in videos}
    if missing:
        raise FileNotFoundError(f"unseen clips {', '.join(sorted(missing))} are not in {folder}")
    detector = faces_lib.FaceDetector()
    return [dataclasses.replace(load_clip(video, size, detector), unseen=video.stem in unseen) for video in videos]


def unseen_clips(config: dict) -> tuple[str, ...]:
    """The clips a FOMM config holds out whole (``train_params.unseen_clips``)."""
    return tuple(config.get("train_params", {}).get("unseen_clips", ()))
