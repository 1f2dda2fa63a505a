"""Animate a portrait by a driving video, from media files to a labelled result video.

Framing as the published FOMM preprocessing does it: the face in the source image is cropped square
with a margin, and the driving clip gets one stable square crop box (the union of its face boxes over
the clip) so the crop does not jitter. Crops are resized to the model's frame size, animated in
batches, and the result is pasted back into the source image with a feathered mask, or returned as the
crop. With ``full_resolution`` (the default) the source crop is handed to the animator at its own
resolution (``full_resolution.working_side``): the animator takes the motion from the model and the
pixels from the source (``full_resolution.FullResolutionAnimator``), so the face keeps the source's
sharpness; without it, everything runs at the model's frame size, as the published demo does. Two passes over the driving file (find the box, then animate) keep memory bounded by one batch
whatever the clip's length. The driving clip's audio is kept.

The model is anything with ``frame_size``, ``prepare`` and ``animate_batch`` (an in-process
FommAnimator or a client of the TorchServe model), so every path runs this same code.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import numpy as np
from PIL import Image

from dfp import faces as faces_lib
from dfp import media, provenance
from services.creator.pipelines.full_resolution import working_side

# FOMM's preprocessing grows the face box generously: the head and some background move too.
SOURCE_MARGIN = 0.45
DRIVING_MARGIN = 0.35
# Driving frames sampled to find the stable crop box.
BOX_SAMPLES = 48
FEATHER_FRACTION = 0.08


class NoFace(ValueError):
    """A face was needed and none was found."""


class Animator(Protocol):
    """Driving frames come at ``frame_size``; the source at ``frame_size``, or, for full-resolution
    options, at its working side, and the predictions come back at the source's size."""

    frame_size: int

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray, mode: str): ...

    def animate_batch(self, state, driving: np.ndarray): ...


@dataclasses.dataclass(frozen=True)
class AnimationOptions:
    mode: str = "relative"
    crop_faces: bool = True
    paste_back: bool = True
    best_initial_frame: bool = False
    batch_size: int = 8
    visible_mark: bool = True
    full_resolution: bool = True


@dataclasses.dataclass(frozen=True)
class AnimationResult:
    frames: int
    frames_per_second: float
    initial_frame: int
    source_box: tuple[int, int, int] | None  # (left, top, side)
    driving_box: tuple[int, int, int] | None
    has_audio: bool


def fit_frame(rgb: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 -> float32 size x size x 3 in [0,1]; PIL's bicubic filter widens on reduction."""
    if rgb.shape[:2] != (size, size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC))
    return rgb.astype(np.float32) / 255.0


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _largest(found: list[faces_lib.Face]) -> faces_lib.Face | None:
    confident = [f for f in found if f.confidence >= 0.9]
    return max(confident, key=lambda f: f.side, default=None)


def source_face_box(rgb: np.ndarray, detector: faces_lib.FaceDetector) -> tuple[tuple[int, int, int], faces_lib.Face]:
    face = _largest(detector.detect(rgb))
    if face is None:
        raise NoFace("no face found in the source image; pass a portrait, or turn face cropping off")
    return faces_lib.square_crop_box(face.box, rgb.shape[:2], SOURCE_MARGIN), face


def driving_face_box(path, detector: faces_lib.FaceDetector, frame_count: int) -> tuple[int, int, int]:
    """One square box for the whole clip: the union of the largest face's boxes on sampled frames."""
    step = max(1, frame_count // BOX_SAMPLES) if frame_count else 1
    union = None
    shape = None
    for index, rgb in enumerate(media.iter_video_frames(path)):
        if index % step:
            continue
        shape = rgb.shape[:2]
        face = _largest(detector.detect(rgb))
        if face is None:
            continue
        box = face.box
        union = box if union is None else (min(union[0], box[0]), min(union[1], box[1]),
                                           max(union[2], box[2]), max(union[3], box[3]))
        if index // step >= BOX_SAMPLES:
            break
    if union is None:
        raise NoFace("no face found in the driving video; pass a talking-head clip, or turn face cropping off")
    return faces_lib.square_crop_box(union, shape, DRIVING_MARGIN)


def _normalised_landmarks(face: faces_lib.Face) -> np.ndarray:
    from services.creator.pipelines.fomm_animation import convex_hull_area

    points = np.asarray(face.landmarks, dtype=np.float64)
    points = points - points.mean(axis=0, keepdims=True)
    area = convex_hull_area(points)
    return points / np.sqrt(area) if area > 0 else points


def best_initial_frame(path, source_face: faces_lib.Face, detector: faces_lib.FaceDetector) -> int:
    """The driving frame whose face landmarks (MTCNN's five) best match the source's pose."""
    target = _normalised_landmarks(source_face)
    best_index, best_distance = 0, np.inf
    for index, rgb in enumerate(media.iter_video_frames(path)):
        face = _largest(detector.detect(rgb))
        if face is None or len(face.landmarks) != len(source_face.landmarks):
            continue
        distance = float(((_normalised_landmarks(face) - target) ** 2).sum())
        if distance < best_distance:
            best_index, best_distance = index, distance
    return best_index


def _crop(rgb: np.ndarray, box: tuple[int, int, int] | None) -> np.ndarray:
    if box is None:
        return rgb
    left, top, side = box
    return rgb[top : top + side, left : left + side]


def feather_mask(side: int) -> np.ndarray:
    """A (side, side, 1) mask: 1 inside, ramping to 0 over the outer FEATHER_FRACTION of the square."""
    ramp = max(1, int(round(side * FEATHER_FRACTION)))
    distance = np.minimum(np.arange(side), np.arange(side)[::-1]).astype(np.float32)
    edge = np.clip((distance + 1) / ramp, 0.0, 1.0)
    return (edge[:, None] * edge[None, :])[..., None]


def paste(background: np.ndarray, crop: np.ndarray, box: tuple[int, int, int], mask: np.ndarray) -> np.ndarray:
    left, top, side = box
    resized = np.asarray(Image.fromarray(crop).resize((side, side), Image.BICUBIC)).astype(np.float32)
    out = background.copy()
    region = out[top : top + side, left : left + side].astype(np.float32)
    out[top : top + side, left : left + side] = (region * (1 - mask) + resized * mask + 0.5).astype(np.uint8)
    return out


def animate_video(
    animator: Animator,
    source_rgb: np.ndarray,
    driving_path,
    out_path,
    options: AnimationOptions,
    *,
    detector: faces_lib.FaceDetector | None = None,
    metadata: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_batch: Callable[[object, object], None] | None = None,
    max_frames: int = 0,
) -> AnimationResult:
    """Animate ``source_rgb`` by the clip at ``driving_path``; write an MP4 to ``out_path``.

    ``progress(done, total)`` is called after every batch; ``on_batch(state, batch)`` sees each
    batch's raw model outputs. ``max_frames`` stops early (0: the whole clip).
    """
    info = media.video_stream_info(driving_path)
    size = animator.frame_size
    source_box = driving_box = None
    initial_index = 0
    if options.crop_faces:
        detector = detector or faces_lib.FaceDetector()
        source_box, source_face = source_face_box(source_rgb, detector)
        driving_box = driving_face_box(driving_path, detector, info.frame_count)
        if options.best_initial_frame:
            initial_index = best_initial_frame(driving_path, source_face, detector)
    elif options.best_initial_frame:
        raise ValueError("best_initial_frame needs face cropping (it matches face landmarks)")

    source_side = working_side(source_box[2]) if (options.full_resolution and source_box) else size
    source = fit_frame(_crop(source_rgb, source_box), source_side)
    initial = None
    for index, rgb in enumerate(media.iter_video_frames(driving_path)):
        if index == initial_index:
            initial = fit_frame(_crop(rgb, driving_box), size)
            break
    if initial is None:
        raise media.InvalidMedia("the driving video has no frames")
    state = animator.prepare(source, initial, options.mode)

    total = info.frame_count if not max_frames else min(max_frames, info.frame_count or max_frames)
    mask = feather_mask(source_box[2]) if (source_box and options.paste_back) else None
    writer = media.VideoWriter(out_path, info.frames_per_second, audio_from=driving_path if not max_frames else None,
                               metadata=metadata)
    payload = provenance.watermark_payload(metadata or {})
    done = 0
    try:
        pending: list[np.ndarray] = []

        def flush():
            nonlocal done
            batch = animator.animate_batch(state, np.stack(pending))
            if on_batch is not None:
                on_batch(state, batch)
            for prediction in to_uint8(batch.prediction):
                frame = paste(source_rgb, prediction, source_box, mask) if mask is not None else prediction
                writer.write(provenance.mark_frame(frame, payload, options.visible_mark))
            done += len(pending)
            pending.clear()
            if progress is not None:
                progress(done, max(total, done))

        for index, rgb in enumerate(media.iter_video_frames(driving_path)):
            if max_frames and index >= max_frames:
                break
            pending.append(fit_frame(_crop(rgb, driving_box), size))
            if len(pending) == options.batch_size:
                flush()
        if pending:
            flush()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return AnimationResult(done, info.frames_per_second, initial_index, source_box, driving_box,
                           info.has_audio and not max_frames)
