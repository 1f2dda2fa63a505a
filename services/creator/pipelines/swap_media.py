"""Merge a face swap into a video: per frame, find the face, align it as the face sets were, run it
through the shared encoder and the other identity's decoder, match its colours to the original face,
and blend it back with the predicted mask, cut to the target's own skin (hair and background stay
the original's) and eroded and blurred so the seam falls inside the face.
Frames without a face are written unchanged; the target's audio is kept; output is labelled.

By default the merge works at the face's own resolution in the frame (up to 512 px): the face is
aligned at that size, reduced to the model's for the networks, and the decoded face is scaled back
up and restored by the face restorer before colour matching and blending, so a 64-px model does not
paste a 64-px face into a 720p frame. The landmarks that align the face are smoothed across frames,
so the pasted face does not jitter where the detector's landmarks do."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from PIL import Image, ImageFilter

from dfp import alignment, media, provenance
from dfp import faces as faces_lib
from services.creator.archs.autoencoder_arch import FaceSwapAutoencoder
from services.creator.pipelines import face_mask
from services.creator.pipelines.full_resolution import Restore, working_side

MIN_CONFIDENCE = 0.9


class NoFace(ValueError):
    """The target video shows no face to swap."""


@dataclasses.dataclass(frozen=True)
class MergeOptions:
    to_identity: str = "b"
    coverage: float = 1.6
    color_transfer: bool = True
    seamless: bool = False
    mask_erode: float = 0.04  # of the face side
    mask_blur: float = 0.05
    batch_size: int = 8
    visible_mark: bool = True
    # Merge at the face's own size in the frame, the decoded face upscaled (and restored when a
    # restorer is given); False merges at the model's resolution.
    full_resolution: bool = True
    smooth_alignment: bool = True
    # Cut the decoder's oval mask to the target face's own skin (see face_mask), so hair, ears and
    # background stay the original's; False blends the whole oval.
    skin_mask: bool = True


@dataclasses.dataclass(frozen=True)
class MergeResult:
    frames: int
    swapped_frames: int
    frames_per_second: float
    has_audio: bool


def color_transfer(swapped: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Match the swapped face's per-channel mean and spread (YCbCr) to the original's inside the mask
    (Reinhard-style statistics transfer)."""
    weight = mask[..., None].astype(np.float64)
    total = weight.sum()
    if total < 1:
        return swapped
    source = np.asarray(Image.fromarray(swapped).convert("YCbCr"), dtype=np.float64)
    target = np.asarray(Image.fromarray(original).convert("YCbCr"), dtype=np.float64)

    def stats(values):
        mean = (values * weight).sum(axis=(0, 1)) / total
        std = np.sqrt(((values - mean) ** 2 * weight).sum(axis=(0, 1)) / total) + 1e-6
        return mean, std

    source_mean, source_std = stats(source)
    target_mean, target_std = stats(target)
    moved = (source - source_mean) / source_std * target_std + target_mean
    return np.asarray(Image.fromarray(np.clip(moved, 0, 255).astype(np.uint8), mode="YCbCr").convert("RGB"))


def seamless_clone(swapped: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson blending (Perez et al., 2003) of two aligned faces: where ``mask`` > 0.5 the result has
    the swapped face's gradients, and at the mask's edge it meets the original, so the original's
    lighting and skin tone carry in from the border. Elsewhere it is the original."""
    inside = mask > 0.5
    inside[0, :] = inside[-1, :] = inside[:, 0] = inside[:, -1] = False
    count = int(inside.sum())
    if count == 0:
        return original
    index = np.full(mask.shape, -1, np.int64)
    index[inside] = np.arange(count)
    rows, cols = np.nonzero(inside)
    source = swapped.astype(np.float64)
    target = original.astype(np.float64)
    rhs = np.zeros((count, 3))
    matrix_rows, matrix_cols = [np.arange(count)], [np.arange(count)]
    values = [np.full(count, 4.0)]
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = rows + dy, cols + dx
        rhs += source[rows, cols] - source[ny, nx]
        neighbour = index[ny, nx]
        unknown = neighbour >= 0
        matrix_rows.append(np.nonzero(unknown)[0])
        matrix_cols.append(neighbour[unknown])
        values.append(np.full(int(unknown.sum()), -1.0))
        rhs[~unknown] += target[ny[~unknown], nx[~unknown]]
    laplacian = scipy.sparse.csc_matrix((np.concatenate(values), (np.concatenate(matrix_rows),
                                                                  np.concatenate(matrix_cols))), shape=(count, count))
    solved = scipy.sparse.linalg.splu(laplacian).solve(rhs)
    blended = target.copy()
    blended[rows, cols] = solved
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def resize_faces(faces: np.ndarray, side: int) -> np.ndarray:
    """(N,S,S,3) uint8 -> (N,side,side,3), bicubic (as the face sets were reduced for training)."""
    if faces.shape[1] == side:
        return faces
    return np.stack([np.asarray(Image.fromarray(face).resize((side, side), Image.BICUBIC)) for face in faces])


def resize_masks(masks: np.ndarray, side: int) -> np.ndarray:
    if masks.shape[1] == side:
        return masks
    return np.stack([np.asarray(Image.fromarray(mask.astype(np.float32), mode="F").resize((side, side), Image.BILINEAR))
                     for mask in masks])


def merge_side(landmarks: list[np.ndarray], options: MergeOptions, resolution: int) -> int:
    """The side the faces of a video are merged at: the model's, or with ``full_resolution`` the
    faces' own (their median), never below the model's and at most full_resolution's cap."""
    if not options.full_resolution or not landmarks:
        return resolution
    own = float(np.median([alignment.crop_side(points, options.coverage) for points in landmarks]))
    return max(resolution, working_side(int(round(own))))


def soften(mask: np.ndarray, erode: float, blur: float) -> np.ndarray:
    """Shrink the mask by ``erode`` and feather it by ``blur`` (fractions of its side)."""
    side = mask.shape[0]
    image = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8))
    erode_px = int(round(side * erode)) // 2 * 2 + 1
    if erode_px > 1:
        image = image.filter(ImageFilter.MinFilter(erode_px))
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(side * blur))
    return np.asarray(image, dtype=np.float32) / 255.0


class FaceSwapper:
    """A trained pair, swapping aligned faces in batches."""

    def __init__(self, model: FaceSwapAutoencoder, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.resolution = model.resolution

    @torch.inference_mode()
    def swap(self, aligned: np.ndarray, to_identity: str) -> tuple[np.ndarray, np.ndarray]:
        """(N,S,S,3) uint8 aligned faces -> (swapped uint8 faces, masks float32 (N,S,S))."""
        batch = torch.from_numpy(aligned.astype(np.float32) / 255.0).permute(0, 3, 1, 2).to(self.device)
        image, mask = self.model(batch, to_identity)
        faces = (image.permute(0, 2, 3, 1).float().cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
        return faces, mask[:, 0].float().cpu().numpy()


def swap_video(swapper: FaceSwapper, target_path, out_path, options: MergeOptions, *,
               detector: faces_lib.FaceDetector | None = None, metadata: dict[str, str] | None = None,
               progress: Callable[[int, int], None] | None = None,
               on_frame: Callable[[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray], None] | None = None,
               restore: Restore | None = None,
               ) -> MergeResult:
    """Swap the largest face in every frame of ``target_path``; write an MP4 to ``out_path``.

    ``restore`` (the face restorer) is applied to the upscaled decoded faces of a full-resolution
    merge. ``on_frame(original, aligned, swapped, merged)`` sees every frame (aligned and swapped are
    None where no face was found)."""
    detector = detector or faces_lib.FaceDetector()
    info = media.video_stream_info(target_path)
    resolution = swapper.resolution
    smoother = alignment.LandmarkSmoother()
    writer = media.VideoWriter(out_path, info.frames_per_second, audio_from=target_path, metadata=metadata)
    payload = provenance.watermark_payload(metadata or {})
    done = swapped_count = 0
    side: int | None = None
    try:
        pending: list[np.ndarray] = []

        def flush():
            nonlocal done, swapped_count, side
            found = detector.detect_batch(pending)
            landmarks = []
            for faces in found:
                face = max((f for f in faces if f.confidence >= MIN_CONFIDENCE), key=lambda f: f.side, default=None)
                points = None if face is None else np.asarray(face.landmarks, dtype=np.float64)
                landmarks.append(smoother(points) if options.smooth_alignment else points)
            if side is None and any(points is not None for points in landmarks):
                side = merge_side([points for points in landmarks if points is not None], options, resolution)
            aligned = {i: alignment.align_face(frame, points, side, options.coverage)
                       for i, (frame, points) in enumerate(zip(pending, landmarks)) if points is not None}
            swapped = masks = None
            if aligned:
                originals = np.stack([a.image for a in aligned.values()])
                swapped, masks = swapper.swap(resize_faces(originals, resolution), options.to_identity)
                if side != resolution:
                    swapped, masks = resize_faces(swapped, side), resize_masks(masks, side)
                    if restore is not None:
                        swapped = restore(swapped)
            for i, frame in enumerate(pending):
                merged, aligned_face, swapped_face = frame, None, None
                if i in aligned:
                    slot = list(aligned).index(i)
                    aligned_face = aligned[i].image
                    mask = masks[slot]
                    if options.skin_mask:
                        mask = face_mask.blend_mask(mask, aligned_face, options.coverage)
                    mask = soften(mask, options.mask_erode, options.mask_blur)
                    swapped_face = swapped[slot]
                    if options.color_transfer:
                        swapped_face = color_transfer(swapped_face, aligned_face, mask)
                    if options.seamless:
                        swapped_face = seamless_clone(swapped_face, aligned_face, mask)
                    merged = alignment.paste_aligned(frame, swapped_face, aligned[i].matrix, mask)
                    swapped_count += 1
                if on_frame is not None:
                    on_frame(frame, aligned_face, swapped_face, merged)
                writer.write(provenance.mark_frame(merged, payload, options.visible_mark))
            done += len(pending)
            pending.clear()
            if progress is not None:
                progress(done, max(info.frame_count, done))

        for frame in media.iter_video_frames(target_path):
            pending.append(frame)
            if len(pending) == options.batch_size:
                flush()
        if pending:
            flush()
        if swapped_count == 0:
            raise NoFace(f"no face found in any of the {done} frames of the target video; nothing to swap")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return MergeResult(done, swapped_count, info.frames_per_second, info.has_audio)
